# SPDX-License-Identifier: MIT
"""
Per-account sliding-window request throttle (Twilio answers 429 / 20429).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs


__all__ = ["SlidingWindowThrottle"]


@attrs.define
class SlidingWindowThrottle:
    """
    Admit at most *calls* requests per account in any window of *seconds*.

    The window is exact: it keeps the timestamp of every admitted request in the last
    *seconds*. Rejected requests are not recorded, because Twilio does not process them.

    Args:
        calls: Requests admitted per window.
        seconds: Window length.
        now: Time source in seconds.
    """

    calls: int
    seconds: float
    now: Callable[[], float]
    _windows: dict[str, deque[float]] = attrs.field(init=False, factory=dict)

    def admit(self, key: str) -> bool:
        """
        Record a request for *key* if the window has room.

        Args:
            key: The account SID.

        Returns:
            ``True`` if admitted, ``False`` if the caller should answer 429.
        """
        now = self.now()
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque()
        horizon = now - self.seconds
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= self.calls:
            return False
        window.append(now)
        return True

    def retry_after(self, key: str) -> float:
        """
        Seconds until the window for *key* admits another request.

        Args:
            key: The account SID.

        Returns:
            Zero when there is room now.
        """
        window = self._windows.get(key)
        if not window or len(window) < self.calls:
            return 0.0
        return max(0.0, window[0] + self.seconds - self.now())

    def reset(self) -> None:
        """Forget every recorded request."""
        self._windows.clear()
