# SPDX-License-Identifier: MIT
"""
The run journal: a SQLite file (WAL) that records each run, each step and each item,
so that a run can be resumed without losing or repeating work.

An item that sends a message is written as ``started`` and committed *before* the
request goes out, and its outcome after; an item found ``started`` on resume has an
unknown outcome and is reconciled with Twilio before anything is sent again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import attrs
import platformdirs


__all__ = ["ItemRecord", "Journal", "RunRecord", "StepRecord", "default_journal_path"]

RunState = Literal["running", "succeeded", "failed", "interrupted"]
ItemState = Literal["started", "succeeded", "failed", "skipped"]

_SCHEMA = """
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
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    state TEXT NOT NULL,
    outputs TEXT,
    error TEXT,
    PRIMARY KEY (run_id, step_id)
);
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
);
"""


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
        inputs: The call's inputs, secrets masked.
        attempts: How many sends were started.
        started: When the latest attempt started (epoch seconds).
        output: The output, JSON form.
        error: The error, in words.
        error_code: Twilio's error code, when there is one.
        reconciled: Whether the outcome was found by looking the message up.
    """

    index: int
    state: ItemState
    inputs: Mapping[str, Any]
    attempts: int
    started: float | None
    output: Any
    error: str | None
    error_code: int | None
    reconciled: bool


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


class Journal:
    """
    The journal of runs, in one SQLite file.

    Use it as a context manager, or call :meth:`close`.

    Args:
        path: The SQLite file; created with its directory if missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0)
        # WAL lets `twilio-connector runs` read while a run writes. FULL makes each
        # commit durable even on power loss: a lost "started" row could mean a resend.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._host = socket.gethostname()

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
        """Close the file."""
        self._db.close()

    # -- runs -----------------------------------------------------------------------

    def create_run(
        self, run_id: str, workflow: str, name: str, fingerprint: str, inputs: Mapping[str, Any]
    ) -> None:
        """Record a new run, owned by this process."""
        with self._db:
            self._db.execute(
                "INSERT INTO runs (run_id, workflow, name, fingerprint, inputs, state, pid, host,"
                " started) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    run_id,
                    workflow,
                    name,
                    fingerprint,
                    _dumps(inputs),
                    os.getpid(),
                    self._host,
                    time.time(),
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

    def items(self, run_id: str, step_id: str) -> dict[int, ItemRecord]:
        """Return a step's item records by index."""
        rows = self._db.execute(
            "SELECT idx, state, inputs, attempts, started, output, error, error_code,"
            " reconciled FROM items WHERE run_id = ? AND step_id = ?",
            (run_id, step_id),
        ).fetchall()
        return {
            row[0]: ItemRecord(
                index=row[0],
                state=row[1],
                inputs=json.loads(row[2]),
                attempts=row[3],
                started=row[4],
                output=None if row[5] is None else json.loads(row[5]),
                error=row[6],
                error_code=row[7],
                reconciled=bool(row[8]),
            )
            for row in rows
        }

    def item_started(
        self, run_id: str, step_id: str, index: int, inputs: Mapping[str, Any], started: float
    ) -> None:
        """Record, durably, that a send is about to go out."""
        with self._db:
            self._db.execute(
                "INSERT INTO items (run_id, step_id, idx, state, inputs, attempts, started)"
                " VALUES (?, ?, ?, 'started', ?, 1, ?)"
                " ON CONFLICT (run_id, step_id, idx) DO UPDATE SET state = 'started',"
                " inputs = excluded.inputs, attempts = attempts + 1, started = excluded.started,"
                " error = NULL, error_code = NULL",
                (run_id, step_id, index, _dumps(inputs), started),
            )

    def item_finished(
        self,
        run_id: str,
        step_id: str,
        index: int,
        state: ItemState,
        *,
        inputs: Mapping[str, Any],
        output: Any = None,
        error: str | None = None,
        error_code: int | None = None,
        reconciled: bool = False,
    ) -> None:
        """Record an item's outcome."""
        with self._db:
            self._db.execute(
                "INSERT INTO items (run_id, step_id, idx, state, inputs, output, error,"
                " error_code, reconciled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, step_id, idx) DO UPDATE SET state = excluded.state,"
                " inputs = excluded.inputs, output = excluded.output, error = excluded.error,"
                " error_code = excluded.error_code, reconciled = excluded.reconciled",
                (
                    run_id,
                    step_id,
                    index,
                    state,
                    _dumps(inputs),
                    None if output is None else _dumps(output),
                    error,
                    error_code,
                    int(reconciled),
                ),
            )
