# SPDX-License-Identifier: MIT
"""
The time that limits and pacing run on: a protocol, and the event loop's clock.

Anything with ``now()`` (seconds since 1970) and ``async sleep(seconds)`` will do. The
emulator's clocks (``connector.emulator.Clock`` with its ``scale``, ``ManualClock``)
fit it without this module importing them, so a test can run the emulator and the
connector's pacing on one accelerated clock, and cover hours of queueing in seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


__all__ = ["Clock", "LoopClock"]


class Clock(Protocol):
    """A source of time: what limiters and pacing read and wait on."""

    def now(self) -> float:
        """Seconds since 1970, on this clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait *seconds* of this clock's time."""
        ...


class LoopClock:
    """
    Wall time that advances with the running event loop's clock (virtual in tests).

    It binds to the loop of its first use; use one per event loop.
    """

    __slots__ = ("_loop", "_offset")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offset = 0.0

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._offset = time.time() - loop.time()
        return loop

    def now(self) -> float:
        """Seconds since 1970, moving with the event loop's time."""
        loop = self._loop or self._bind()
        return self._offset + loop.time()

    async def sleep(self, seconds: float) -> None:
        """Wait *seconds* of the loop's time."""
        await asyncio.sleep(seconds)
