# SPDX-License-Identifier: MIT
"""
The emulator's notion of "now": wall time plus a test-controlled offset.
"""

from __future__ import annotations

import time
from collections.abc import Callable


__all__ = ["Clock", "ManualClock"]


class Clock:
    """
    Wall-clock time in epoch seconds that tests (and ``/emulator/advance``) can move on.

    Everything time-dependent in the emulator (status transitions, scheduled sends, the
    throttle window) reads this clock, so advancing it never needs a sleep.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """
        Return the current time in epoch seconds.

        Returns:
            ``time.time()`` plus every advance so far.
        """
        return time.time() + self._offset

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
