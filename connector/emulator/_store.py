# SPDX-License-Identifier: MIT
"""
Message storage: an in-memory index backed by SQLite (WAL) with group commit.

Reads come from memory. Every change is queued and a flush, scheduled with
``call_soon``, writes all changes made in the same event-loop turn in one transaction.
Handlers ``await commit()`` before answering, so a 201 is only sent once the message is
in the database file; a killed emulator never loses an acknowledged message.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import Any

from connector.emulator._records import MessageRecord


__all__ = ["MessageStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    sid TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL
)
"""


# Small emulator-wide settings (the inbox's handset switches and opt-outs), one JSON value
# per key, so they survive a restart along with the messages.
_META_SCHEMA = """
CREATE TABLE IF NOT EXISTS emulator_meta (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL
)
"""


def _seq(record: MessageRecord) -> int:
    return record.seq


def _create_private(path: str) -> None:
    """
    Create *path*, empty, readable and writable by its owner only, unless it exists.

    SQLite gives the -wal and -shm files the database file's mode, so they are private too.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        # The umask may have taken bits from 0600 (SQLite would then fail to write).
        if sys.platform != "win32":
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class MessageStore:
    """
    All messages of the emulator, newest last in memory, persisted to SQLite.

    Args:
        path: Database file, or ``None`` for an in-memory database.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._by_sid: dict[str, MessageRecord] = {}
        self._order: list[MessageRecord] = []
        self._tombstones: dict[str, int] = {}
        self._next_seq = 1
        self._pending: dict[str, MessageRecord | None] = {}
        self._flush: asyncio.Future[None] | None = None

    def open(self) -> None:
        """Open (or create, mode 0600) the database and load every stored message."""
        if self.path:
            # It holds phone numbers and bodies: no one but the owner reads it.
            _create_private(self.path)
        db = sqlite3.connect(self.path or ":memory:", isolation_level=None)
        if self.path:
            db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (the WAL is in the OS cache); only a
            # power loss can drop the last commits, which an emulator can live with.
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        db.execute(_META_SCHEMA)
        self._db = db
        for (data,) in db.execute("SELECT data FROM messages ORDER BY seq"):
            record = MessageRecord.from_row(json.loads(data))
            self._by_sid[record.sid] = record
            self._order.append(record)
        if self._order:
            self._next_seq = self._order[-1].seq + 1

    def close(self) -> None:
        """Write what is pending and close the database."""
        if self._db is not None:
            self._write()
            self._db.close()
            self._db = None

    def load_meta(self, key: str) -> Any:
        """
        Read a stored setting.

        Args:
            key: Setting name.

        Returns:
            The decoded JSON value, or ``None`` if never saved (or the store is closed).
        """
        if self._db is None:
            return None
        row = self._db.execute("SELECT data FROM emulator_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def save_meta(self, key: str, value: Any) -> None:
        """
        Write a setting at once (settings change rarely, so no group commit).

        Args:
            key: Setting name.
            value: JSON-compatible value.
        """
        if self._db is not None:
            self._db.execute(
                "INSERT INTO emulator_meta (key, data) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET data = excluded.data",
                (key, json.dumps(value)),
            )

    def next_seq(self) -> int:
        """
        Reserve the next creation sequence number.

        Returns:
            A number higher than any stored message's.
        """
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def get(self, sid: str) -> MessageRecord | None:
        """
        Look a message up.

        Args:
            sid: Message SID.

        Returns:
            The record or ``None``.
        """
        return self._by_sid.get(sid)

    def __len__(self) -> int:
        return len(self._order)

    def all(self) -> list[MessageRecord]:
        """
        Every message, oldest first.

        Returns:
            A new list.
        """
        return list(self._order)

    def add(self, record: MessageRecord) -> None:
        """
        Insert a new message (its ``seq`` must come from :meth:`next_seq`).

        Args:
            record: The message.
        """
        self._by_sid[record.sid] = record
        self._order.append(record)
        self.changed(record)

    def changed(self, record: MessageRecord) -> None:
        """
        Queue a modified message for the next flush.

        Args:
            record: The message, already modified in place.
        """
        self._pending[record.sid] = record
        self._schedule()

    def delete(self, sid: str) -> None:
        """
        Remove a message.

        Args:
            sid: Message SID.
        """
        record = self._by_sid.pop(sid, None)
        if record is None:
            return
        index = bisect.bisect_left(self._order, record.seq, key=_seq)
        del self._order[index]
        self._tombstones[sid] = record.seq
        self._pending[sid] = None
        self._schedule()

    def clear(self) -> None:
        """Remove every message, in memory and on disk, immediately."""
        self._by_sid.clear()
        self._order.clear()
        self._tombstones.clear()
        self._pending.clear()
        if self._db is not None:
            self._db.execute("DELETE FROM messages")

    def position(self, sid: str) -> int | None:
        """
        Sequence number of a message, also for deleted ones (for page tokens).

        Args:
            sid: Message SID.

        Returns:
            Its ``seq``, or ``None`` if never seen.
        """
        record = self._by_sid.get(sid)
        return record.seq if record is not None else self._tombstones.get(sid)

    def older_than(
        self, seq: int | None, match: Callable[[MessageRecord], bool]
    ) -> Iterator[MessageRecord]:
        """
        Iterate matching messages newest first, starting below *seq*.

        Args:
            seq: Exclusive upper bound, or ``None`` to start at the newest.
            match: Filter predicate.

        Yields:
            Matching records.
        """
        end = len(self._order) if seq is None else bisect.bisect_left(self._order, seq, key=_seq)
        order = self._order
        for index in range(end - 1, -1, -1):
            record = order[index]
            if match(record):
                yield record

    def newer_than(
        self, seq: int, match: Callable[[MessageRecord], bool]
    ) -> Iterator[MessageRecord]:
        """
        Iterate matching messages oldest first, starting above *seq*.

        Args:
            seq: Exclusive lower bound.
            match: Filter predicate.

        Yields:
            Matching records.
        """
        order = self._order
        for index in range(bisect.bisect_right(order, seq, key=_seq), len(order)):
            record = order[index]
            if match(record):
                yield record

    async def commit(self) -> None:
        """Wait until every change made so far is committed to the database."""
        if self._flush is not None:
            await asyncio.shield(self._flush)

    def _schedule(self) -> None:
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.create_future()
            loop.call_soon(self._run_flush)

    def _run_flush(self) -> None:
        future, self._flush = self._flush, None
        try:
            self._write()
        except Exception as exc:  # the waiting handlers answer 500
            if future is not None and not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: background writes may have no waiter
            return
        if future is not None and not future.done():
            future.set_result(None)

    def _write(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending or self._db is None:
            return
        upserts = [
            (sid, record.seq, json.dumps(record.to_row()))
            for sid, record in pending.items()
            if record is not None
        ]
        deletes = [(sid,) for sid, record in pending.items() if record is None]
        db = self._db
        db.execute("BEGIN")
        try:
            if upserts:
                db.executemany(
                    "INSERT INTO messages (sid, seq, data) VALUES (?, ?, ?) "
                    "ON CONFLICT(sid) DO UPDATE SET data = excluded.data",
                    upserts,
                )
            if deletes:
                db.executemany("DELETE FROM messages WHERE sid = ?", deletes)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
