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

from aiolimiter import AsyncLimiter


__all__ = ["sliding_window_limiter"]


def sliding_window_limiter(calls: int, period: float) -> AsyncLimiter:
    """
    Return a limiter that admits at most *calls* acquisitions in any window of *period*
    seconds, at close to ``calls / period`` per second when flooded.

    Create it inside the event loop that will use it (aiolimiter binds to one loop).

    Raises:
        ValueError: *calls* is not positive or *period* is not positive.
    """
    if calls < 1 or period <= 0:
        raise ValueError(f"a limit needs calls >= 1 and period > 0, not {calls}/{period}")
    if calls == 1:
        return AsyncLimiter(1, period)
    # C = 1 loses about 1% of the rate to timer lateness; C = 2 does not.
    burst = 2 if calls > 2 else 1
    return AsyncLimiter(burst, burst * period / (calls - burst))
