# SPDX-License-Identifier: MIT
"""
The run journal: a SQLite file (WAL) that records each run, each step and each item,
so that a run can be resumed without losing or repeating work.

An item that sends a message is written as ``started`` and committed *before* the
request goes out, and its outcome after; an item found ``started`` on resume has an
unknown outcome and is reconciled with Twilio before anything is sent again.

The file holds phone numbers and message bodies: a journal is created readable by its
owner only (mode 0600, whatever the umask), and SQLite gives its ``-wal`` and ``-shm``
files the same mode.

Schema versions: the schema's version is SQLite's ``PRAGMA user_version``. Opening a
journal brings it to ``SCHEMA_VERSION`` by running the migrations it has not had,
in order, in one ``BEGIN IMMEDIATE`` transaction: a second process opening the same
journal waits for the first, then finds nothing left to do. Migration *n* (the *n*-th
entry of ``_MIGRATIONS``) takes version *n - 1* to *n*; version 0 is a new file or a
journal from before versions (with or without ``runs.trigger``). A journal of a higher
version than this code knows is refused with
:class:`~connector.errors.JournalVersionError` and left unchanged.

To change the schema:

1. Dump a journal written by the code before the change as
   ``tests/data/journal-v{SCHEMA_VERSION}.sql`` (``tests/data/README.md`` says how).
2. Write ``_migrate_to_{SCHEMA_VERSION + 1}(db)``, which takes any journal of the
   current version to the next, and append it to ``_MIGRATIONS``. Use ``db.execute``,
   one statement at a time: ``executescript`` would commit half a migration. Never edit
   a released migration: journals in the field have had it.
3. Change the queries below, and add a test that opens and resumes the dump.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import attrs
import platformdirs

from .._private import create_private
from ..consent import SQLiteLedger
from ..errors import JournalVersionError


__all__ = [
    "BRIEF_FIELDS",
    "DELIVERY_LEASE",
    "SCHEMA_VERSION",
    "DeliveryRecord",
    "ItemRecord",
    "Journal",
    "RunRecord",
    "StepRecord",
    "brief",
    "default_journal_path",
    "digest",
    "item_record",
]

# How long an opener waits for another connection's lock (seconds).
_BUSY_TIMEOUT = 30.0

RunState = Literal["running", "succeeded", "failed", "interrupted"]
ItemState = Literal["started", "succeeded", "failed", "skipped"]

# The tables of schema version 1, as migration 1 creates them; later versions change
# them through migrations of their own, never here.
_V1_TABLES: Final = (
    """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        inputs TEXT NOT NULL,
        state TEXT NOT NULL,
        pid INTEGER,
        host TEXT,
        started REAL NOT NULL,
        finished REAL,
        outputs TEXT,
        error TEXT,
        trigger TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS runs_started ON runs (started)",
    """
    CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        state TEXT NOT NULL,
        outputs TEXT,
        error TEXT,
        PRIMARY KEY (run_id, step_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS items (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        state TEXT NOT NULL,
        inputs TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        started REAL,
        output TEXT,
        error TEXT,
        error_code INTEGER,
        reconciled INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, step_id, idx)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS events (
        event_key TEXT PRIMARY KEY,
        token TEXT UNIQUE,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        reply TEXT,
        received REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS deliveries (
        event_key TEXT NOT NULL,
        workflow TEXT NOT NULL,
        run_id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        UNIQUE (event_key, workflow)
    )
    """,
    "CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (state, seq)",
    """
    CREATE TABLE IF NOT EXISTS cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
)


def _migrate_to_1(db: sqlite3.Connection) -> None:
    """Version 1: the tables of the first versioned release, added to what a journal lacks."""
    for statement in _V1_TABLES:
        db.execute(statement)
    # Journals written before triggers existed lack the runs.trigger column.
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "trigger" not in columns:
        db.execute("ALTER TABLE runs ADD COLUMN trigger TEXT")


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """Version 2: deliveries are claimed by one listener (``owner``) under a lease (``claimed``)."""
    db.execute("ALTER TABLE deliveries ADD COLUMN owner TEXT")
    db.execute("ALTER TABLE deliveries ADD COLUMN claimed REAL")


_STATE_CODES: Final = {"started": 0, "succeeded": 1, "failed": 2, "skipped": 3}
_STATES: Final = {code: state for state, code in _STATE_CODES.items()}


def _migrate_to_3(db: sqlite3.Connection) -> None:
    """
    Version 3: a small journal. Each item keeps its key (the recipient), a digest of its
    inputs, its state, and for a message its SID, status and error code (the message
    itself stays fetchable by SID); a paging step's items get a table of their own. Old
    item rows are carried over.
    """
    db.execute(
        "CREATE TABLE step_keys (key INTEGER PRIMARY KEY, run_id TEXT NOT NULL,"
        " step_id TEXT NOT NULL, UNIQUE (run_id, step_id))"
    )
    db.execute(
        "CREATE TABLE item_rows (step_key INTEGER NOT NULL, idx INTEGER NOT NULL,"
        " state INTEGER NOT NULL, key TEXT, digest BLOB, sid TEXT, status TEXT,"
        " error_code INTEGER, output TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
        " started REAL, finished REAL, reconciled INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (step_key, idx)) WITHOUT ROWID"
    )
    # Lookups after an unknown outcome ask which item holds a message (dropped again by
    # migration 5: a released migration is never edited).
    db.execute("CREATE INDEX item_rows_sid ON item_rows (step_key, sid) WHERE sid IS NOT NULL")
    db.execute(
        "CREATE TABLE pages (step_key INTEGER NOT NULL, idx INTEGER NOT NULL,"
        " data TEXT NOT NULL, PRIMARY KEY (step_key, idx)) WITHOUT ROWID"
    )
    keys: dict[tuple[str, str], int] = {}
    old = db.execute(
        "SELECT run_id, step_id, idx, state, inputs, attempts, started, output, error,"
        " error_code, reconciled FROM items"
    ).fetchall()
    for run_id, step_id, idx, state, inputs, attempts, started, output, error, code, rec in old:
        if (run_id, step_id) not in keys:
            keys[run_id, step_id] = (
                db.execute(
                    "INSERT INTO step_keys (run_id, step_id) VALUES (?, ?)", (run_id, step_id)
                ).lastrowid
                or 0
            )
        shown = json.loads(inputs) if inputs else {}
        row = _item_row(shown, json.loads(output) if output else None)
        db.execute(
            "INSERT INTO item_rows (step_key, idx, state, key, digest, sid, status, error_code,"
            " output, error, attempts, started, reconciled)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                keys[run_id, step_id],
                idx,
                _STATE_CODES.get(state, 2),
                row.key,
                digest(shown),
                row.sid,
                row.status,
                code if code is not None else row.error_code,
                row.output,
                error,
                attempts,
                started,
                rec,
            ),
        )
    db.execute("DROP TABLE items")


def _migrate_to_4(db: sqlite3.Connection) -> None:
    """
    Version 4: the consent ledger (:class:`connector.consent.SQLiteLedger`), one row per
    (recipient, scope). ``IF NOT EXISTS``: a ledger opened on the file first made it.
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS consent (recipient TEXT NOT NULL, sender TEXT NOT NULL,"
        " state TEXT NOT NULL, source TEXT NOT NULL, at REAL NOT NULL,"
        " PRIMARY KEY (recipient, sender)) WITHOUT ROWID"
    )


