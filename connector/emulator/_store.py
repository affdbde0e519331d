# SPDX-License-Identifier: MIT
"""
Message storage: an in-memory index backed by SQLite (WAL) with group commit.

Reads come from memory. Every change is queued and a flush, scheduled with
``call_soon``, writes all changes made in the same event-loop turn in one transaction.
Handlers ``await commit()`` before answering, so a 201 is only sent once the message is
in the database file; a killed emulator never loses an acknowledged message.

Sends the API refused (400 at create, such as 21610 after STOP) are no messages, but the
inbox shows them in their conversation, so the store keeps the latest few of them too.
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

import attrs

from connector.emulator._records import MessageRecord


__all__ = ["REFUSED_PER_THREAD", "REFUSED_TOTAL", "MessageStore", "RefusedSend"]

REFUSED_PER_THREAD = 50
"""Refused sends kept per conversation; older ones are forgotten."""
REFUSED_TOTAL = 1000
"""Refused sends kept in all; older ones are forgotten."""

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


# Refused sends, keyed by a sequence number from the same counter as messages so the
# inbox can place them between the messages of their conversation.
_REFUSED_SCHEMA = """
CREATE TABLE IF NOT EXISTS refused_sends (
    seq INTEGER PRIMARY KEY,
    data TEXT NOT NULL
)
"""


def _seq(record: MessageRecord) -> int:
    return record.seq


@attrs.frozen(kw_only=True)
class RefusedSend:
    """
    A send the API refused when it was created: no message was stored, only this note.

    Attributes:
        seq: Its place in creation order (shared with messages).
        thread: The conversation, ``"<account side>|<handset>"`` as in inbox URLs.
        to: The handset.
        from_: The sender number, if one was given.
        messaging_service_sid: The ``MG...`` SID, if one was given.
        body: The text that was not sent.
        media_urls: The media URLs that were not sent.
        code: Twilio's error code, e.g. 21610.
        message: Twilio's error message.
        at: When, in epoch seconds.
    """

    seq: int
    thread: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...] = ()
    code: int
    message: str
    at: float

    def to_row(self) -> dict[str, Any]:
        """
        The stored form (and, with ``at`` formatted, the admin API's).

        Returns:
            A JSON-compatible dict.
        """
        return {
            "seq": self.seq,
            "thread": self.thread,
            "to": self.to,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "media_urls": list(self.media_urls),
            "code": self.code,
            "message": self.message,
            "at": self.at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RefusedSend:
        """
        Rebuild from :meth:`to_row`'s output.

        Args:
            row: The stored dict.

        Returns:
            The refused send.
        """
        return cls(
            seq=int(row["seq"]),
            thread=str(row["thread"]),
            to=str(row["to"]),
            from_=row.get("from"),
            messaging_service_sid=row.get("messaging_service_sid"),
            body=str(row.get("body") or ""),
            media_urls=tuple(row.get("media_urls") or ()),
            code=int(row["code"]),
            message=str(row["message"]),
            at=float(row["at"]),
        )


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
        self._refused: dict[int, RefusedSend] = {}  # by seq, oldest first
        self._pending_refused: dict[int, RefusedSend | None] = {}
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
        db.execute(_REFUSED_SCHEMA)
        self._db = db
        for (data,) in db.execute("SELECT data FROM messages ORDER BY seq"):
            record = MessageRecord.from_row(json.loads(data))
            self._by_sid[record.sid] = record
            self._order.append(record)
        for (data,) in db.execute("SELECT data FROM refused_sends ORDER BY seq"):
            refused = RefusedSend.from_row(json.loads(data))
            self._refused[refused.seq] = refused
        last = max(
            self._order[-1].seq if self._order else 0,
            next(reversed(self._refused), 0),
        )
        self._next_seq = last + 1

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
        """Remove every message and refused send, in memory and on disk, immediately."""
        self._by_sid.clear()
        self._order.clear()
        self._tombstones.clear()
        self._pending.clear()
        self._refused.clear()
        self._pending_refused.clear()
        if self._db is not None:
            self._db.execute("DELETE FROM messages")
            self._db.execute("DELETE FROM refused_sends")

    def refuse(self, refused: RefusedSend) -> None:
        """
        Keep a refused send (its ``seq`` must come from :meth:`next_seq`).

        The oldest of its conversation goes beyond :data:`REFUSED_PER_THREAD`, the
        oldest of all beyond :data:`REFUSED_TOTAL`.

        Args:
            refused: The refused send.
        """
        self._refused[refused.seq] = refused
        self._pending_refused[refused.seq] = refused
        same = [seq for seq, item in self._refused.items() if item.thread == refused.thread]
        doomed = same[: max(0, len(same) - REFUSED_PER_THREAD)]
        overflow = len(self._refused) - len(doomed) - REFUSED_TOTAL
        if overflow > 0:
            doomed += [seq for seq in self._refused if seq not in doomed][:overflow]
        for seq in doomed:
            del self._refused[seq]
            self._pending_refused[seq] = None
        self._schedule()

    def refused(self) -> list[RefusedSend]:
        """
        Every kept refused send, oldest first.

        Returns:
            A new list.
        """
        return list(self._refused.values())

    def forget_refused(self, match: Callable[[RefusedSend], bool]) -> int:
        """
        Remove the refused sends *match* selects.

        Args:
            match: Predicate.

        Returns:
            How many were removed.
        """
        doomed = [seq for seq, item in self._refused.items() if match(item)]
        for seq in doomed:
            del self._refused[seq]
            self._pending_refused[seq] = None
        if doomed:
            self._schedule()
        return len(doomed)

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
        refused, self._pending_refused = self._pending_refused, {}
        if (not pending and not refused) or self._db is None:
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
            if refused:
                db.executemany(
                    "INSERT OR REPLACE INTO refused_sends (seq, data) VALUES (?, ?)",
                    [(seq, json.dumps(r.to_row())) for seq, r in refused.items() if r is not None],
                )
                db.executemany(
                    "DELETE FROM refused_sends WHERE seq = ?",
                    [(seq,) for seq, r in refused.items() if r is None],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
