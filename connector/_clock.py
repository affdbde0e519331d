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
from collections.abc import Callable
from typing import Protocol


__all__ = ["Clock", "LoopClock", "coarse_loop_time"]

#: The resolution of a coarse loop clock's timers, in seconds.
_RESOLUTION = 0.001


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

    uvloop's ``loop.time()`` is when the loop's current turn began, in milliseconds, and
    its timers fire on that time: a limiter reading it would date answers early and let
    calls in early. On uvloop the clock reads ``time.monotonic()`` instead, and
    :meth:`sleep` waits again for whatever a timer left.
    """

    __slots__ = ("_coarse", "_loop", "_offset", "_time")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offset = 0.0
        self._coarse = False
        self._time: Callable[[], float] = time.monotonic

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._coarse = coarse_loop_time(loop)
        self._time = time.monotonic if self._coarse else loop.time
        self._offset = time.time() - self._time()
        return loop

    def now(self) -> float:
        """Seconds since 1970, moving with the event loop's time."""
        if self._loop is None:
            self._bind()
        return self._offset + self._time()

    async def sleep(self, seconds: float) -> None:
        """Wait *seconds* of the loop's time."""
        end = self.now() + seconds
        await asyncio.sleep(seconds)
        if not self._coarse:
            return
        # The timer fired on the turn's stale time: wait for what is left, a whole
        # millisecond at least (uvloop's timers count whole ones).
        while (left := end - self.now()) > 0:  # noqa: ASYNC110 (a deadline, not an event)
            await asyncio.sleep(max(left, _RESOLUTION))


def coarse_loop_time(loop: asyncio.AbstractEventLoop) -> bool:
    """
    Whether *loop*'s ``time()`` lags the present: uvloop's is the start of its current
    turn, in milliseconds (asyncio's reads the monotonic clock each time).
    """
    return type(loop).__module__.partition(".")[0] == "uvloop"
