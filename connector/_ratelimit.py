"""
The per-connection call limit.

Twilio's connector allows 1200 calls per 60 s per connection. aiolimiter's
``AsyncLimiter(1200, 60)`` is a leaky bucket: it admits a burst of 1200 and keeps
draining, so nearly 2400 calls get through in the first minute. A bucket of size
``C`` draining over ``T`` seconds admits at most ``C + (C / T) * W`` calls in any window
of ``W`` seconds; choosing ``T = C * W / (L - C)`` caps that at ``L``. A small ``C``
keeps the sustained rate within a hair of ``L / W`` (``C = 2`` for 1200/60 s gives
19.97 calls/s) at the cost of bursts, which Twilio's concurrency limit frowns on anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter


__all__ = ["RATE_MARGIN", "parse_rate_limit", "sliding_window_limiter", "with_margin"]

#: Share of an explicit rate limit's period added as a margin (see :func:`with_margin`).
RATE_MARGIN = 0.005


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


def with_margin(
    rate_limit: tuple[int, float] | bool | None,
) -> tuple[int, float] | bool | None:
    """
    Stretch an explicit ``(calls, seconds)`` limit's period by :data:`RATE_MARGIN`.

    The limiter holds at most *calls* in any window of its own clock, but requests reach
    the server with a few milliseconds of jitter, enough to put one call too many in the
    server's window now and then (11 429s in 10,000 sends at 6000/60 s without it).
    """
    if isinstance(rate_limit, tuple):
        calls, seconds = rate_limit
        return (calls, seconds * (1 + RATE_MARGIN))
    return rate_limit


def sliding_window_limiter(calls: int, period: float) -> AsyncLimiter:
    """
    Return a limiter that admits at most *calls* acquisitions in any window of *period*
    seconds, at close to ``calls / period`` per second when flooded.

    Create it inside the event loop that will use it (aiolimiter binds to one loop).

    Raises:
        ValueError: *calls* is not positive or *period* is not positive.
    """
    from aiolimiter import AsyncLimiter

    if calls < 1 or period <= 0:
        raise ValueError(f"a limit needs calls >= 1 and period > 0, not {calls}/{period}")
    if calls == 1:
        return AsyncLimiter(1, period)
    # C = 1 loses about 1% of the rate to timer lateness; C = 2 does not.
    burst = 2 if calls > 2 else 1
    return AsyncLimiter(burst, burst * period / (calls - burst))
