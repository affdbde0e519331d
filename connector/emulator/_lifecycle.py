# SPDX-License-Identifier: MIT
"""
The status clock: moves messages through Twilio's statuses over (emulated) time.

Outbound SMS go ``queued -> sending -> sent -> delivered``; Messaging Service sends start
at ``accepted`` and scheduled sends at ``scheduled``. Failure destinations end
``undelivered`` (after ``sent``) or ``failed`` (straight from ``queued``). Each step is
planned only when the previous one happened, and it names the status it expects to
find, so a cancel or delete simply makes the pending step a no-op.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable

from connector._twilio import count_segments
from connector.emulator._clock import Clock
from connector.emulator._handsets import FAULT_CODES
from connector.emulator._queues import SenderQueues
from connector.emulator._records import MessageRecord
from connector.emulator._store import MessageStore
from connector.emulator._validation import ALWAYS_VALID_FROM, FAILURE_NUMBERS, bare_number


__all__ = ["Lifecycle", "Transition"]

PRICE_PER_SEGMENT = 0.0079

Transition = Callable[[MessageRecord, str], None]
"""Called after every status change with the record and its previous status."""


class Lifecycle:
    """
    Plans and applies status transitions.

    Args:
        store: Where the messages live.
        clock: Emulated time.
        delivery_delay: Seconds from ``queued`` to the final status, split in three steps.
        on_transition: Observer for every applied transition.
        queues: The senders' queues: a queued message turns ``sending`` when it leaves
            its sender's queue, or fails there (30001, expiry).
    """

    def __init__(
        self,
        store: MessageStore,
        clock: Clock,
        delivery_delay: float,
        on_transition: Transition,
        *,
        queues: SenderQueues | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._queues = queues
        self._step = delivery_delay / 3
        self._on_transition = on_transition
        self._heap: list[tuple[float, int, str, str, str]] = []
        self._counter = 0
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._unsubscribe = clock.subscribe(self.run_due)

    def close(self) -> None:
        """Stop timers and forget planned steps."""
        self._unsubscribe()
        self.clear()

    def clear(self) -> None:
        """Forget planned steps (for reset)."""
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def start(self, record: MessageRecord) -> None:
        """
        Plan the first step for a message in its initial status.

        Args:
            record: A new (or reloaded, unfinished) message.
        """
        self._plan_next(record)

    def _plan_next(self, record: MessageRecord) -> None:
        status, now = record.status, self._clock.now()
        failure = _failure(record)
        if status == "scheduled" and record.send_at is not None:
            self._plan(record.send_at, record, "queued")
        elif status == "accepted":
            self._plan(now, record, "queued")
        elif status == "queued":
            slot = self._queues.slot(record.sid) if self._queues is not None else None
            nxt = "failed" if failure and failure[0] == "failed" else "sending"
            if slot is None:
                self._plan(now + self._step, record, nxt)
            else:
                # It leaves its sender's queue (or fails in it) at its slot.
                self._plan(slot.at, record, "failed" if slot.failure else nxt)
        elif status == "sending":
            self._plan(now + self._step, record, "sent")
        elif status == "sent" and record.direction != "inbound":
            self._plan(now + self._step, record, failure[0] if failure else "delivered")

    def _plan(self, due: float, record: MessageRecord, target: str) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (due, self._counter, record.sid, record.status, target))
        self._arm()

    def _arm(self) -> None:
        if not self._heap:
            return
        delay = self._heap[0][0] - self._clock.now()
        loop = asyncio.get_running_loop()
        if delay <= 0:
            if not self._soon:
                self._soon = True
                loop.call_soon(self._run_soon)
            return
        # Timers run in real time; a scaled clock gets there sooner.
        delay = self._clock.real_seconds(delay)
        if self._timer is not None:
            if self._timer.when() <= loop.time() + delay:
                return
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._run_timer)

    def _run_soon(self) -> None:
        self._soon = False
        self.run_due()

    def _run_timer(self) -> None:
        self._timer = None
        self.run_due()

    def run_due(self) -> None:
        """Apply every step whose time has come (also steps those steps plan)."""
        heap = self._heap
        while heap and heap[0][0] <= self._clock.now():
            _, _, sid, expected, target = heapq.heappop(heap)
            record = self._store.get(sid)
            if record is None or record.status != expected:
                continue
            self.apply(record, target)
        if heap:
            self._arm()

    def apply(self, record: MessageRecord, status: str) -> None:
        """
        Move *record* to *status* now, notify, persist and plan the next step.

        Args:
            record: The message.
            status: The new status.
        """
        previous = record.status
        now = self._clock.now()
        record.status = status
        record.date_updated = now
        if status == "queued" and record.from_ is None:
            # The Messaging Service "picks" a sender from its pool.
            record.from_ = ALWAYS_VALID_FROM
        if status == "queued" and record.num_segments == 0:
            record.num_segments = count_segments(record.body)
        if status in ("sending", "failed") and record.date_sent is None:
            record.date_sent = now
        if status == "sent":
            record.price = f"{-PRICE_PER_SEGMENT * max(1, record.num_segments):.5f}"
        if status in ("failed", "undelivered"):
            slot = self._queues.slot(record.sid) if self._queues is not None else None
            failure = _failure(record)
            if slot is not None and slot.failure is not None:
                code, text = slot.failure
            elif failure:
                code, text = failure[1], failure[2]
            else:
                code, text = 30008, "Unknown error"
            record.error_code, record.error_message = code, text
        if self._queues is not None and status in ("sending", "failed", "canceled"):
            self._queues.done(record.sid)
        self._store.changed(record)
        self._on_transition(record, previous)
        self._plan_next(record)


def _failure(record: MessageRecord) -> tuple[str, int, str] | None:
    # An inbox failure switch (stored on the record when it was sent) wins over the
    # failure destinations, so switching a magic number still does what the user chose.
    if record.fault_code is not None and record.fault_code in FAULT_CODES:
        status, text = FAULT_CODES[record.fault_code]
        return status, record.fault_code, text
    return FAILURE_NUMBERS.get(bare_number(record.to))


def raw_dlr_done_date(timestamp: float) -> str:
    """
    Format ``RawDlrDoneDate`` as carriers report it: ``YYMMDDhhmm`` in UTC.

    Args:
        timestamp: Epoch seconds.

    Returns:
        The 10-digit string.
    """
    return time.strftime("%y%m%d%H%M", time.gmtime(timestamp))