def _migrate_to_5(db: sqlite3.Connection) -> None:
    """
    Version 5: no index of item rows by SID. SIDs are random, so each send wrote a
    leaf page of its own to the index (about a third of the pages of every commit);
    the one query that needs it, which item holds a message found after an unknown
    outcome, is rare and reads the step's rows instead (:meth:`Journal.holder_of`).
    """
    db.execute("DROP INDEX IF EXISTS item_rows_sid")


#: Migration *n* takes a journal from schema version *n - 1* to *n*.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_to_1,
    _migrate_to_2,
    _migrate_to_3,
    _migrate_to_4,
    _migrate_to_5,
)

#: Seconds a listener's claim on a delivery lasts unless it renews it; a claim older
#: than this (its listener died, on this machine or another) may be taken over.
DELIVERY_LEASE: Final = 30.0

#: The schema version this code reads and writes.
SCHEMA_VERSION: Final = len(_MIGRATIONS)


def default_journal_path() -> Path:
    """The journal in the per-user data directory (``runs.sqlite3``)."""
    return Path(platformdirs.user_data_dir("twilio-connector")) / "runs.sqlite3"


@attrs.frozen
class RunRecord:
    """
    A run, as the journal has it.

    Attributes:
        run_id: The run's id.
        workflow: The workflow file.
        name: The workflow's name.
        fingerprint: A hash of the workflow's text when the run started.
        inputs: The resolved inputs.
        state: ``running``, ``succeeded``, ``failed``, or ``interrupted`` (the process
            that ran it is gone).
        pid: The process running it.
        host: The machine running it.
        started: When it started (epoch seconds).
        finished: When it ended.
        outputs: The workflow outputs, once finished.
        error: Why it failed.
        trigger: The event payload that started it (JSON form), for triggered runs.
    """

    run_id: str
    workflow: str
    name: str
    fingerprint: str
    inputs: Mapping[str, Any]
    state: RunState
    pid: int | None
    host: str | None
    started: float
    finished: float | None
    outputs: Mapping[str, Any] | None
    error: str | None
    trigger: Mapping[str, Any] | None = None


@attrs.frozen
class StepRecord:
    """A finished (or skipped) step: its state, outputs and error."""

    state: str
    outputs: Any
    error: str | None


