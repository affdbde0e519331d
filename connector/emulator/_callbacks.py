# SPDX-License-Identifier: MIT
"""
Signed webhook delivery: status callbacks and inbound-message webhooks.

Each message has its own FIFO queue and at most one worker task, so callbacks for one
message arrive in order while different messages proceed in parallel. Delivery never
blocks the API: enqueueing only appends and maybe starts a task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import attrs

from connector._twilio import compute_signature
from connector.emulator._outbox import CallbackOutbox
from connector.emulator._targets import OwnSockets


__all__ = ["CallbackDispatcher", "CallbackStats", "DeliveryAttempt"]

log = logging.getLogger("connector.emulator.callbacks")
# What is read of an answer: enough for any TwiML the emulator acts on.
_MAX_ANSWER = 256 * 1024


@attrs.define
class CallbackStats:
    """
    Delivery counters.

    Attributes:
        delivered: Callbacks the receiver accepted (any 2xx/3xx).
        failed: Callbacks given up on after every attempt.
        attempts_failed: Individual attempts that failed (each retry counts).
    """

    delivered: int = 0
    failed: int = 0
    attempts_failed: int = 0


@attrs.frozen
class DeliveryAttempt:
    """
    One try at delivering a callback, as the inbox's delivery log shows it.

    Attributes:
        url: Receiver URL.
        event: What was reported: the ``MessageStatus`` (or ``SmsStatus``) posted.
        signature: The ``X-Twilio-Signature`` sent.
        attempt: 1 for the first try, 2 for the first retry, ...
        at: When the try started (emulator clock, epoch seconds).
        latency_ms: How long the receiver took (real time).
        status: The receiver's HTTP status, or ``None`` when there was no answer.
        error: The connection error's name when there was no answer.
        delivered: Whether this try counted as delivered (2xx/3xx).
    """

    url: str
    event: str
    signature: str
    attempt: int
    at: float
    latency_ms: float
    status: int | None
    error: str | None
    delivered: bool

    def to_json(self) -> dict[str, object]:
        """
        Render for the admin API.

        Returns:
            The attributes as a JSON object.
        """
        return attrs.asdict(self)


Observer = Callable[[str, DeliveryAttempt], None]
#: Given a delivered callback's answer body (an incoming-message webhook's TwiML).
AnswerHandler = Callable[[bytes], Awaitable[None]]


def _loggable(url: str) -> str:
    # Webhook URLs may carry Basic-auth credentials (https://user:pass@host/...), which
    # Twilio supports; keep the password out of logs.
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<unparseable URL>"
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@attrs.frozen
class _Callback:
    url: str
    params: tuple[tuple[str, str], ...]
    row: int | None = None
    # Not kept across a restart: a resumed webhook's TwiML answer is not acted on.
    on_answer: AnswerHandler | None = None


class CallbackDispatcher:
    """
    Delivers form-encoded, signed POSTs, in order per key, with retries.

    Args:
        auth_token: Signing key.
        attempts: Tries per callback before it counts as failed.
        backoff: First retry delay in seconds; doubles each retry.
        timeout: Seconds to wait for the receiver.
        now: Clock for the delivery log's timestamps.
        sleep: How to wait between retries (tests pass a recorder instead of waiting).
        own: The emulator's own sockets, which no callback may reach.
        outbox: Where pending callbacks are kept across restarts (memory only if not).
    """

    def __init__(
        self,
        auth_token: str,
        *,
        attempts: int,
        backoff: float,
        timeout: float,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        own: OwnSockets | None = None,
        outbox: CallbackOutbox | None = None,
    ):
        self._auth_token = auth_token
        self._own = own or OwnSockets()
        self._outbox = outbox or CallbackOutbox(None)
        self._now = now
        self._sleep = sleep
        self.log: dict[str, list[DeliveryAttempt]] = {}
        """Every delivery attempt per key (message SID), oldest first; cleared by reset."""
        self.on_attempt: Observer | None = None
        """Called after every attempt with the key and the attempt (for live views)."""
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._queues: dict[str, deque[_Callback]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.stats = CallbackStats()

    def enqueue(
        self,
        key: str,
        url: str,
        params: Sequence[tuple[str, str]],
        *,
        on_answer: AnswerHandler | None = None,
    ) -> None:
        """
        Queue a POST of *params* to *url* behind earlier ones for the same *key*.

        Args:
            key: Ordering key (the message SID).
            url: Receiver URL.
            params: Form parameters, in posting order.
            on_answer: Awaited with the answer's body once delivered (the TwiML an
                incoming-message webhook answers with).
        """
        params = tuple(params)
        self._push(key, _Callback(url, params, self._outbox.add(key, url, params), on_answer))

    def resume(self) -> None:
        """Queue the callbacks an earlier process left pending (call inside the loop)."""
        for stored in self._outbox.open():
            self._push(stored.key, _Callback(stored.url, stored.params, stored.row))

    def _push(self, key: str, callback: _Callback) -> None:
        queue = self._queues.setdefault(key, deque())
        queue.append(callback)
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(
                self._work(key), name=f"emulator-callbacks-{key}"
            )

    def pending(self) -> int:
        """
        Count callbacks not yet delivered or given up on.

        Returns:
            The number queued, including ones in flight.
        """
        return sum(len(queue) for queue in self._queues.values())

    async def drain(self) -> None:
        """Wait until every queued callback, including ones queued meanwhile, is done."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop all workers and close the HTTP session; persisted callbacks stay pending."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        self._outbox.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reset(self) -> None:
        """Drop pending callbacks and zero the counters."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        self._outbox.clear()
        self.log.clear()
        self.stats = CallbackStats()

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                await self._deliver(key, queue[0])
                self._outbox.done(queue.popleft().row)
        finally:
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]
                if not queue:
                    self._queues.pop(key, None)

    def _record(self, key: str, attempt: DeliveryAttempt) -> None:
        self.log.setdefault(key, []).append(attempt)
        if self.on_attempt is not None:
            self.on_attempt(key, attempt)

    async def _deliver(self, key: str, callback: _Callback) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._own.resolver())
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        signature = compute_signature(callback.url, callback.params, self._auth_token)
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
        params = dict(callback.params)
        event = params.get("MessageStatus") or params.get("SmsStatus", "")
        refused = await self._own.refusal(callback.url)
        if refused is not None:
            # Not retried: the URL would be refused again.
            self._record(
                key,
                DeliveryAttempt(
                    callback.url, event, signature, 1, self._now(), 0.0, None, "refused", False
                ),
            )
            self.stats.failed += 1
            log.warning("callback to %s refused: %s", _loggable(callback.url), refused)
            return
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            at, started = self._now(), time.perf_counter()
            status: int | None = None
            error: str | None = None
            answer = b""
            try:
                # A redirect is not followed: its target is not checked like the URL.
                async with self._session.post(
                    callback.url, data=list(callback.params), headers=headers, allow_redirects=False
                ) as response:
                    answer = await _read_answer(response)
                    status = response.status
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = reason = type(exc).__name__
            delivered = status is not None and status < 400
            latency = round((time.perf_counter() - started) * 1000, 1)
            self._record(
                key,
                DeliveryAttempt(
                    callback.url, event, signature, attempt, at, latency, status, error, delivered
                ),
            )
            if delivered:
                self.stats.delivered += 1
                if callback.on_answer is not None:
                    try:
                        await callback.on_answer(answer)
                    except Exception:
                        log.exception("acting on the answer of %s failed", _loggable(callback.url))
                return
            self.stats.attempts_failed += 1
            log.info(
                "callback to %s failed (%s), attempt %d", _loggable(callback.url), reason, attempt
            )
            if attempt < self._attempts:
                await self._sleep(delay)
                delay *= 2
        self.stats.failed += 1


async def _read_answer(response: aiohttp.ClientResponse) -> bytes:
    """The answer's body, up to ``_MAX_ANSWER`` bytes (the rest is not read)."""
    parts: list[bytes] = []
    size = 0
    while size < _MAX_ANSWER:
        chunk = await response.content.read(_MAX_ANSWER - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)
