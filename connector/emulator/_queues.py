# SPDX-License-Identifier: MIT
"""
Twilio's per-sender queues: each sender sends at its rate in segments, and what comes
faster waits in its queue (``docs/throughput.md``).

- A message joins its sender's queue when it is queued and leaves it, turning
  ``sending``, when the sender has sent everything before it: the sender is busy
  ``units / rate`` seconds per message (segments, or one unit for an MMS or a WhatsApp
  message; ``connector._twilio.throughput_units``).
- Creating a message from a number whose queue already holds more than the queue
  limit (10 hours of work) is refused: HTTP 400, 21611.
- A Messaging Service's message is accepted whatever its queue holds, and fails later
  with 30001 (queue overflow) when the queue is past the limit.
- A message still queued when its ``ValidityPeriod`` (default 36,000 s) runs out fails
  with the expiry code (30036 unless configured; twilio.com's page for 30036 says so,
  the project's FACTS leave it open).
- More than the account's messages per second (2000) are refused with 63017 (HTTP 429;
  Twilio does not document the status).

Rates come from the configuration per sender, else from the sender's kind
(``connector._twilio.DEFAULT_SENDER_RATES``, the same table the connector paces by).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

import attrs

from connector._twilio import (
    DEFAULT_SENDER_RATES,
    QUEUE_LIMIT,
    SenderKind,
    sender_kind,
    throughput_units,
)
from connector.emulator._clock import Clock
from connector.emulator._errors import ApiError


__all__ = ["QueueConfig", "QueueSlot", "SenderQueues"]

#: Seconds a message may wait in a queue unless its ValidityPeriod says less.
DEFAULT_VALIDITY = 36_000
QUEUE_FULL_MESSAGE = "This 'From' number has exceeded the maximum number of queued messages"
OVERFLOW_MESSAGE = "Queue overflow"
EXPIRED_MESSAGE = "Validity Period Expired"
ACCOUNT_MESSAGE = "Rate limit exceeded"


def _rates(value: Mapping[str, float] | None) -> dict[str, float]:
    rates = {}
    for sender, rate in (value or {}).items():
        if not 0 < float(rate) < math.inf:
            raise ValueError(f"{sender}: a rate must be above 0, not {rate!r}")
        rates[str(sender)] = float(rate)
    return rates


@attrs.frozen(kw_only=True)
class QueueConfig:
    """
    How the emulator models Twilio's sender queues.

    Attributes:
        senders: Segments per second (messages, for WhatsApp) by sender address or
            Messaging Service SID.
        kind_rates: The rate of a sender not named in *senders*, by kind; ``None``
            leaves such senders unpaced.
        queue_limit: Seconds of work a queue holds before 21611 (a number) or 30001 (a
            Messaging Service).
        account_mps: Messages per second the account may create (63017 above), or
            ``None``.
        expiry_code: The error code of a message that waits past its validity period.
    """

    senders: Mapping[str, float] = attrs.field(factory=dict, converter=_rates)
    kind_rates: Mapping[SenderKind, float | None] = attrs.field(
        factory=lambda: dict(DEFAULT_SENDER_RATES)
    )
    queue_limit: float = QUEUE_LIMIT
    account_mps: float | None = 2000.0
    expiry_code: int = 30036

    def __attrs_post_init__(self) -> None:
        if not self.queue_limit > 0:
            raise ValueError(f"the queue limit must be above 0, not {self.queue_limit}")
        if self.account_mps is not None and not self.account_mps > 0:
            raise ValueError(f"account_mps must be above 0, not {self.account_mps}")

    def rate(self, sender: str) -> float | None:
        """The rate of *sender*: configured, or its kind's."""
        if sender in self.senders:
            return self.senders[sender]
        return self.kind_rates.get(sender_kind(sender))


@attrs.frozen
class QueueSlot:
    """
    A message's way through its sender's queue.

    Attributes:
        at: When it leaves the queue (turns ``sending``) or fails.
        failure: ``(code, message)`` when it fails instead of being sent.
    """

    at: float
    failure: tuple[int, str] | None = None