@attrs.frozen
class ItemRecord:
    """
    One call of a step (one fan-out item, or the step's only call).

    Attributes:
        index: The item's position.
        state: ``started`` (outcome unknown), ``succeeded``, ``failed`` or ``skipped``.
        key: What the item is known by: a send's recipient.
        digest: A digest of the call's inputs (secrets masked), to tell whether a resumed
            item still has the inputs it started with.
        attempts: How many sends were started.
        started: When the latest attempt started (epoch seconds).
        output: The output in JSON form; for a message, its SID, recipient, status and
            error code only (the message is fetchable by SID).
        error: The error, in words.
        error_code: Twilio's error code, when there is one.
        reconciled: Whether the outcome was found by looking the message up.
        finished: When it ended (epoch seconds).
    """

    index: int
    state: ItemState
    key: str | None
    digest: bytes | None
    attempts: int
    started: float | None
    output: Any
    error: str | None
    error_code: int | None
    reconciled: bool
    finished: float | None = None

    def to_json(self) -> list[Any]:
        """
        The record as a compact JSON array (what a store shared by several machines
        keeps per item; the digest stays in the local journal only).
        """
        output = self.output
        sid = output.get("sid") if isinstance(output, Mapping) and "sid" in output else None
        if sid is not None:
            # A message keeps what has no slot of its own (its date_created) in output's.
            output = {k: v for k, v in output.items() if k not in _MESSAGE_SLOTS} or None
        return [
            self.index,
            self.state,
            self.key,
            self.attempts,
            self.started,
            sid,
            self.output.get("status") if sid is not None else None,
            self.error_code,
            output,
            self.error,
            self.reconciled,
            self.finished,
        ]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> ItemRecord:
        """The record :meth:`to_json` gave."""
        index, state, key, attempts, started, sid, status, code, output, error, rec, fin = data
        if sid is not None:
            output = {"sid": sid, "to": key, "status": status, "error_code": code, **(output or {})}
        return cls(index, state, key, None, attempts, started, output, error, code, rec, fin)


def item_record(
    index: int,
    state: ItemState,
    *,
    inputs: Any,
    output: Any = None,
    error: str | None = None,
    error_code: int | None = None,
    reconciled: bool = False,
    attempts: int = 0,
    started: float | None = None,
    finished: float | None = None,
) -> ItemRecord:
    """
    What the journal keeps of an item's outcome, as a record: its key (a send's
    recipient), and of a message its brief fields only. Drivers that keep item results
    elsewhere (Temporal's store) keep the same record.
    """
    row = _item_row(inputs, output)
    return ItemRecord(
        index=index,
        state=state,
        key=row.key,
        digest=None,
        attempts=attempts,
        started=started,
        output=_row_output(row.sid, row.key, row.status, row.error_code, row.output),
        error=error,
        error_code=error_code if error_code is not None else row.error_code,
        reconciled=reconciled,
        finished=finished,
    )


@attrs.frozen
class DeliveryRecord:
    """
    A received event to be run by one workflow.

    Attributes:
        event_key: The event's deduplication key.
        workflow: The workflow file that runs it.
        run_id: The run id reserved for it (the run may not exist yet).
        state: ``pending`` (not finished) or ``done``.
        kind: The trigger (``twilio/message_received``).
        payload: The event, JSON form.
    """

    event_key: str
    workflow: str
    run_id: str
    state: str
    kind: str
    payload: Mapping[str, Any]


def _use_wal(db: sqlite3.Connection) -> None:
    # SQLite answers "locked" at once, without its busy handler, when a file being
    # switched to WAL is in use by another connection (a run and a listener creating one
    # journal together): wait here instead, as the busy handler would.
    deadline = time.monotonic() + _BUSY_TIMEOUT
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.05)


def _schema_version(db: sqlite3.Connection) -> int:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return version


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: The fields a message keeps per item of a fan-out step: what the journal stores, and
#: what ``steps.<id>.outputs`` gives for each item (the rest is fetchable by SID). A
#: send from a pool of senders also keeps its ``from``. ``date_created`` is when the
#: message was made, on Twilio's clock: what a wait for its reply counts from.
BRIEF_FIELDS: Final = ("sid", "to", "status", "error_code", "date_created")
#: The fields of a message's record that have columns (slots) of their own.
_MESSAGE_SLOTS: Final = frozenset({"sid", "to", "status", "error_code"})


def brief(output: Any) -> Any:
    """What a fan-out step keeps of an output: a message's brief fields, anything else whole."""
    if isinstance(output, Mapping) and "sid" in output:
        return {field: output.get(field) for field in BRIEF_FIELDS}
    return output


def digest(inputs: Any) -> bytes:
    """An 8-byte digest of journaled inputs (order of keys does not matter)."""
    text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def _holder(db: sqlite3.Connection, step_key: int, sid: str) -> int | None:
    row = db.execute(
        "SELECT idx FROM item_rows WHERE step_key = ? AND sid = ? LIMIT 1", (step_key, sid)
    ).fetchone()
    return None if row is None else int(row[0])


@attrs.frozen
class _Row:
    key: str | None
    sid: str | None
    status: str | None
    error_code: int | None
    output: str | None


