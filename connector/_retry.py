"""
When to try a request again, and how long to wait first.

A hand-written policy rather than a retry library: the decision depends on the action
(is it safe to repeat?) and on how the attempt failed (did it surely not reach Twilio?),
the wait is full-jitter exponential backoff that yields to ``Retry-After``, and the
whole thing sits on the hot path of every call, where a general-purpose retry loop cost
more than the rest of the call's overhead together.

Twilio's throughput errors are a table of their own (:data:`THROUGHPUT_ERRORS`): each
is what it is, and none is retried blindly. A refused send (21611, 63017) sent nothing,
so it is sent again, but only once what refused it has passed; a message that failed
in Twilio's queue (30001, 30036) or a reply loop (14107) fails its item with the reason.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping
from typing import Final

import attrs


__all__ = ["THROUGHPUT_ERRORS", "Reaction", "RetryPolicy", "ThroughputError", "throughput_error"]


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


class Reaction(enum.Enum):
    """What the connector does about a throughput error."""

    #: The sender's queue at Twilio is full: wait until it drains below the pacing
    #: horizon, then send again (the send was refused, so nothing was sent).
    WAIT_FOR_QUEUE = "wait for the queue"
    #: The account sends too fast: hold every send of the connection a moment, then
    #: send again (nothing was sent).
    BACK_OFF = "back off"
    #: The message failed, or Twilio stopped a loop: the item fails with the reason.
    FAIL = "fail"


@attrs.frozen
class ThroughputError:
    """
    One of Twilio's throughput errors and the connector's answer to it.

    Attributes:
        code: Twilio's error code.
        reaction: What the connector does.
        on_create: Whether Twilio answers it to the send (``True``) or reports it later
            in the message's status (``False``, the message is then ``failed``). Seen
            in a status, any of them fails the item: that message was not sent.
        reason: What happened, in words, for the item's error.
    """

    code: int
    reaction: Reaction
    on_create: bool
    reason: str


#: Twilio's throughput errors (``docs/throughput.md``), by code.
THROUGHPUT_ERRORS: Final[Mapping[int, ThroughputError]] = {
    e.code: e
    for e in (
        ThroughputError(
            21611,
            Reaction.WAIT_FOR_QUEUE,
            True,
            "the From number's queue at Twilio holds more than it may (about 10 hours of "
            "segments at its rate); nothing was sent",
        ),
        ThroughputError(
            63017,
            Reaction.BACK_OFF,
            True,
            "the account and its subaccounts send more than 2000 messages per second; "
            "nothing was sent",
        ),
        ThroughputError(
            30001,
            Reaction.FAIL,
            False,
            "queue overflow: the sender's queue at Twilio was full, so the message failed "
            "after it was accepted (declare the sender's rate so the connector paces it)",
        ),
        ThroughputError(
            30036,
            Reaction.FAIL,
            False,
            "the message waited in Twilio's queue longer than its validity period and was not sent",
        ),
        ThroughputError(
            14107,
            Reaction.FAIL,
            False,
            "too many messages between the same two numbers in a short time (Twilio's "
            "protection against reply loops); not retried",
        ),
    )
}


def throughput_error(code: int | None) -> ThroughputError | None:
    """The entry of :data:`THROUGHPUT_ERRORS` for *code*, if it is one."""
    return THROUGHPUT_ERRORS.get(code) if code is not None else None
