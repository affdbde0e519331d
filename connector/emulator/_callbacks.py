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
from collections import deque
from collections.abc import Sequence

import aiohttp
import attrs

from connector.signature import compute_signature


__all__ = ["CallbackDispatcher", "CallbackStats"]

log = logging.getLogger("connector.emulator.callbacks")


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
class _Callback:
    url: str
    params: tuple[tuple[str, str], ...]


class CallbackDispatcher:
    """
    Delivers form-encoded, signed POSTs, in order per key, with retries.

    Args:
        auth_token: Signing key.
        attempts: Tries per callback before it counts as failed.
        backoff: First retry delay in seconds; doubles each retry.
        timeout: Seconds to wait for the receiver.
    """

    def __init__(self, auth_token: str, *, attempts: int, backoff: float, timeout: float):
        self._auth_token = auth_token
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._queues: dict[str, deque[_Callback]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.stats = CallbackStats()

    def enqueue(self, key: str, url: str, params: Sequence[tuple[str, str]]) -> None:
        """
        Queue a POST of *params* to *url* behind earlier ones for the same *key*.

        Args:
            key: Ordering key (the message SID).
            url: Receiver URL.
            params: Form parameters, in posting order.
        """
        queue = self._queues.setdefault(key, deque())
        queue.append(_Callback(url, tuple(params)))
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
        """Stop all workers and close the HTTP session."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
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
        self.stats = CallbackStats()

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                await self._deliver(queue[0])
                queue.popleft()
        finally:
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]
                if not queue:
                    self._queues.pop(key, None)

    async def _deliver(self, callback: _Callback) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {
            "X-Twilio-Signature": compute_signature(
                callback.url, callback.params, self._auth_token
            ),
            "User-Agent": "TwilioProxy/1.1",
        }
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._session.post(
                    callback.url, data=list(callback.params), headers=headers
                ) as response:
                    await response.read()
                    if response.status < 400:
                        self.stats.delivered += 1
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = type(exc).__name__
            self.stats.attempts_failed += 1
            log.info("callback to %s failed (%s), attempt %d", callback.url, reason, attempt)
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        self.stats.failed += 1
