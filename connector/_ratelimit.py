"""
The per-connection call limit, held as the server counts it.

A limit of *calls* in any window of *period* seconds is what Twilio's connector
allows (1200 per 60 s). The server counts **arrivals**, and a request reaches it some
time after the limiter admits it: building the request, a busy event loop, the network,
the server's own loop. That delay varies. If a call admitted at ``t`` arrives late and
one admitted ``period`` later arrives early, the server sees both in one window, and
with them one call too many.

A fixed margin on the window was the first answer, and the evidence ruled it out:
``benchmarks/limit_under_load.py`` records each request's admission and its arrival at a
server in another process, on one clock, while the machine is loaded. On a shared
two-core machine (load average about 8, plus a nice-19 hog per core) the spread of
arrival minus admission reached 73 to 533 ms per run of 350 requests, and a 50 ms margin
let 101 to 110 calls into a 5-second window of 100 in every run. A margin wide enough
for that tail (half a second of a 5-second window) would cost 10% of the rate.

So the limiter anchors the window at something it knows bounds the arrival: **the
answer**. A request reaches the server before the server answers it, so its arrival
lies between its admission and the moment its answer comes back. The limiter admits
call ``k + calls`` no earlier than ``period`` after call ``k``'s answer came back; then
any two calls ``calls`` apart arrive at least ``period`` apart, and no window at the
server holds more than *calls*, however loaded either side is. The margin each call gets
is its own measured round trip, so it costs the round trip of the calls at the window's
edge (milliseconds on a loopback or a nearby API; 0.3% at 1200 per 60 s with a 200 ms
round trip) and nothing when they are fast.

Between those bounds admissions sit on an even grid, ``period / calls`` apart, so a flood
never bursts (Twilio counts concurrent requests too) and runs at ``calls / period`` per
second less the edge calls' round trips. Waiters are served in order; a waiter cancelled
before its turn gives its slot back.

A caller that cannot report answers (``acquire()``, ``async with limiter``) gets the old
assumption instead: its call counts as answered ``margin`` seconds after admission
(``ARRIVAL_MARGIN``, 50 ms). The connection reports every answer (``admit()`` and
``Admission.done()``), so that assumption never applies to its calls. The shared limiter
(:mod:`connector.redis_limiter`) anchors at answers the same way.
"""

from __future__ import annotations

import asyncio
import collections
import math
from types import TracebackType
from typing import Final

from ._clock import Clock, LoopClock


__all__ = [
    "ARRIVAL_MARGIN",
    "Admission",
    "SlidingWindowLimiter",
    "parse_rate_limit",
    "sliding_window_limiter",
]

#: Seconds after its admission that a call whose answer is not reported counts as
#: answered (``acquire()``): the jitter allowance of callers that cannot say better.
ARRIVAL_MARGIN: Final = 0.05
# Strictly more than the period between two calls `calls` apart: a window at the
# server is closed at both ends.
_STRICT: Final = 1e-6


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


class Admission:
    """
    A call the limiter let through. Call :meth:`done` when its answer came back (or the
    attempt ended without one): the window of the calls after it is anchored there.

    Attributes:
        at: When it was admitted, on the limiter's clock.
        done_at: When its answer came back, once :meth:`done` was called.
    """

    __slots__ = ("_clock", "_finished", "at", "done_at")

    def __init__(self, at: float, clock: Clock) -> None:
        self.at = at
        self.done_at: float | None = None
        self._clock = clock
        self._finished: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Admission at={self.at:.6f} done_at={self.done_at}>"

    def finish(self, at: float) -> None:
        """Record that the call counts as answered at *at*."""
        if self.done_at is None:
            self.done_at = at
            if self._finished is not None and not self._finished.done():
                self._finished.set_result(None)

    async def done(self) -> None:
        """The call's answer came back (or the attempt ended): now."""
        self.finish(self._clock.now())

    async def answered(self) -> float:
        """Wait until the call is answered; return when it was."""
        if self.done_at is None:
            if self._finished is None:
                self._finished = asyncio.get_running_loop().create_future()
            await self._finished
        assert self.done_at is not None
        return self.done_at


