# SPDX-License-Identifier: MIT
"""
Pending callbacks in the emulator's database, so that a restart delivers them.

With ``--db``, a callback or webhook is written to the ``callbacks`` table when it is
queued (before the status change that caused it is committed) and deleted once it was
delivered or given up on; the next start queues what is left, oldest first, ahead of
the messages' resumed lifecycles. A callback is therefore never lost to a restart, but
one in flight when the process died is sent again (at least once, as Twilio's are).
Without a database, pending callbacks live in memory only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import attrs


__all__ = ["CallbackOutbox", "StoredCallback"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    url TEXT NOT NULL,
    params TEXT NOT NULL
)
"""


@attrs.frozen
class StoredCallback:
    """
    A callback that was queued and not yet finished.

    Attributes:
        row: Its row id.
        key: The ordering key (message SID).
        url: Receiver URL.
        params: Form parameters, in posting order.
    """

    row: int
    key: str
    url: str
    params: tuple[tuple[str, str], ...]


class CallbackOutbox:
    """
    The ``callbacks`` table of the emulator's SQLite file (nothing without a file).

    Args:
        path: The database file the message store created, or ``None`` (in memory).
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def open(self) -> list[StoredCallback]:
        """
        Open the table (after the store created the file) and read what is pending.

        Returns:
            The pending callbacks, oldest first.
        """
        if not self.path:
            return []
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")  # as the store: WAL survives a killed process
        db.execute(_SCHEMA)
        self._db = db
        rows = db.execute("SELECT id, key, url, params FROM callbacks ORDER BY id")
        return [
            StoredCallback(row, key, url, tuple((k, v) for k, v in json.loads(params)))
            for row, key, url, params in rows
        ]

    def add(self, key: str, url: str, params: Sequence[tuple[str, str]]) -> int | None:
        """
        Record a queued callback, committed at once.

        Returns:
            Its row id, or ``None`` without a database.
        """
        if self._db is None:
            return None
        cursor = self._db.execute(
            "INSERT INTO callbacks (key, url, params) VALUES (?, ?, ?)",
            (key, url, json.dumps(list(params), ensure_ascii=False)),
        )
        return cursor.lastrowid

    def done(self, row: int | None) -> None:
        """Forget a callback that was delivered or given up on."""
        if self._db is not None and row is not None:
            self._db.execute("DELETE FROM callbacks WHERE id = ?", (row,))

    def clear(self) -> None:
        """Forget every pending callback (a reset)."""
        if self._db is not None:
            self._db.execute("DELETE FROM callbacks")

    def close(self) -> None:
        """Close the connection; what is pending stays for the next start."""
        if self._db is not None:
            self._db.close()
            self._db = None
