# SPDX-License-Identifier: MIT
"""
Everything one emulator instance knows: messages, clocks, throttle, faults and counters.
"""

from __future__ import annotations

import mimetypes
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs

from connector.emulator._callbacks import CallbackDispatcher
from connector.emulator._config import EmulatorConfig
from connector.emulator._faults import FaultInjector
from connector.emulator._lifecycle import Lifecycle, raw_dlr_done_date
from connector.emulator._records import API_VERSION, MediaRecord, MessageRecord, new_sid
from connector.emulator._segments import count_segments
from connector.emulator._store import MessageStore
from connector.emulator._throttle import SlidingWindowThrottle
from connector.emulator._validation import ALWAYS_VALID_FROM, SendRequest, bare_number


__all__ = ["EmulatorState", "RequestStats"]

_UNFINISHED = frozenset({"accepted", "scheduled", "queued", "sending", "receiving"})


@attrs.define
class RequestStats:
    """
    API request counters.

    Attributes:
        requests: Twilio API requests answered (any status, 429s included).
        throttled: Requests answered 429.
        faults_error: Injected 5xx answers.
        faults_dropped: Connections dropped after processing.
        faults_delayed: Requests given added latency.
    """

    requests: int = 0
    throttled: int = 0
    faults_error: int = 0
    faults_dropped: int = 0
    faults_delayed: int = 0


def _content_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    return guessed or "application/octet-stream"


