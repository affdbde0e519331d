"""
When to try a request again, and how long to wait first.

A hand-written policy rather than a retry library: the decision depends on the action
(is it safe to repeat?) and on how the attempt failed (did it surely not reach Twilio?),
the wait is full-jitter exponential backoff that yields to ``Retry-After``, and the
whole thing sits on the hot path of every call, where a general-purpose retry loop cost
more than the rest of the call's overhead together.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs


__all__ = ["RetryPolicy"]


@attrs.frozen
class RetryPolicy:
    """
    How a connection retries.

    A 429 is always retried (Twilio did not process it). GETs and DELETEs are also
    retried on 5xx answers, timeouts and broken connections. A send is retried only when
    it surely did not reach Twilio (429, refused connection, connect timeout).

    Attributes:
        attempts: Most attempts per call, the first included.
        deadline: Most seconds spent on attempts and waits before giving up; checked
            between attempts (an attempt in flight is bounded by the transport's
            connect and read timeouts). Time queued behind the rate limit is not counted.
        backoff: Base of the exponential backoff, in seconds.
        max_backoff: Cap of one wait, in seconds.
        random: Returns a float in [0, 1); replace it to make waits predictable.
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    deadline: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    backoff: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_backoff: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    random: Callable[[], float] = attrs.field(default=random.random, repr=False)

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """
        Seconds to wait after failed attempt number *attempt* (1-based).

        ``Retry-After`` wins when the server sent one; otherwise a uniformly random
        wait up to ``min(max_backoff, backoff * 2 ** (attempt - 1))`` ("full jitter").
        """
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return float(self.random() * ceiling)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes one attempt only."""
        return cls(attempts=1)
