"""
The per-connection call limit, held as the server counts it.

A limit of *calls* in any window of *period* seconds is what Twilio's connector
allows (1200 per 60 s). The server counts **arrivals**, and a request reaches it some
time after the limiter admits it: building the request, a busy event loop, the network,
the server's own loop. That delay varies from request to request. If a call admitted at
``t`` arrives late by ``d_max`` and one admitted at ``t + w`` arrives early by ``d_min``,
the server sees them ``w - (d_max - d_min)`` apart. So a limiter that holds *calls* in
any window of ``period + J`` of its own admissions holds *calls* in any window of
*period* at the server whenever the spread ``J = d_max - d_min`` of that delay stays
under :data:`ARRIVAL_MARGIN`.

Sizing the margin: ``benchmarks/limit_under_load.py`` floods a canned server in its own
process while a hog at the lowest CPU priority runs on every core, and records, per
request, the limiter's admission time and the server's arrival time on one monotonic
clock. The margin is the worst spread of arrival minus admission seen there, with room
to spare (the figures are in ``docs/throughput.md``). At 100 per 5 s it costs 1% of the
rate (19.8 calls/s instead of 20), at 1200 per 60 s 0.08%. A window shorter than 2.5 s
pays more than 2%: that is the price of holding a short window at the server.

Admissions are spaced evenly, ``(period + margin) / calls`` apart, so a flood never
bursts (Twilio counts concurrent requests too) and runs at exactly ``calls / (period +
margin)`` per second. Every admission is a reserved slot: waiters are served in order,
a late timer does not shift the schedule, and a waiter cancelled before its slot gives
it back when no one has booked after it.

The same margin is added to the window of the shared limiter (:mod:`connector.redis_limiter`);
there is no other.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Final

from ._clock import Clock, LoopClock


__all__ = [
    "ARRIVAL_MARGIN",
    "SlidingWindowLimiter",
    "parse_rate_limit",
    "sliding_window_limiter",
]

#: Seconds added to the window of every limit, local or shared, explicit or the
#: manifest's, so that the jitter between admission and arrival never puts one call too
#: many in the server's window (sized in this module's docstring).
ARRIVAL_MARGIN: Final = 0.05


def parse_rate_limit(text: str) -> tuple[int, float] | bool:
    """
    Read ``CALLS/SECONDS`` (``100/5``; ``CALLS`` alone means per second), or ``off``.

    Returns:
        ``(calls, seconds)``, or ``False`` for ``off``/``none``/``false``.

    Raises:
        ValueError: Anything else, or a number not above 0.
    """
    if text.strip().lower() in ("off", "none", "false"):
        return False
    calls, sep, seconds = text.partition("/")
    try:
        limit = (int(calls), float(seconds if sep else "1"))
    except ValueError:
        raise ValueError(f"expected CALLS/SECONDS or 'off', got {text!r}") from None
    if limit[0] < 1 or not limit[1] > 0:
        raise ValueError(f"CALLS and SECONDS must be above 0, got {text!r}")
    return limit


class SlidingWindowLimiter:
    """
    At most *calls* admissions in any window of *period* seconds as the server sees
    them: evenly spaced over ``period + margin``.

    ``await limiter.acquire()`` (or ``async with limiter:``) before each request;
    :meth:`reserve` also says when the slot was. It fits
    :class:`connector.Limiter`.

    Args:
        calls: Admissions per window.
        period: The window, in seconds.
        margin: Seconds added to the window for the jitter between admission and
            arrival (``ARRIVAL_MARGIN``; 0 only where nothing travels).
        clock: The time it runs on; the event loop's unless given.

    Raises:
        ValueError: *calls* is not positive, *period* is not positive, or *margin* is
            negative.
    """

    __slots__ = ("_booked", "_clock", "_origin", "calls", "interval", "margin", "period")

    def __init__(
        self,
        calls: int,
        period: float,
        *,
        margin: float = ARRIVAL_MARGIN,
        clock: Clock | None = None,
    ) -> None:
        if calls < 1 or not period > 0 or not math.isfinite(period):
            raise ValueError(f"a limit needs calls >= 1 and period > 0, not {calls}/{period}")
        if not 0 <= margin < math.inf:
            raise ValueError(f"the margin must be 0 or more seconds, not {margin}")
        self.calls = calls
        self.period = period
        self.margin = margin
        #: Seconds between two admissions when flooded.
        self.interval = (period + margin) / calls
        self._clock: Clock = clock or LoopClock()
        # Slots run from the start of the current busy spell: slot k is at
        # origin + k * interval (a product, not a running sum, so epoch-sized times
        # gather no rounding error). The next free one is number `_booked`.
        self._origin = -math.inf
        self._booked = 0

    def __repr__(self) -> str:
        return f"<SlidingWindowLimiter {self.calls}/{self.period:g}s +{self.margin:g}s>"

    @property
    def rate(self) -> float:
        """Admissions per second when flooded: ``calls / (period + margin)``."""
        return 1.0 / self.interval

    async def acquire(self) -> None:
        """Wait for the next slot and take it (the Limiter protocol)."""
        await self.reserve()

    async def reserve(self) -> float:
        """
        Wait for the next slot and take it.

        Returns:
            The slot's time on the limiter's clock (the admission time).
        """
        clock = self._clock
        now = clock.now()
        slot = self._origin + self._booked * self.interval
        if not slot > now:
            # Idle long enough: a new busy spell starts now.
            self._origin, self._booked, slot = now, 0, now
        self._booked += 1
        booked = self._booked
        if slot > now:
            try:
                await clock.sleep(slot - now)
            except BaseException:
                # A cancelled waiter gives its slot back if nobody booked after it.
                if self._booked == booked:
                    self._booked -= 1
                raise
        return slot

    async def __aenter__(self) -> None:
        await self.reserve()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def sliding_window_limiter(
    calls: int,
    period: float,
    *,
    margin: float = ARRIVAL_MARGIN,
    clock: Clock | None = None,
) -> SlidingWindowLimiter:
    """
    Return a limiter that admits at most *calls* in any window of *period* seconds as
    the server counts them, at ``calls / (period + margin)`` per second when flooded.

    Args:
        calls: Admissions per window.
        period: The window, in seconds.
        margin: Seconds added for arrival jitter (``ARRIVAL_MARGIN``, 50 ms).
        clock: The time it runs on; the event loop's unless given.

    Raises:
        ValueError: *calls* or *period* is not positive.
    """
    return SlidingWindowLimiter(calls, period, margin=margin, clock=clock)
