# SPDX-License-Identifier: MIT
"""
Everything one emulator instance knows: messages, clocks, throttle, faults and counters.
"""

from __future__ import annotations

import asyncio
import functools
import mimetypes
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs

from connector._twilio import count_segments, keyword_of
from connector.emulator._callbacks import CallbackDispatcher, DeliveryAttempt
from connector.emulator._config import EmulatorConfig
from connector.emulator._errors import ApiError
from connector.emulator._events import EventHub
from connector.emulator._faults import FaultInjector
from connector.emulator._handsets import (
    AUTO_REPLIES,
    FAULT_CODES,
    UNSUBSCRIBED_CODE,
    UNSUBSCRIBED_MESSAGE,
    HandsetRules,
)
from connector.emulator._lifecycle import Lifecycle, raw_dlr_done_date
from connector.emulator._media import MediaFiles, StoredMedia
from connector.emulator._outbox import CallbackOutbox
from connector.emulator._queues import SenderQueues
from connector.emulator._records import API_VERSION, MediaRecord, MessageRecord, new_sid
from connector.emulator._search import MessageQuery, send_thread_key, thread_parties
from connector.emulator._store import MessageStore, RefusedSend
from connector.emulator._targets import OwnSockets
from connector.emulator._throttle import SlidingWindowThrottle
from connector.emulator._twiml import send_replies
from connector.emulator._validation import ALWAYS_VALID_FROM, SendRequest, bare_number


__all__ = ["EmulatorState", "RequestStats"]