def _item_row(inputs: Any, output: Any) -> _Row:
    """Split an item's inputs and output into the journal's columns."""
    # `type(...) is dict` first: an ABC check per row costs more than the rest of it.
    mapping = type(inputs) is dict or isinstance(inputs, Mapping)
    key = inputs.get("to") if mapping else None
    if (type(output) is dict or isinstance(output, Mapping)) and "sid" in output:
        code = output.get("error_code")
        # The fields without a column of their own: when it was made, and for a send
        # from a pool the sender it went from (the one field not in its inputs).
        extra = {"date_created": output["date_created"]} if output.get("date_created") else {}
        if mapping and isinstance(inputs.get("from"), list):
            extra["from"] = output.get("from")
        return _Row(
            str(key) if key is not None else output.get("to"),
            output.get("sid"),
            output.get("status"),
            code if isinstance(code, int) else None,
            _dumps(extra) if extra else None,
        )
    return _Row(
        str(key) if key is not None else None,
        None,
        None,
        None,
        None if output is None else _dumps(output),
    )


def _row_output(
    sid: str | None, key: str | None, status: str | None, code: int | None, output: str | None
) -> Any:
    if sid is not None:
        found = {"sid": sid, "to": key, "status": status, "error_code": code}
        return found if output is None else {**found, **json.loads(output)}
    return None if output is None else json.loads(output)


class _Writer:
    """
    Commits the journal's item rows in a thread of its own, grouped: every row waiting
    when a commit starts goes into it, so N items in flight cost one fsync, not N, and
    the event loop never waits on the disk.
    """

    def __init__(self, path: Path) -> None:
        self._queue: queue.SimpleQueue[list[_Op] | None] = queue.SimpleQueue()
        self._path = path
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()
        # Rows written in one turn of the event loop are handed over together: one
        # wake-up of the thread (and one GIL hand-off) per turn, not per row.
        self._batch: list[_Op] = []

    def submit(self, sql: str, params: tuple[Any, ...], done: asyncio.Future[None] | None) -> None:
        op = _Op(sql, params, done)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._queue.put([op])
            return
        if not self._batch:
            loop.call_soon(self._hand_over)
        self._batch.append(op)

    def _hand_over(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            self._queue.put(batch)

    def close(self) -> None:
        self._hand_over()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT)
        db.execute("PRAGMA synchronous=FULL")
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = list(first)
                stop = False
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.extend(more)
                error: BaseException | None = None
                try:
                    with db:
                        # Runs of the same statement go in one executemany: less Python
                        # per row while this thread holds the GIL.
                        start = 0
                        while start < len(batch):
                            sql = batch[start].sql
                            end = start
                            while end < len(batch) and batch[end].sql == sql:
                                end += 1
                            if sql:
                                db.executemany(sql, [op.params for op in batch[start:end]])
                            start = end
                except Exception as exc:
                    error = exc
                _resolve([op.done for op in batch if op.done is not None], error)
                if stop:
                    return
        finally:
            db.close()