class SlidingWindowLimiter:
    """
    At most *calls* admissions in any window of *period* seconds as the server counts
    them: call ``k + calls`` goes no earlier than *period* after call ``k`` was answered,
    and calls are spaced ``period / calls`` apart.

    ``admission = await limiter.admit()`` before a request and ``await admission.done()``
    when its answer comes back; or ``await limiter.acquire()`` (``async with limiter:``)
    when answers cannot be reported, and each call then counts as answered *margin*
    seconds after its admission. It fits :class:`connector.Limiter`.

    Args:
        calls: Admissions per window.
        period: The window, in seconds.
        margin: For calls admitted with :meth:`acquire`: seconds after admission they
            count as answered (``ARRIVAL_MARGIN``).
        clock: The time it runs on; the event loop's unless given.

    Raises:
        ValueError: *calls* is not positive, *period* is not positive, or *margin* is
            negative.
    """

    __slots__ = (
        "_behind",
        "_booked",
        "_clock",
        "_lock",
        "_log",
        "_origin",
        "calls",
        "interval",
        "margin",
        "period",
    )

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
        #: Seconds between two admissions on the grid.
        self.interval = period / calls
        self._clock: Clock = clock or LoopClock()
        # The last `calls` admissions, oldest first.
        self._log: collections.deque[Admission] = collections.deque()
        # Grid slots run from the start of the current busy spell: slot k is at
        # origin + k * interval (a product, not a running sum, so epoch-sized times
        # gather no rounding error). The next free one is number `_booked`.
        self._origin = -math.inf
        self._booked = 0
        self._behind = False
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<SlidingWindowLimiter {self.calls}/{self.period:g}s>"

    @property
    def rate(self) -> float:
        """Admissions per second on the grid: ``calls / period``."""
        return 1.0 / self.interval

    async def admit(self) -> Admission:
        """
        Wait for the next call's turn and take it.

        Returns:
            The admission; report its answer with :meth:`Admission.done`.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        clock = self._clock
        log = self._log
        # One admission at a time, in order of arrival (asyncio's lock is fair).
        async with self._lock:
            now = clock.now()
            grid = self._origin + self._booked * self.interval
            if not grid > now and not (self._behind and grid > now - self.period):
                # Idle long enough: a new busy spell starts now. (Behind the grid because
                # a late answer held a call back, the missed slots are taken at once
                # instead, up to a window's worth: the answers still bound every window.)
                self._origin, self._booked, grid = now, 0, now
            self._booked += 1
            slot = grid
            try:
                if len(log) >= self.calls:
                    answered = await log[0].answered()
                    log.popleft()
                    slot = max(slot, answered + self.period + _STRICT)
                now = clock.now()
                while slot > now:
                    # Until the clock says so: a timer may fire early (uvloop's fire on
                    # the time its turn began, in milliseconds).
                    await clock.sleep(slot - now)
                    now = clock.now()
            except BaseException:
                # Cancelled before its turn: the slot goes to the next caller.
                self._booked -= 1
                raise
            self._behind = slot > grid
            admission = Admission(max(slot, now), clock)
            log.append(admission)
        return admission

    async def reserve(self) -> float:
        """
        Take the next turn for a call whose answer will not be reported.

        Returns:
            Its admission time; it counts as answered *margin* seconds later.
        """
        admission = await self.admit()
        admission.finish(admission.at + self.margin)
        return admission.at

    async def acquire(self) -> None:
        """Wait for the next turn and take it (the Limiter protocol; see :meth:`reserve`)."""
        await self.reserve()

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
    the server counts them (:class:`SlidingWindowLimiter`).

    Args:
        calls: Admissions per window.
        period: The window, in seconds.
        margin: For calls whose answers are not reported (``ARRIVAL_MARGIN``, 50 ms).
        clock: The time it runs on; the event loop's unless given.

    Raises:
        ValueError: *calls* or *period* is not positive.
    """
    return SlidingWindowLimiter(calls, period, margin=margin, clock=clock)
