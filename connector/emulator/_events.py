# SPDX-License-Identifier: MIT
"""
In-process change notifications for live views and long polls.

Publishing never blocks: each subscriber has its own unbounded queue, and a listener
that stops reading only grows its own queue until it unsubscribes (SSE handlers
unsubscribe when the browser disconnects).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


__all__ = ["EventHub"]


class EventHub:
    """Fan-out of ``{"type": ..., ...}`` events to every current subscriber."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._version = 0
        self._changed: asyncio.Event | None = None

    @property
    def version(self) -> int:
        """A counter increased by every event (lets pollers detect missed changes)."""
        return self._version

    def publish(self, kind: str, **data: Any) -> None:
        """
        Send an event to every subscriber.

        Args:
            kind: Event type, e.g. ``"message"``, ``"status"``, ``"callback"``.
            **data: JSON-compatible payload.
        """
        self._version += 1
        event = {"type": kind, "version": self._version, **data}
        for queue in self._queues:
            queue.put_nowait(event)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_changed(self, within: float) -> bool:
        """
        Wait for the next event, at most *within* seconds (real time).

        Args:
            within: Seconds.

        Returns:
            ``False`` if the time ran out first.
        """
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            await asyncio.wait_for(self._changed.wait(), within)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Tell every subscriber to stop (on server shutdown): they receive ``type="close"``."""
        for queue in self._queues:
            queue.put_nowait({"type": "close", "version": self._version})

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """
        Receive events while the context is open.

        Yields:
            The subscriber's queue.
        """
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)