@attrs.define
class SenderStats:
    """
    One sender's counters.

    Attributes:
        rate: Its rate.
        free_at: When its queue will have drained.
        sent: Messages that left its queue.
        units: Their segments (throughput units).
        refused: Creates refused with 21611.
        overflowed: Messages failed with 30001.
        expired: Messages failed past their validity period.
    """

    rate: float
    free_at: float = -math.inf
    sent: int = 0
    units: int = 0
    refused: int = 0
    overflowed: int = 0
    expired: int = 0


class SenderQueues:
    """
    The queues of every sender of one emulated account.

    Args:
        config: The model's settings.
        clock: The emulator's clock.
    """

    def __init__(self, config: QueueConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.senders: dict[str, SenderStats] = {}
        self.account_refused = 0
        self._slots: dict[str, QueueSlot] = {}
        self._creates: deque[float] = deque()

    def reset(self) -> None:
        """Empty every queue and forget the counters."""
        self.senders.clear()
        self.account_refused = 0
        self._slots.clear()
        self._creates.clear()

    def backlog(self, sender: str) -> float:
        """Seconds until *sender*'s queue is empty (0 when it is)."""
        stats = self.senders.get(sender)
        return max(0.0, stats.free_at - self.clock.now()) if stats is not None else 0.0

    def admit(
        self,
        *,
        sid: str,
        sender: str,
        service: bool,
        body: str,
        media: bool,
        validity: int | None,
    ) -> None:
        """
        Check a create against the account's rate and the sender's queue, and give the
        message its place in the queue.

        Raises:
            ApiError: 429 / 63017 above the account's messages per second; 400 / 21611
                when a number's queue is past the limit.
        """
        now = self.clock.now()
        mps = self.config.account_mps
        if mps is not None:
            creates = self._creates
            while creates and creates[0] <= now - 1.0:
                creates.popleft()
            if len(creates) >= mps:
                self.account_refused += 1
                raise ApiError(429, 63017, ACCOUNT_MESSAGE)
            creates.append(now)
        rate = self.config.rate(sender)
        if rate is None:
            return
        stats = self.senders.get(sender)
        if stats is None:
            stats = self.senders[sender] = SenderStats(rate)
        if not service and stats.free_at - now > self.config.queue_limit:
            stats.refused += 1
            raise ApiError(400, 21611, QUEUE_FULL_MESSAGE)
        valid = validity if validity is not None and 1 <= validity <= DEFAULT_VALIDITY else None
        units = throughput_units(body, sender_kind(sender), media=media)
        start = max(now, stats.free_at)
        if service and start - now > self.config.queue_limit:
            stats.overflowed += 1
            slot = QueueSlot(now, (30001, OVERFLOW_MESSAGE))
        elif start - now > (valid or DEFAULT_VALIDITY):
            # It would still be waiting when its validity runs out: it never occupies
            # the sender, and fails at that moment.
            stats.expired += 1
            expiry = (self.config.expiry_code, EXPIRED_MESSAGE)
            slot = QueueSlot(now + (valid or DEFAULT_VALIDITY), expiry)
        else:
            stats.free_at = start + units / stats.rate
            stats.sent += 1
            stats.units += units
            slot = QueueSlot(start)
        self._slots[sid] = slot

    def slot(self, sid: str) -> QueueSlot | None:
        """
        The message's way through its queue, decided when it was created.

        Returns:
            ``None`` for a message whose sender is not paced (it leaves at once).
        """
        return self._slots.get(sid)

    def done(self, sid: str) -> None:
        """The message has left its queue (or failed): its slot is no longer needed."""
        self._slots.pop(sid, None)

    def snapshot(self) -> dict[str, object]:
        """Counters per sender, for ``GET /emulator/stats``."""
        now = self.clock.now()
        return {
            "account_refused": self.account_refused,
            "senders": {
                sender: {
                    "rate": stats.rate,
                    "backlog_seconds": round(max(0.0, stats.free_at - now), 3),
                    "sent": stats.sent,
                    "units": stats.units,
                    "refused": stats.refused,
                    "overflowed": stats.overflowed,
                    "expired": stats.expired,
                }
                for sender, stats in sorted(self.senders.items())
            },
        }