class EmulatorState:
    """
    The emulator's model, independent of HTTP.

    Args:
        config: The configuration.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.store = MessageStore(config.db_path)
        self.callbacks = CallbackDispatcher(
            config.auth_token,
            attempts=config.callback_attempts,
            backoff=config.callback_backoff,
            timeout=config.callback_timeout,
        )
        self.throttle = (
            SlidingWindowThrottle(config.throttle[0], config.throttle[1], self.clock.now)
            if config.throttle
            else None
        )
        self.faults = FaultInjector(config.faults)
        self.stats = RequestStats()
        self.owned = frozenset(
            {ALWAYS_VALID_FROM, *map(bare_number, config.numbers), *config.incoming}
        )
        self.lifecycle: Lifecycle | None = None

    async def open(self) -> None:
        """Open the store and resume unfinished messages; call inside the event loop."""
        self.store.open()
        self.lifecycle = Lifecycle(
            self.store, self.clock, self.config.delivery_delay, self._on_transition
        )
        for record in self.store.all():
            if record.status in _UNFINISHED or record.status == "sent":
                self.lifecycle.start(record)

    async def close(self) -> None:
        """Stop callbacks and timers and close the store."""
        if self.lifecycle is not None:
            self.lifecycle.close()
        await self.callbacks.close()
        self.store.close()

    async def reset(self) -> None:
        """Forget all messages, planned transitions, callbacks, windows and counters."""
        if self.lifecycle is not None:
            self.lifecycle.clear()
        await self.callbacks.reset()
        self.store.clear()
        if self.throttle is not None:
            self.throttle.reset()
        self.faults.reset()
        self.stats = RequestStats()

    def _lifecycle(self) -> Lifecycle:
        if self.lifecycle is None:
            raise RuntimeError("the emulator is not open")
        return self.lifecycle

    def create(self, request: SendRequest) -> MessageRecord:
        """
        Store a new outbound message in its initial status (not yet committed).

        Args:
            request: A validated send.

        Returns:
            The new record.
        """
        now = self.clock.now()
        if request.send_at is not None:
            status = "scheduled"
        elif request.messaging_service_sid is not None:
            status = "accepted"
        else:
            status = "queued"
        immediate = status == "queued"
        record = MessageRecord(
            seq=self.store.next_seq(),
            sid=new_sid("MM" if request.media_urls else "SM"),
            account_sid=self.config.account_sid,
            to=request.to,
            from_=request.from_ if immediate or request.from_ else None,
            body=request.body,
            status=status,
            direction="outbound-api",
            num_segments=count_segments(request.body) if immediate else 0,
            messaging_service_sid=request.messaging_service_sid,
            date_created=now,
            date_updated=now,
            status_callback=request.status_callback,
            send_at=request.send_at,
            media=[
                MediaRecord(new_sid("ME"), _content_type(url), url, now)
                for url in request.media_urls
            ],
        )
        self.store.add(record)
        return record

    def start(self, record: MessageRecord) -> None:
        """
        Start the status clock for a committed message.

        Args:
            record: The message returned by :meth:`create`.
        """
        self._lifecycle().start(record)

    def receive(
        self,
        *,
        to: str,
        from_: str,
        body: str,
        media_urls: Sequence[str] = (),
        messaging_service_sid: str | None = None,
        webhook: str | None = None,
    ) -> MessageRecord:
        """
        Store an inbound message and queue its signed webhook.

        Args:
            to: The account's number receiving it.
            from_: The sender.
            body: Text.
            media_urls: Media URLs.
            messaging_service_sid: Optional ``MG...`` SID.
            webhook: URL to POST to; defaults to the one configured for *to*.

        Returns:
            The stored record (status ``received``).
        """
        now = self.clock.now()
        record = MessageRecord(
            seq=self.store.next_seq(),
            sid=new_sid("MM" if media_urls else "SM"),
            account_sid=self.config.account_sid,
            to=to,
            from_=from_,
            body=body,
            status="received",
            direction="inbound",
            num_segments=count_segments(body),
            messaging_service_sid=messaging_service_sid,
            date_created=now,
            date_updated=now,
            date_sent=now,
            price=f"{-0.0079 * count_segments(body):.5f}",
            media=[MediaRecord(new_sid("ME"), _content_type(u), u, now) for u in media_urls],
        )
        self.store.add(record)
        url = webhook or self.config.incoming.get(bare_number(to))
        if url:
            params = [
                ("ToCountry", "US"),
                ("SmsMessageSid", record.sid),
                ("NumMedia", str(len(record.media))),
                ("SmsSid", record.sid),
                ("SmsStatus", "received"),
                ("Body", body),
                ("To", to),
                ("NumSegments", str(record.num_segments)),
                ("MessageSid", record.sid),
                ("AccountSid", record.account_sid),
                ("From", from_),
                ("ApiVersion", API_VERSION),
            ]
            if messaging_service_sid:
                params.append(("MessagingServiceSid", messaging_service_sid))
            for index, item in enumerate(record.media):
                params.append((f"MediaUrl{index}", item.url))
                params.append((f"MediaContentType{index}", item.content_type))
            self.callbacks.enqueue(record.sid, url, params)
        return record

    def cancel(self, record: MessageRecord) -> bool:
        """
        Cancel a message that has not been sent yet.

        Args:
            record: The message.

        Returns:
            ``False`` if it is past the point of cancelling.
        """
        if record.status not in ("scheduled", "accepted"):
            return False
        self._lifecycle().apply(record, "canceled")
        return True

    def is_finished(self, record: MessageRecord) -> bool:
        """
        Whether a message reached a status where it may be redacted or deleted.

        Args:
            record: The message.

        Returns:
            ``True`` unless it is still on its way.
        """
        return record.status not in _UNFINISHED

    def _on_transition(self, record: MessageRecord, previous: str) -> None:
        url = record.status_callback
        if not url:
            return
        status = record.status
        params = [
            ("SmsSid", record.sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", record.to),
            ("MessageSid", record.sid),
            ("AccountSid", record.account_sid),
            ("From", record.from_ or ""),
            ("ApiVersion", API_VERSION),
        ]
        if record.messaging_service_sid:
            params.append(("MessagingServiceSid", record.messaging_service_sid))
        if status in ("failed", "undelivered") and record.error_code is not None:
            params.append(("ErrorCode", str(record.error_code)))
        if status in ("delivered", "undelivered"):
            params.append(("RawDlrDoneDate", raw_dlr_done_date(record.date_updated)))
        self.callbacks.enqueue(record.sid, url, params)

    def snapshot(self) -> dict[str, Any]:
        """
        Counters for ``GET /emulator/stats``.

        Returns:
            Requests, 429s, faults, messages by status and callback outcomes.
        """
        by_status = Counter(record.status for record in self.store.all())
        return {
            "requests": self.stats.requests,
            "throttled": self.stats.throttled,
            "faults": {
                "errors": self.stats.faults_error,
                "dropped": self.stats.faults_dropped,
                "delayed": self.stats.faults_delayed,
            },
            "messages": {"total": len(self.store), "by_status": dict(sorted(by_status.items()))},
            "callbacks": {
                "delivered": self.callbacks.stats.delivered,
                "failed": self.callbacks.stats.failed,
                "attempts_failed": self.callbacks.stats.attempts_failed,
                "pending": self.callbacks.pending(),
            },
        }
