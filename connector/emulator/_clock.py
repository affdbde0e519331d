# SPDX-License-Identifier: MIT
"""
The emulator's notion of "now": wall time, optionally running faster, plus a
test-controlled offset.

Both clocks also fit the connector's clock protocol (``now()`` and ``async sleep()``),
so a test can hand the emulator's clock to the connector's sender pacing and run both
on one accelerated clock: hours of queueing in seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


__all__ = ["Clock", "ManualClock"]


class Clock:
    """
    Wall-clock time in epoch seconds that tests (and ``/emulator/advance``) can move on,
    and that may run faster than real time.

    Everything time-dependent in the emulator (status transitions, sender queues,
    scheduled sends, the throttle window) reads this clock, so advancing it never needs a
    sleep.

    Args:
        scale: How many emulated seconds pass per real second (``60.0``: an hour a
            minute). It starts at the wall time of its creation.

    Raises:
        ValueError: *scale* is not a positive finite number.
    """

    def __init__(self, scale: float = 1.0) -> None:
        if not 0 < scale < math.inf:
            raise ValueError(f"the time scale must be above 0, not {scale}")
        self.scale = scale
        self._offset = 0.0
        self._origin = time.time()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """
        Return the current time in epoch seconds.

        Returns:
            The wall time at creation, plus the real time since, times the scale, plus
            every advance so far.
        """
        real = time.time()
        if self.scale == 1.0:
            return real + self._offset
        return self._origin + (real - self._origin) * self.scale + self._offset

    def real_seconds(self, seconds: float) -> float:
        """How many real seconds *seconds* of this clock take to pass."""
        return seconds / self.scale

    async def sleep(self, seconds: float) -> None:
        """Wait *seconds* of this clock's time (``seconds / scale`` of real time)."""
        await asyncio.sleep(max(0.0, self.real_seconds(seconds)))

    def advance(self, seconds: float) -> None:
        """
        Move the clock forward and run whatever became due.

        Args:
            seconds: How far to move; must not be negative.

        Raises:
            ValueError: If *seconds* is negative.
        """
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._offset += seconds
        for listener in list(self._listeners):
            listener()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """
        Call *listener* after every advance.

        Args:
            listener: A callable run synchronously inside :meth:`advance`.

        Returns:
            A function that removes the listener.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)


class ManualClock(Clock):
    """
    A clock that stands still until :meth:`~Clock.advance` is called.

    Args:
        start: The initial time in epoch seconds (default: the wall time at creation).
    """

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self._start = time.time() if start is None else start

    def now(self) -> float:
        """
        Return the frozen time.

        Returns:
            The start time plus every advance so far.
        """
        return self._start + self._offset

    def real_seconds(self, seconds: float) -> float:
        """Real seconds are unrelated to this clock; timers recheck after as many."""
        return seconds

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by *seconds* (real time does not count)."""
        due = self.now() + seconds
        while self.now() < due:
            woken = asyncio.get_running_loop().create_future()

            def wake(woken: asyncio.Future[None] = woken) -> None:
                if not woken.done():
                    woken.set_result(None)

            unsubscribe = self.subscribe(wake)
            try:
                await woken
            finally:
                unsubscribe()
