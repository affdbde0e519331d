"""Helpers of the Airflow provider's tests (nothing here imports Airflow)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class ThreadedEmulator:
    """
    An emulator served by an event loop in a background thread, for code that blocks
    (``dag.test()``) or runs its own loops (Airflow's inline triggers).
    """

    def __init__(self, portal: Any, server: Any) -> None:
        self._portal = portal
        self.server = server
        self.base_url: str = server.base_url
        self.account_sid: str = server.account_sid
        self.auth_token: str = server.auth_token

    def messages(self, **filters: Any) -> list[dict[str, Any]]:
        """Stored messages, newest first (see ``EmulatorServer.messages``)."""
        result: list[dict[str, Any]] = self._portal.call(
            _sync, lambda: self.server.messages(**filters)
        )
        return result

    def stats(self) -> dict[str, Any]:
        """The emulator's counters."""
        result: dict[str, Any] = self._portal.call(_sync, self.server.stats)
        return result

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock on."""
        self._portal.call(_sync, lambda: self.server.advance(seconds))

    def connection(self, **extra: Any) -> str:
        """``AIRFLOW_CONN_...`` JSON for this emulator, with *extra* in the extra."""
        return json.dumps(
            {
                "conn_type": "twilio",
                "login": self.account_sid,
                "password": self.auth_token,
                "extra": {"base_url": self.base_url, **extra},
            }
        )


async def _sync(function: Callable[[], Any]) -> Any:
    return function()