@attrs.frozen
class _Op:
    sql: str
    params: tuple[Any, ...]
    done: asyncio.Future[None] | None


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """
    Settle a commit's futures from the writer thread: one wake-up of each event loop
    per commit (a write to its self-pipe), not one per row.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for future in futures:
        by_loop.setdefault(future.get_loop(), []).append(future)

    def settle(waiting: list[asyncio.Future[None]]) -> None:
        for future in waiting:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    for loop, waiting in by_loop.items():
        loop.call_soon_threadsafe(settle, waiting)


class Journal:
    """
    The journal of runs, in one SQLite file.

    Use it as a context manager, or call :meth:`close`.

    Args:
        path: The SQLite file; created (mode 0600) with its directory if missing, and
            migrated to ``SCHEMA_VERSION`` if older.

    Raises:
        JournalVersionError: A newer version of the connector wrote the journal.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private(self.path)
        self._db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)
        try:
            version = _schema_version(self._db)
            self._refuse_newer(version)
            # WAL lets `twilio-connector runs` read while a run writes. FULL makes each
            # commit durable even on power loss: a lost "started" row could mean a resend.
            _use_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            if version < SCHEMA_VERSION:
                self._migrate()
        except BaseException:
            self._db.close()
            raise
        self._host = socket.gethostname()
        # Tells apart two journal objects of one process (two listeners in one test).
        self._token = uuid.uuid4().hex[:8]
        self._step_keys: dict[tuple[str, str], int] = {}
        self._writer: _Writer | None = None
        self._digests: dict[tuple[int, int], bytes] = {}
        self._consent: SQLiteLedger | None = None

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise JournalVersionError(str(self.path), version=version, supported=SCHEMA_VERSION)

    def _migrate(self) -> None:
        # IMMEDIATE takes the write lock before the version is read: a second opener
        # waits here, then reads the new version, instead of migrating the old one again.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = _schema_version(self._db)
            self._refuse_newer(version)
            if version < SCHEMA_VERSION:
                for migration in _MIGRATIONS[version:]:
                    migration(self._db)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (after committing what the writer still holds)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._consent is not None:
            self._consent.close()
            self._consent = None
        self._db.close()

    @property
    def consent(self) -> SQLiteLedger:
        """
        The consent ledger kept in this file (its ``consent`` table): the one workflows
        run with this journal use unless their connection has another, and the one the
        listener records keywords in.
        """
        if self._consent is None:
            self._consent = SQLiteLedger(self.path)
        return self._consent

    # -- runs -----------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        workflow: str,
        name: str,
        fingerprint: str,
        inputs: Mapping[str, Any],
        trigger: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a new run, owned by this process (with the event that started it)."""
        with self._db:
            self._db.execute(
                "INSERT INTO runs (run_id, workflow, name, fingerprint, inputs, state, pid, host,"
                " started, trigger) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    run_id,
                    workflow,
                    name,
                    fingerprint,
                    _dumps(inputs),
                    os.getpid(),
                    self._host,
                    time.time(),
                    None if trigger is None else _dumps(trigger),
                ),
            )

    def claim_run(self, run_id: str) -> None:
        """Mark a run as running again, owned by this process (on resume)."""
        with self._db:
            self._db.execute(
                "UPDATE runs SET state = 'running', pid = ?, host = ?, finished = NULL,"
                " error = NULL WHERE run_id = ?",
                (os.getpid(), self._host, run_id),
            )

    def finish_run(
        self, run_id: str, state: RunState, outputs: Mapping[str, Any] | None, error: str | None
    ) -> None:
        """Record a run's end."""
        with self._db:
            self._db.execute(
                "UPDATE runs SET state = ?, finished = ?, outputs = ?, error = ? WHERE run_id = ?",
                (state, time.time(), None if outputs is None else _dumps(outputs), error, run_id),
            )

    def run(self, run_id: str) -> RunRecord | None:
        """Return a run, or ``None`` if the journal has none by that id."""
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else self._run_record(row)

    def runs(self, limit: int = 20) -> list[RunRecord]:
        """Return the most recent runs, newest first."""
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._run_record(row) for row in rows]

    def is_active_elsewhere(self, record: RunRecord) -> bool:
        """Whether another live process on this machine is running *record*."""
        return (
            record.state == "running"
            and record.host == self._host
            and record.pid is not None
            and record.pid != os.getpid()
            and _alive(record.pid)
        )

    def _run_record(self, row: tuple[Any, ...]) -> RunRecord:
        (
            run_id,
            workflow,
            name,
            fingerprint,
            inputs,
            state,
            pid,
            host,
            started,
            finished,
            outputs,
            error,
            trigger,
        ) = row
        if state == "running" and host == self._host and pid is not None and not _alive(pid):
            state = "interrupted"
        return RunRecord(
            run_id=run_id,
            workflow=workflow,
            name=name,
            fingerprint=fingerprint,
            inputs=json.loads(inputs),
            state=state,
            pid=pid,
            host=host,
            started=started,
            finished=finished,
            outputs=None if outputs is None else json.loads(outputs),
            error=error,
            trigger=None if trigger is None else json.loads(trigger),
        )

    # -- steps ----------------------------------------------------------------------

    def step(self, run_id: str, step_id: str) -> StepRecord | None:
        """Return a step's record, if it finished in an earlier attempt of the run."""
        row = self._db.execute(
            "SELECT state, outputs, error FROM steps WHERE run_id = ? AND step_id = ?",
            (run_id, step_id),
        ).fetchone()
        if row is None:
            return None
        return StepRecord(row[0], None if row[1] is None else json.loads(row[1]), row[2])

    def finish_step(
        self, run_id: str, step_id: str, state: str, outputs: Any, error: str | None
    ) -> None:
        """Record a step's end."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO steps (run_id, step_id, state, outputs, error)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, step_id, state, _dumps(outputs), error),
            )

    # -- items ----------------------------------------------------------------------

    def _step_key(self, run_id: str, step_id: str) -> int:
        key = self._step_keys.get((run_id, step_id))
        if key is None:
            with self._db:
                self._db.execute(
                    "INSERT OR IGNORE INTO step_keys (run_id, step_id) VALUES (?, ?)",
                    (run_id, step_id),
                )
            row = self._db.execute(
                "SELECT key FROM step_keys WHERE run_id = ? AND step_id = ?", (run_id, step_id)
            ).fetchone()
            key = self._step_keys[run_id, step_id] = int(row[0])
        return key

    _ITEM_COLUMNS = (
        "idx, state, key, digest, attempts, started, sid, status, error_code, output, error,"
        " reconciled, finished"
    )

    @staticmethod
    def _item_record(row: tuple[Any, ...]) -> ItemRecord:
        idx, state, key, dig, attempts, started, sid, status, code, output, error, rec, fin = row
        return ItemRecord(
            index=idx,
            state=_STATES.get(state, "failed"),  # type: ignore[arg-type]
            key=key,
            digest=dig,
            attempts=attempts,
            started=started,
            output=_row_output(sid, key, status, code, output),
            error=error,
            error_code=code,
            reconciled=bool(rec),
            finished=fin,
        )

    def item_steps(self, run_id: str) -> list[str]:
        """The ids of a run's steps that recorded items, in the order they first did."""
        rows = self._db.execute(
            "SELECT step_id FROM step_keys WHERE run_id = ? ORDER BY key", (run_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def item(self, run_id: str, step_id: str, index: int) -> ItemRecord | None:
        """One item's record, if an attempt of the run recorded it."""
        row = self._db.execute(
            f"SELECT {self._ITEM_COLUMNS} FROM item_rows WHERE step_key = ? AND idx = ?",
            (self._step_key(run_id, step_id), index),
        ).fetchone()
        return None if row is None else self._item_record(row)

    def iter_items(self, run_id: str, step_id: str, *, batch: int = 2000) -> Iterator[ItemRecord]:
        """A step's item records in index order, read in batches (memory stays flat)."""
        key = self._step_key(run_id, step_id)
        after = -1
        while True:
            rows = self._db.execute(
                f"SELECT {self._ITEM_COLUMNS} FROM item_rows WHERE step_key = ? AND idx > ?"
                " ORDER BY idx LIMIT ?",
                (key, after, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield self._item_record(row)
            after = rows[-1][0]

    def items(self, run_id: str, step_id: str) -> dict[int, ItemRecord]:
        """A step's item records by index (all in memory: for small steps and tests)."""
        return {record.index: record for record in self.iter_items(run_id, step_id)}

    def item_count(self, run_id: str, step_id: str) -> int:
        """How many items a step recorded."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM item_rows WHERE step_key = ?", (self._step_key(run_id, step_id),)
        ).fetchone()
        return int(row[0])

    def step_counts(self, run_id: str, step_id: str) -> dict[str, Any]:
        """
        What a step's items came to, counted in SQL: ``calls``, ``succeeded``,
        ``failed``, ``reconciled``, ``skipped`` (sends to opted-out recipients), message
        ``statuses`` and Twilio ``error_codes``.
        """
        key = self._step_key(run_id, step_id)
        calls, succeeded, failed, reconciled, skipped = self._db.execute(
            "SELECT COUNT(*), SUM(state = 1), SUM(state = 2), SUM(reconciled), SUM(state = 3)"
            " FROM item_rows WHERE step_key = ?",
            (key,),
        ).fetchone()
        statuses = dict(
            self._db.execute(
                "SELECT status, COUNT(*) FROM item_rows WHERE step_key = ? AND status IS NOT NULL"
                " GROUP BY status ORDER BY status",
                (key,),
            ).fetchall()
        )
        codes = dict(
            self._db.execute(
                "SELECT error_code, COUNT(*) FROM item_rows WHERE step_key = ?"
                " AND error_code IS NOT NULL GROUP BY error_code ORDER BY error_code",
                (key,),
            ).fetchall()
        )
        return {
            "calls": calls,
            "succeeded": succeeded or 0,
            "failed": failed or 0,
            "reconciled": reconciled or 0,
            "skipped": skipped or 0,
            "statuses": statuses,
            "error_codes": codes,
        }

    def failures(
        self, run_id: str, step_id: str, limit: int = 100, *, state: ItemState = "failed"
    ) -> list[ItemRecord]:
        """A step's first *limit* failed items (or items in another *state*: ``skipped``)."""
        rows = self._db.execute(
            f"SELECT {self._ITEM_COLUMNS} FROM item_rows WHERE step_key = ? AND state = ?"
            " ORDER BY idx LIMIT ?",
            (self._step_key(run_id, step_id), _STATE_CODES[state], limit),
        ).fetchall()
        return [self._item_record(row) for row in rows]

    def holder_of(self, run_id: str, step_id: str, sid: str) -> int | None:
        """
        The index of the item of a step whose message is *sid*, if one recorded it.

        It reads the step's rows (about 60 ms for a million): no index by SID is kept,
        because every send would pay for it and this is asked only after an unknown
        outcome. The local runner asks from a worker thread (:meth:`find_holder`).
        """
        return _holder(self._db, self._step_key(run_id, step_id), sid)

    async def find_holder(self, run_id: str, step_id: str, sid: str) -> int | None:
        """:meth:`holder_of` read in a worker thread, so the event loop goes on meanwhile."""
        key = self._step_key(run_id, step_id)

        def read() -> int | None:
            db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)
            try:
                return _holder(db, key, sid)
            finally:
                db.close()

        return await asyncio.to_thread(read)

    def _writer_for(self) -> _Writer:
        if self._writer is None:
            self._writer = _Writer(self.path)
        return self._writer

    async def item_started(
        self, run_id: str, step_id: str, index: int, inputs: Any, started: float
    ) -> None:
        """
        Record that a send is about to go out, and return once that is durable. Sends
        started together share one commit.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        row = _item_row(inputs, None)
        key = self._step_key(run_id, step_id)
        # The outcome's row has the same inputs: its digest is computed once.
        marks = self._digests[key, index] = digest(inputs)
        self._writer_for().submit(
            "INSERT INTO item_rows (step_key, idx, state, key, digest, attempts, started)"
            " VALUES (?, ?, 0, ?, ?, 1, ?)"
            " ON CONFLICT (step_key, idx) DO UPDATE SET state = 0, key = excluded.key,"
            " digest = excluded.digest, attempts = attempts + 1, started = excluded.started,"
            " error = NULL, error_code = NULL",
            (key, index, row.key, marks, started),
            done,
        )
        await done

    def item_finished(
        self,
        run_id: str,
        step_id: str,
        index: int,
        state: ItemState,
        *,
        inputs: Any,
        output: Any = None,
        error: str | None = None,
        error_code: int | None = None,
        reconciled: bool = False,
    ) -> asyncio.Future[None]:
        """
        Record an item's outcome. It is committed with the next group (a crash before
        then leaves a send "started", looked up on resume); the returned future is done
        once it is, as is :meth:`flush`.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        row = _item_row(inputs, output)
        key = self._step_key(run_id, step_id)
        marks = self._digests.pop((key, index), None) or digest(inputs)
        self._writer_for().submit(
            "INSERT INTO item_rows (step_key, idx, state, key, digest, sid, status, error_code,"
            " output, error, reconciled, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (step_key, idx) DO UPDATE SET state = excluded.state,"
            " key = excluded.key, digest = excluded.digest, sid = excluded.sid,"
            " status = excluded.status, error_code = excluded.error_code,"
            " output = excluded.output, error = excluded.error,"
            " reconciled = excluded.reconciled, finished = excluded.finished",
            (
                key,
                index,
                _STATE_CODES[state],
                row.key,
                marks,
                row.sid,
                row.status,
                error_code if error_code is not None else row.error_code,
                row.output,
                error,
                int(reconciled),
                time.time(),
            ),
            done,
        )
        return done

    def item_unresolved(
        self, run_id: str, step_id: str, index: int, error: str | None, error_code: int | None
    ) -> None:
        """Note why a send's outcome is still unknown; it stays ``started``."""
        self._writer_for().submit(
            "UPDATE item_rows SET error = ?, error_code = ? WHERE step_key = ? AND idx = ?",
            (error, error_code, self._step_key(run_id, step_id), index),
            None,
        )

    def add_pages(self, run_id: str, step_id: str, first: int, items: Sequence[Any]) -> None:
        """Record items of a paging step from position *first* on (committed with the next group)."""
        key = self._step_key(run_id, step_id)
        for offset, item in enumerate(items):
            self._writer_for().submit(
                "INSERT OR REPLACE INTO pages (step_key, idx, data) VALUES (?, ?, ?)",
                (key, first + offset, _dumps(item)),
                None,
            )

    def iter_pages(self, run_id: str, step_id: str, *, batch: int = 2000) -> Iterator[Any]:
        """A paging step's items in order, read in batches."""
        key = self._step_key(run_id, step_id)
        after = -1
        while True:
            rows = self._db.execute(
                "SELECT idx, data FROM pages WHERE step_key = ? AND idx > ? ORDER BY idx LIMIT ?",
                (key, after, batch),
            ).fetchall()
            if not rows:
                return
            for _, data in rows:
                yield json.loads(data)
            after = rows[-1][0]

    def page_count(self, run_id: str, step_id: str) -> int:
        """How many items a paging step recorded."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM pages WHERE step_key = ?", (self._step_key(run_id, step_id),)
        ).fetchone()
        return int(row[0])

    async def flush(self) -> None:
        """Return once every item row recorded so far is committed."""
        if self._writer is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writer.submit("", (), done)
        await done

    # -- received events ------------------------------------------------------------

    def record_event(
        self,
        event_key: str,
        token: str | None,
        kind: str,
        payload: Mapping[str, Any],
        deliveries: Mapping[str, str],
        reply: str | None = None,
    ) -> tuple[bool, str | None]:
        """
        Record a received event and the runs it starts, durably, in one transaction.

        Args:
            event_key: The deduplication key (``inbound:SM...``, ``status:SM...:sent``).
            token: Twilio's ``I-Twilio-Idempotency-Token``, when sent.
            kind: The trigger (``twilio/message_received``).
            payload: The event, JSON form.
            deliveries: Workflow file -> the run id reserved for it.
            reply: What was answered for it (the TwiML document), answered again to a
                retried delivery.

        Returns:
            ``(True, reply)`` for a new event; ``(False, the first delivery's reply)``
            when the key or the token was seen before (nothing is recorded).
        """
        with self._db:
            row = self._db.execute(
                "SELECT reply FROM events WHERE event_key = ? OR (token IS NOT NULL AND token = ?)",
                (event_key, token),
            ).fetchone()
            if row is not None:
                return False, row[0]
            self._db.execute(
                "INSERT INTO events (event_key, token, kind, payload, reply, received)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (event_key, token, kind, _dumps(payload), reply, time.time()),
            )
            self._db.executemany(
                "INSERT INTO deliveries (event_key, workflow, run_id, state)"
                " VALUES (?, ?, ?, 'pending')",
                [(event_key, workflow, run_id) for workflow, run_id in deliveries.items()],
            )
        return True, reply

    def inbound_events(
        self, kind: str, *, after: int = 0, since: float = 0.0, limit: int = 1000
    ) -> tuple[list[tuple[float, dict[str, Any]]], int]:
        """
        Received events of *kind* (``twilio/message_received``), in the order they were
        recorded: those past position *after* received at or after *since*.

        A run that waits for replies reads the incoming messages a listener on this
        journal received, so it sees them even before Twilio's message list does.

        Returns:
            ``(received, payload)`` of each (at most *limit*), and the position the next
            read starts after: past every event read or older than *since*, so a look
            never reads the journal's whole history again.
        """
        (newest,) = self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM events").fetchone()
        rows = self._db.execute(
            "SELECT rowid, received, payload FROM events WHERE rowid > ? AND rowid <= ?"
            " AND kind = ? AND received >= ? ORDER BY rowid LIMIT ?",
            (after, newest, kind, since, limit),
        ).fetchall()
        found = [(float(received), json.loads(payload)) for _, received, payload in rows]
        # Events recorded after `newest` are read next time; a full page may have more.
        last = int(rows[-1][0]) if len(rows) == limit else max(after, int(newest))
        return found, last

    @property
    def owner(self) -> str:
        """Who this journal object claims deliveries as: ``host:pid:token``."""
        return f"{self._host}:{os.getpid()}:{self._token}"

    def pending_deliveries(
        self,
        limit: int,
        *,
        workflows: Collection[str],
        exclude: Collection[str] = (),
        lease: float = DELIVERY_LEASE,
    ) -> list[DeliveryRecord]:
        """
        Return the oldest deliveries not yet done, for *workflows*, that this process
        may claim: unclaimed, claimed by it, or whose claim lapsed (not renewed for
        *lease* seconds, or held by a process of this machine that is gone). Run ids in
        *exclude* are skipped.

        Args:
            limit: At most this many.
            workflows: Only deliveries to these workflow files.
            exclude: Run ids already being run.
            lease: How long a claim lasts without renewal.
        """
        if limit <= 0 or not workflows:
            return []
        # Both lists are bound as parameters; only their placeholders are formatted in.
        in_workflows = ",".join("?" * len(workflows))
        not_in = ",".join("?" * len(exclude))
        rows = self._db.execute(
            "SELECT d.event_key, d.workflow, d.run_id, d.state, e.kind, e.payload, d.owner,"
            " d.claimed FROM deliveries d JOIN events e ON e.event_key = d.event_key"
            f" WHERE d.state = 'pending' AND d.workflow IN ({in_workflows})"
            f" AND d.run_id NOT IN ({not_in})"
            " AND (d.owner IS NULL OR d.owner = ? OR d.claimed < ? OR d.owner LIKE ?)"
            " ORDER BY d.seq",
            (*workflows, *exclude, self.owner, time.time() - lease, f"{self._host}:%"),
        ).fetchall()
        found = [
            DeliveryRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))
            for row in rows
            if not self._held_elsewhere(row[6], row[7], lease)
        ]
        return found[:limit]

    def _held_elsewhere(self, owner: str | None, claimed: float | None, lease: float) -> bool:
        """Whether another process holds a delivery's claim."""
        if owner is None or owner == self.owner:
            return False
        host, pid, _ = [*owner.rsplit(":", 2), "", ""][:3]
        if host == self._host and pid.isdigit() and int(pid) != os.getpid():
            return _alive(int(pid))  # this machine: whether the process lives decides
        return claimed is not None and claimed >= time.time() - lease  # another: the lease

    def claim_delivery(self, run_id: str, *, lease: float = DELIVERY_LEASE) -> bool:
        """
        Take the delivery of *run_id* for this process, unless another live listener
        holds it: one atomic compare-and-set, so two listeners on one journal never both
        start it.

        Returns:
            Whether this process now holds it.
        """
        with self._db:
            row = self._db.execute(
                "SELECT owner, claimed, state FROM deliveries WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None or row[2] != "pending" or self._held_elsewhere(row[0], row[1], lease):
                return False
            taken = self._db.execute(
                "UPDATE deliveries SET owner = ?, claimed = ? WHERE run_id = ?"
                " AND state = 'pending' AND owner IS ?",
                (self.owner, time.time(), run_id, row[0]),
            )
            return taken.rowcount == 1

    def renew_claims(self, run_ids: Collection[str]) -> None:
        """Renew this process's claims on the deliveries of *run_ids* (they are still running)."""
        if not run_ids:
            return
        marks = ",".join("?" * len(run_ids))
        with self._db:
            self._db.execute(
                f"UPDATE deliveries SET claimed = ? WHERE owner = ? AND run_id IN ({marks})",
                (time.time(), self.owner, *run_ids),
            )

    def delivery_done(self, run_id: str) -> None:
        """Mark the delivery whose run is *run_id* as done (its run ended)."""
        with self._db:
            self._db.execute("UPDATE deliveries SET state = 'done' WHERE run_id = ?", (run_id,))

    def cursor(self, name: str) -> str | None:
        """Return a poller's saved position, or ``None``."""
        row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, name: str, value: str) -> None:
        """Save a poller's position."""
        with self._db:
            self._db.execute(
                "INSERT INTO cursors (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
