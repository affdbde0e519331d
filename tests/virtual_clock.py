"""
An event loop whose clock is virtual: when every task is waiting for a timer, time jumps
straight to the next timer instead of passing. Tests of limits and backoff run in
milliseconds and measure exact durations, with no sleeping and no flakiness.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar


T = TypeVar("T")
_TICK = 1e-7


class _JumpingSelector(selectors.BaseSelector):
    """Polls real file descriptors without blocking; a blocking wait advances the clock."""

    def __init__(self, loop: VirtualClockLoop, *, threads: bool) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop
        self._threads = threads

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Every loop iteration costs a little time, as on a real machine; without it a
        # timer due a few ulps from now (float rounding in a limiter's arithmetic) would
        # run again and again at the same instant.
        self._loop.now += _TICK
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            if self._threads:
                # Another thread may still hand work to this loop (a blocking portal).
                return self._real.select(None)
            raise RuntimeError("virtual clock: every task waits and no timer is scheduled")
        self._loop.now += timeout
        return []

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """
    A selector event loop on a virtual clock starting at 0.

    With ``threads=True`` an idle loop waits for other threads (a blocking portal's
    calls) instead of reporting a deadlock.
    """

    def __init__(self, *, threads: bool = False) -> None:
        self.now = 0.0
        super().__init__(selector=_JumpingSelector(self, threads=threads))

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T], *, threads: bool = False) -> T:
    """
    Run *coro* to completion on a fresh :class:`VirtualClockLoop`; *threads* as there
    (a run's journal commits in a thread of its own).
    """
    loop = VirtualClockLoop(threads=threads)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class SteppingClock:
    """
    A workflow clock (``now()``/``sleep()``) that stands still until the interpreter
    sleeps, then jumps to the end of the sleep: like a timer, sleepers due at the same
    moment wake at that moment.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        due = self.time + seconds
        await asyncio.sleep(0)
        self.time = max(self.time, due)