_RULES_KEY = "handset_rules"
_LATEST_DATE = 253370764800.0  # 9999-01-01T00:00:00Z: every stored time must print as a date
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
        self.own_sockets = OwnSockets()
        """Where the emulator listens: no callback or webhook may go there."""
        self.callbacks = CallbackDispatcher(
            config.auth_token,
            attempts=config.callback_attempts,
            backoff=config.callback_backoff,
            timeout=config.callback_timeout,
            now=config.clock.now,
            own=self.own_sockets,
            outbox=CallbackOutbox(config.db_path),
        )
        self.events = EventHub()
        """Change notifications for the inbox's live view and long polls."""
        self.callbacks.on_attempt = self._on_callback_attempt
        self.rules = HandsetRules(on_change=self._on_rules_changed)
        """Per-handset failure switches and STOP/START opt-outs."""
        self.throttle = (
            SlidingWindowThrottle(config.throttle[0], config.throttle[1], self.clock.now)
            if config.throttle
            else None
        )
        self.faults = FaultInjector(config.faults)
        self.stats = RequestStats()
        self.registered: dict[str, str] = {}
        """Webhooks for incoming messages registered while running (a listener's)."""
        self.owned = frozenset(
            {ALWAYS_VALID_FROM, *map(bare_number, config.numbers), *config.incoming}
        )
        self.queues = SenderQueues(config.queues, self.clock) if config.queues else None
        """Twilio's per-sender queues, when the configuration models them."""
        self.lifecycle: Lifecycle | None = None
        self.media = MediaFiles()
        """Media bytes posted with incoming MMS, and the emulator's address for media URLs."""

    async def open(self) -> None:
        """Open the store and resume unfinished messages; call inside the event loop."""
        self.store.open()
        # Before the lifecycles resume, so each message's callbacks stay in order.
        self.callbacks.resume()
        stored_rules = self.store.load_meta(_RULES_KEY)
        if stored_rules is not None:
            self.rules.load(stored_rules)
        self.lifecycle = Lifecycle(
            self.store,
            self.clock,
            self.config.delivery_delay,
            self._on_transition,
            queues=self.queues,
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

    async def reset(self, number: str | None = None) -> int:
        """
        Forget all messages, planned transitions, callbacks, windows, counters, failure
        switches and opt-outs; or, given *number*, only the messages to or from it and
        its switches and opt-outs.

        Args:
            number: A handset or account number; ``None`` resets everything.

        Returns:
            How many messages were forgotten.
        """
        if number is not None:
            doomed = [
                record
                for record in self.store.all()
                if number in thread_parties(record)
                or bare_number(number) in (bare_number(record.to), bare_number(record.from_ or ""))
            ]
            for record in doomed:
                # The lifecycle skips steps of messages it can no longer find.
                self.store.delete(record.sid)
                self.callbacks.log.pop(record.sid, None)
            self.store.forget_refused(
                lambda r: (
                    number in r.thread.split("|")
                    or bare_number(number) in (bare_number(r.to), bare_number(r.from_ or ""))
                )
            )
            self.rules.forget(number)
            self.events.publish("reset", number=number)
            return len(doomed)
        count = len(self.store)
        if self.lifecycle is not None:
            self.lifecycle.clear()
        await self.callbacks.reset()
        self.store.clear()
        if self.throttle is not None:
            self.throttle.reset()
        if self.queues is not None:
            self.queues.reset()
        self.faults.reset()
        self.stats = RequestStats()
        self.rules.forget()
        self.events.publish("reset", number=None)
        return count

    def _lifecycle(self) -> Lifecycle:
        if self.lifecycle is None:
            raise RuntimeError("the emulator is not open")
        return self.lifecycle

    def create(self, request: SendRequest, *, direction: str = "outbound-api") -> MessageRecord:
        """
        Store a new outbound message in its initial status (not yet committed).

        A handset that texted STOP to the sender, or whose failure switch is set to
        21610, refuses the send as Twilio does (the store keeps a note of the refusal
        for the inbox); another switched code is stored on the record for the lifecycle
        to end with.

        Args:
            request: A validated send.
            direction: ``outbound-api``, or ``outbound-reply`` for a webhook's TwiML.

        Returns:
            The new record.

        Raises:
            ApiError: 400 / 21610 for an unsubscribed recipient; with queues modelled,
                400 / 21611 for a number whose queue is full and 429 / 63017 above the
                account's messages per second.
        """
        senders = [s for s in (request.from_, request.messaging_service_sid) if s]
        if any(self.rules.is_opted_out(sender, request.to) for sender in senders):
            raise self._refuse(request, UNSUBSCRIBED_CODE, UNSUBSCRIBED_MESSAGE)
        fault = self.rules.take_fault(request.to)
        if fault is not None and FAULT_CODES[fault.code][0] == "rejected":
            raise self._refuse(request, fault.code, FAULT_CODES[fault.code][1])
        now = self.clock.now()
        if request.send_at is not None:
            status = "scheduled"
        elif request.messaging_service_sid is not None:
            status = "accepted"
        else:
            status = "queued"
        immediate = status == "queued"
        sid = new_sid("MM" if request.media_urls else "SM")
        sender = request.from_ or request.messaging_service_sid
        if self.queues is not None and request.send_at is None and sender:
            self.queues.admit(
                sid=sid,
                sender=sender,
                service=request.messaging_service_sid is not None,
                body=request.body,
                media=bool(request.media_urls),
                validity=request.validity_period,
            )
        record = MessageRecord(
            seq=self.store.next_seq(),
            sid=sid,
            account_sid=self.config.account_sid,
            to=request.to,
            from_=request.from_ if immediate or request.from_ else None,
            body=request.body,
            status=status,
            direction=direction,
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
            timeline=[(status, now)],
            fault_code=fault.code if fault is not None else None,
        )
        self.store.add(record)
        self._published("message", record)
        return record

    def _refuse(self, request: SendRequest, code: int, message: str) -> ApiError:
        refused = RefusedSend(
            seq=self.store.next_seq(),
            thread=send_thread_key(
                to=request.to,
                from_=request.from_,
                messaging_service_sid=request.messaging_service_sid,
            ),
            to=request.to,
            from_=request.from_,
            messaging_service_sid=request.messaging_service_sid,
            body=request.body,
            media_urls=tuple(request.media_urls),
            code=code,
            message=message,
            at=self.clock.now(),
        )
        self.store.refuse(refused)
        self.events.publish("refused", thread=refused.thread, to=refused.to, code=code)
        return ApiError(400, code, message)

    def start(self, record: MessageRecord) -> None:
        """
        Start the status clock for a committed message.

        Args:
            record: The message returned by :meth:`create`.
        """
        self._lifecycle().start(record)

    def webhook_for(self, number: str) -> str | None:
        """
        Where incoming messages to *number* are posted: the webhook registered while
        running, else the configured one (``--incoming``), else nowhere.

        Args:
            number: One of the account's numbers.
        """
        bare = bare_number(number)
        return self.registered.get(bare) or self.config.incoming.get(bare)

    def register_webhook(self, number: str, url: str | None) -> None:
        """
        Post incoming messages to *number* to *url* from now on (a number the account
        then owns), or, with ``None``, to the configured webhook again.

        Args:
            number: The number.
            url: The webhook, already checked (``http(s)``, not this emulator).
        """
        bare = bare_number(number)
        if url is None:
            self.registered.pop(bare, None)
        else:
            self.registered[bare] = url
        self.owned = frozenset(
            {
                ALWAYS_VALID_FROM,
                *map(bare_number, self.config.numbers),
                *self.config.incoming,
                *self.registered,
            }
        )

    def receive(
        self,
        *,
        to: str,
        from_: str,
        body: str,
        media_urls: Sequence[str] = (),
        messaging_service_sid: str | None = None,
        webhook: str | None = None,
        media_files: Sequence[StoredMedia] = (),
    ) -> MessageRecord:
        """
        Store an inbound message and queue its signed webhook.

        The webhook's ``MediaUrl0``... are Twilio's media URLs on this emulator (once
        its address is known), as Twilio posts its own.

        Args:
            to: The account's number receiving it.
            from_: The sender.
            body: Text.
            media_urls: Media URLs.
            messaging_service_sid: Optional ``MG...`` SID.
            webhook: URL to POST to; defaults to the one configured for *to*.
            media_files: Media posted with the message (their bytes), after *media_urls*.

        Returns:
            The stored record (status ``received``).
        """
        now = self.clock.now()
        sid = new_sid("MM" if media_urls or media_files else "SM")
        media = [MediaRecord(new_sid("ME"), _content_type(u), u, now) for u in media_urls]
        for upload in media_files:
            item = MediaRecord(new_sid("ME"), upload.content_type, "", now)
            self.media.put(item.sid, upload)
            base = self.media.base_url or ""
            item.url = self.media.store_url(base, sid, item.sid)
            media.append(item)
        record = MessageRecord(
            seq=self.store.next_seq(),
            sid=sid,
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
            media=media,
            timeline=[("received", now)],
        )
        self.store.add(record)
        self._published("message", record)
        url = webhook or self.webhook_for(to)
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
                served = self.media.content_url(record.account_sid, record.sid, item.sid)
                params.append((f"MediaUrl{index}", served or item.url))
                params.append((f"MediaContentType{index}", item.content_type))
            self.callbacks.enqueue(
                record.sid, url, params, on_answer=functools.partial(send_replies, self, record)
            )
        self._opt_out_keywords(record)
        return record

    def _opt_out_keywords(self, inbound: MessageRecord) -> None:
        # Twilio's default opt-out handling: the keyword still reaches the webhook, the
        # opt-out is recorded for the pair, and Twilio answers the handset itself.
        keyword = keyword_of(inbound.body) if self.config.opt_out_keywords else None
        if keyword is None or not inbound.from_:
            return
        ours, handset = thread_parties(inbound)
        if keyword in ("stop", "start"):
            self.rules.set_opted_out(ours, handset, keyword == "stop")
        now = self.clock.now()
        reply = MessageRecord(
            seq=self.store.next_seq(),
            sid=new_sid("SM"),
            account_sid=self.config.account_sid,
            to=inbound.from_,
            from_=inbound.to,
            body=AUTO_REPLIES[keyword],
            status="delivered",
            direction="outbound-reply",
            num_segments=count_segments(AUTO_REPLIES[keyword]),
            messaging_service_sid=inbound.messaging_service_sid,
            date_created=now,
            date_updated=now,
            date_sent=now,
            price=f"{-0.0079 * count_segments(AUTO_REPLIES[keyword]):.5f}",
            timeline=[("delivered", now)],
        )
        self.store.add(reply)
        self._published("message", reply)

    def seed(self, items: Sequence[dict[str, Any]]) -> list[MessageRecord]:
        """
        Store ready-made messages as they are: no validation, lifecycle or callbacks.

        Args:
            items: Objects with ``to``, ``from``, ``body`` and optionally ``direction``
                (default ``outbound-api``), ``status`` (default ``delivered`` or
                ``received``), ``error_code``, ``error_message``, ``date_created``
                (epoch seconds; default now) and ``messaging_service_sid``.

        Returns:
            The stored records, in the given order.

        Raises:
            ValueError: If an item lacks ``to`` or ``from`` or has a bad value.
        """
        created = []
        for item in items:
            to, sender = str(item.get("to") or ""), str(item.get("from") or "")
            if not to or not sender:
                raise ValueError("every seeded message needs 'to' and 'from'")
            direction = str(item.get("direction") or "outbound-api")
            if direction not in ("inbound", "outbound-api", "outbound-reply"):
                raise ValueError(f"unknown direction {direction!r}")
            default_status = "received" if direction == "inbound" else "delivered"
            status = str(item.get("status") or default_status)
            at = float(item.get("date_created") or self.clock.now())
            if not 0 <= at < _LATEST_DATE:  # NaN too: it would make every list answer 500
                raise ValueError(f"date_created must be epoch seconds before 9999, got {at}")
            body = str(item.get("body") or "")
            code = item.get("error_code")
            record = MessageRecord(
                seq=self.store.next_seq(),
                sid=new_sid("SM"),
                account_sid=self.config.account_sid,
                to=to,
                from_=sender,
                body=body,
                status=status,
                direction=direction,
                num_segments=count_segments(body),
                messaging_service_sid=item.get("messaging_service_sid") or None,
                date_created=at,
                date_updated=at,
                date_sent=at,
                price=f"{-0.0079 * count_segments(body):.5f}",
                error_code=int(code) if code is not None else None,
                error_message=item.get("error_message")
                or (
                    FAULT_CODES[int(code)][1]
                    if code is not None and int(code) in FAULT_CODES
                    else None
                ),
                timeline=[(status, at)],
            )
            self.store.add(record)
            self._published("message", record)
            created.append(record)
        return created

    def find(self, query: MessageQuery) -> list[MessageRecord]:
        """
        Messages matching *query*, newest first.

        Args:
            query: The filters.

        Returns:
            The matches.
        """
        return list(self.store.older_than(None, query.matches))

    async def wait_for(self, query: MessageQuery, within: float) -> MessageRecord | None:
        """
        Return the oldest message matching *query*, waiting up to *within* seconds of
        real time for one to arrive (a long poll; the emulator clock is not involved).

        Args:
            query: The filters; set ``after_seq`` to ignore earlier messages.
            within: Seconds to wait at most.

        Returns:
            The message, or ``None`` if none matched in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = next(self.store.newer_than(query.after_seq, query.matches), None)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self.events.wait_changed(remaining):
                return None

    def _published(self, kind: str, record: MessageRecord) -> None:
        self.events.publish(
            kind,
            sid=record.sid,
            to=record.to,
            **{"from": record.from_},
            status=record.status,
            direction=record.direction,
        )

    def _on_callback_attempt(self, key: str, attempt: DeliveryAttempt) -> None:
        self.events.publish("callback", sid=key, delivered=attempt.delivered)

    def _on_rules_changed(self) -> None:
        self.store.save_meta(_RULES_KEY, self.rules.to_data())
        self.events.publish("rules")

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
        record.timeline.append((record.status, record.date_updated))
        self._published("status", record)
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
        queues = {"queues": self.queues.snapshot()} if self.queues is not None else {}
        return {
            **queues,
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
