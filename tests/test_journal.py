"""The journal's schema versions: migrations of older journals, refusal of newer ones, file modes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector import Connection
from connector.emulator import EmulatorServer
from connector.errors import ConnectorError, JournalVersionError
from connector.workflow import Journal, _journal, load_workflow, run_workflow
from connector.workflow._journal import SCHEMA_VERSION
from connector.workflow._runner import _JournalClaims


DATA = Path(__file__).parent / "data"
FANOUT = DATA / "workflows" / "journal-fanout.yaml"
REPLY = DATA / "workflows" / "journal-reply.yaml"
SENDER = "+15005550006"
# Journals written by earlier versions; tests/data/README.md says which.
OLD_JOURNALS = [
    "journal-v4.sql",
    "journal-v3.sql",
    "journal-v2.sql",
    "journal-v1.sql",
    "journal-v0.sql",
    "journal-pre-trigger.sql",
]


def load(dump: str, path: Path) -> Path:
    """Write the journal dumped in tests/data/*dump* to *path*."""
    db = sqlite3.connect(path)
    db.executescript((DATA / dump).read_text(encoding="utf-8"))
    db.close()
    return path


def peek(path: Path, query: str) -> list[tuple[object, ...]]:
    """Run *query* on the file directly, outside the journal's code."""
    db = sqlite3.connect(path)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def schema(path: Path) -> dict[str, object]:
    """Every table's columns and every index's columns, as SQLite reports them."""
    db = sqlite3.connect(path)
    try:
        names = db.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        return {
            f"{kind} {name}": db.execute(
                f"PRAGMA {'table_info' if kind == 'table' else 'index_info'}({name})"
            ).fetchall()
            for kind, name in names
        }
    finally:
        db.close()


@pytest.mark.parametrize("dump", OLD_JOURNALS)
async def test_an_old_journal_is_migrated_and_its_interrupted_run_resumes(
    dump: str, tmp_path: Path, conn: Connection, twilio_emulator: EmulatorServer
) -> None:
    """A run interrupted mid fan-out under an older version resumes: done items are not resent, the started one is reconciled."""
    path = load(dump, tmp_path / "runs.sqlite3")
    # The send in flight when the old process stopped had reached Twilio.
    in_flight = await conn.call(
        "send_text_message", {"from": SENDER, "to": "+15005550113", "body": "Notice #2"}
    )
    with Journal(path) as journal:
        assert [(r.run_id, r.state) for r in journal.runs()] == [
            ("fixture-interrupted", "running"),
            ("fixture-done", "succeeded"),
        ]
        done = [journal.items("fixture-interrupted", "send")[i].output["sid"] for i in (0, 1)]
        result = await run_workflow(
            load_workflow(FANOUT), {}, conn, journal, run_id="fixture-interrupted"
        )
        record = journal.run("fixture-interrupted")
    assert result.ok, result
    items = result.steps[0].items
    assert [(i.status, i.resumed, i.reconciled) for i in items] == [
        ("succeeded", True, False),
        ("succeeded", True, False),
        ("succeeded", False, True),
        ("succeeded", False, False),
    ]
    assert [i.output["sid"] for i in items[:3]] == [*done, in_flight.sid]
    assert sorted((m["to"], m["body"]) for m in twilio_emulator.messages()) == [
        ("+15005550113", "Notice #2"),
        ("+15005550114", "Notice #3"),
    ]
    assert record is not None and record.state == "succeeded"
    assert peek(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_a_pending_delivery_of_an_old_journal_still_runs_once(
    tmp_path: Path, conn: Connection, twilio_emulator: EmulatorServer
) -> None:
    """An event accepted under an older version but never run is still pending, runs, and stays deduplicated."""
    path = load("journal-v0.sql", tmp_path / "runs.sqlite3")
    workflows = ["workflows/journal-reply.yaml"]
    with Journal(path) as journal:
        (delivery,) = journal.pending_deliveries(10, workflows=workflows)
        assert (delivery.kind, delivery.state) == ("twilio/message_received", "pending")
        # As the listener runs a delivery.
        result = await run_workflow(
            load_workflow(REPLY),
            {},
            conn,
            journal,
            run_id=delivery.run_id,
            trigger=delivery.payload,
        )
        journal.delivery_done(delivery.run_id)
        assert result.ok, result
        assert journal.pending_deliveries(10, workflows=workflows) == []
        again = journal.record_event(
            delivery.event_key, None, delivery.kind, delivery.payload, {workflows[0]: "other"}
        )
        assert again[0] is False
    assert [(m["to"], m["body"]) for m in twilio_emulator.messages()] == [
        ("+15005550120", "Got it: hello")
    ]


def test_a_journal_from_before_triggers_gets_the_trigger_column_and_event_tables(
    tmp_path: Path,
) -> None:
    """An unversioned journal without runs.trigger gains it, and the event tables, keeping its runs."""
    path = load("journal-pre-trigger.sql", tmp_path / "runs.sqlite3")
    assert "trigger" not in [c[1] for c in peek(path, "PRAGMA table_info(runs)")]
    with Journal(path) as journal:
        done = journal.run("fixture-done")
        assert done is not None
        assert (done.state, done.trigger, done.outputs is not None) == ("succeeded", None, True)
        new, _ = journal.record_event("inbound:SM1", None, "twilio/message_received", {}, {})
        assert new
        journal.set_cursor("poll", "x")
        assert journal.cursor("poll") == "x"


async def test_a_version_3_journal_gains_the_consent_ledger(tmp_path: Path) -> None:
    """Migration 4 adds the consent table to a version-3 journal; its ledger then records and answers."""
    path = load("journal-v3.sql", tmp_path / "runs.sqlite3")
    assert peek(path, "SELECT name FROM sqlite_master WHERE name = 'consent'") == []
    with Journal(path) as journal:
        await journal.consent.record(SENDER, "+15005550113", "opted_out", "STOP")
        assert await journal.consent.opted_out(SENDER, "+15005550113") is not None
        assert journal.run("fixture-done") is not None
    assert peek(path, "SELECT sender, recipient, state FROM consent") == [
        (SENDER, "+15005550113", "opted_out")
    ]


def test_every_journal_ends_at_the_schema_of_a_new_one(tmp_path: Path) -> None:
    """Migrated old journals have exactly the tables, columns and indexes of a new journal."""
    Journal(tmp_path / "new.sqlite3").close()
    expected = schema(tmp_path / "new.sqlite3")
    assert peek(tmp_path / "new.sqlite3", "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    for dump in OLD_JOURNALS:
        path = load(dump, tmp_path / f"{dump}.sqlite3")
        Journal(path).close()
        assert schema(path) == expected, dump


def test_a_journal_of_a_newer_version_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    """A journal whose user_version is above SCHEMA_VERSION raises JournalVersionError, untouched."""
    path = tmp_path / "runs.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE runs_v9 (x)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(JournalVersionError) as caught:
        Journal(path)
    error = caught.value
    assert isinstance(error, ConnectorError)
    assert (error.path, error.version, error.supported) == (
        str(path),
        SCHEMA_VERSION + 1,
        SCHEMA_VERSION,
    )
    assert "written by a newer version" in str(error)
    assert "upgrade" in str(error)
    assert path.read_bytes() == before
    assert peek(path, "PRAGMA journal_mode") == [("delete",)]


def test_migrations_run_in_order_from_the_journals_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a next migration added, a current journal runs only it, an older one all it lacks, a migrated one none."""
    ran: list[str] = []
    current = _journal.SCHEMA_VERSION

    def recording(number: int, migrate: Any) -> Any:
        def run(db: sqlite3.Connection) -> None:
            ran.append(str(number))
            migrate(db)

        return run

    def migrate_next(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    Journal(tmp_path / "current.sqlite3").close()
    steps = [*_journal._MIGRATIONS, migrate_next]
    monkeypatch.setattr(
        _journal, "_MIGRATIONS", tuple(recording(n, m) for n, m in enumerate(steps, 1))
    )
    monkeypatch.setattr(_journal, "SCHEMA_VERSION", current + 1)
    Journal(tmp_path / "current.sqlite3").close()
    assert ran == [str(current + 1)]
    Journal(load("journal-pre-trigger.sql", tmp_path / "v0.sqlite3")).close()
    assert ran == [str(current + 1), *(str(n) for n in range(1, current + 2))]
    before = list(ran)
    Journal(tmp_path / "v0.sqlite3").close()
    assert ran == before
    for name in ("current", "v0"):
        assert peek(tmp_path / f"{name}.sqlite3", "PRAGMA user_version") == [(current + 1,)]


def test_a_failing_migration_leaves_the_journal_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every migration runs in one transaction: when a later one fails, the earlier ones are undone too."""

    def migrate_to_2(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk on fire")

    path = load("journal-pre-trigger.sql", tmp_path / "runs.sqlite3")
    before = schema(path)
    monkeypatch.setattr(_journal, "_MIGRATIONS", (_journal._migrate_to_1, migrate_to_2))
    monkeypatch.setattr(_journal, "SCHEMA_VERSION", 2)
    with pytest.raises(sqlite3.OperationalError, match="disk on fire"):
        Journal(path)
    assert peek(path, "PRAGMA user_version") == [(0,)]
    assert schema(path) == before


def test_two_openers_of_an_old_journal_migrate_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second opener that saw the old version while the first migrated waits, then migrates nothing."""
    path = load("journal-pre-trigger.sql", tmp_path / "runs.sqlite3")
    migrating = threading.Event()
    second_saw_old = threading.Event()
    migrated_by: list[str] = []
    errors: list[BaseException] = []
    read_version = _journal._schema_version

    def schema_version(db: sqlite3.Connection) -> int:
        version = read_version(db)
        if threading.current_thread().name == "second" and version == 0:
            second_saw_old.set()
        return version

    def migrate_to_1(db: sqlite3.Connection) -> None:
        migrated_by.append(threading.current_thread().name)
        migrating.set()
        # Hold the migration open until the other opener has read the old version.
        assert second_saw_old.wait(10)
        _journal._migrate_to_1(db)

    def open_journal() -> None:
        try:
            if threading.current_thread().name == "second":
                assert migrating.wait(10)
            with Journal(path) as journal:
                assert len(journal.runs()) == 2
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    monkeypatch.setattr(_journal, "_schema_version", schema_version)
    monkeypatch.setattr(_journal, "_MIGRATIONS", (migrate_to_1,))
    threads = [threading.Thread(target=open_journal, name=name) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert migrated_by == ["first"]
    assert peek(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


OPENER = """
import sys
from connector.workflow import Journal
print("ready", flush=True)
sys.stdin.readline()
with Journal(sys.argv[1]) as journal:
    print(len(journal.runs()))
"""


@pytest.mark.parametrize("dump", ["journal-pre-trigger.sql", None])
def test_processes_opening_one_journal_at_once_all_succeed(
    dump: str | None, tmp_path: Path
) -> None:
    """Four processes opening one old (or not yet existing) journal at the same moment all open it, at the current version."""
    path = tmp_path / "runs.sqlite3"
    if dump is not None:
        load(dump, path)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outcomes = [process.communicate(timeout=60) for process in processes]
    expected = "0\n" if dump is None else "2\n"
    assert [
        (p.returncode, out, err) for p, (out, err) in zip(processes, outcomes, strict=True)
    ] == [(0, expected, "")] * 4
    assert peek(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


@pytest.fixture(params=[0o000, 0o022, 0o077, 0o277], ids=lambda mask: f"umask{mask:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under each umask, restoring the previous one after."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_journal_files_are_private_whatever_the_umask(umask: int, tmp_path: Path) -> None:
    """The journal and its -wal and -shm files are created with mode 0600, whatever the umask."""
    path = tmp_path / "state" / "runs.sqlite3"
    with Journal(path) as journal:
        journal.create_run("r1", "w.yaml", "w", "f", {"to": "+15005550101"})
        files = [path, path.with_name("runs.sqlite3-wal"), path.with_name("runs.sqlite3-shm")]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {f.name: 0o600 for f in files}


def test_an_item_record_is_the_journals_row_in_a_compact_json_form() -> None:
    """item_record keeps what the journal keeps (key, brief message); to_json/from_json round-trip it."""
    from connector.workflow import ItemRecord, item_record

    message = {
        "sid": "SM1",
        "to": "+15005550101",
        "status": "queued",
        "body": "hi",
        "error_code": None,
        "date_created": "2026-05-01T12:00:00.000Z",
    }
    sent = item_record(
        3,
        "succeeded",
        inputs={"to": "+15005550101", "body": "hi"},
        output=message,
        attempts=2,
        started=10.0,
        finished=11.5,
        reconciled=True,
    )
    assert sent.key == "+15005550101"
    # A message keeps its brief fields: when it was made, not its body.
    assert sent.output == {
        "sid": "SM1",
        "to": "+15005550101",
        "status": "queued",
        "error_code": None,
        "date_created": "2026-05-01T12:00:00.000Z",
    }
    assert ItemRecord.from_json(sent.to_json()) == sent
    refused = item_record(4, "failed", inputs={"to": "+15005550001"}, error="bad", error_code=21211)
    assert (refused.key, refused.output, refused.error_code) == ("+15005550001", None, 21211)
    assert ItemRecord.from_json(refused.to_json()) == refused
    other = item_record(0, "succeeded", inputs=None, output={"count": 7})
    assert ItemRecord.from_json(other.to_json()).output == {"count": 7}


def test_inbound_events_are_read_once_past_what_is_older(tmp_path: Path) -> None:
    """A waiting run reads each journaled incoming message once, and never the old history again."""
    with Journal(tmp_path / "runs.sqlite3") as journal:
        inbound = "twilio/message_received"
        journal.record_event("inbound:SM1", None, inbound, {"MessageSid": "SM1"}, {})
        journal.record_event("status:SM1:sent", None, "twilio/message_status_changed", {}, {})
        since = time.time()
        found, last = journal.inbound_events(inbound, since=since + 60)
        assert (found, last) == ([], 2)  # nothing new; the next read starts past both
        journal.record_event("inbound:SM2", None, inbound, {"MessageSid": "SM2"}, {})
        found, last = journal.inbound_events(inbound, after=last, since=since)
        assert [event["MessageSid"] for _, event in found] == ["SM2"] and last == 3
        assert journal.inbound_events(inbound, after=last, since=since) == ([], 3)


async def test_a_message_committed_while_a_claim_reads_the_journal_is_not_credited_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SID another item records and commits while a lookup's claim reads the journal stays that item's."""
    sid = "SM" + "1" * 32
    read, release = threading.Event(), threading.Event()
    real = _journal._holder

    def holder(db: sqlite3.Connection, step_key: int, wanted: str) -> int | None:
        found = real(db, step_key, wanted)  # read before the other item's row is committed
        read.set()
        release.wait(10)
        return found

    monkeypatch.setattr(_journal, "_holder", holder)
    with Journal(tmp_path / "runs.sqlite3") as journal:
        claims = _JournalClaims(journal, "run")
        claim = asyncio.ensure_future(claims.claim(sid, "run/send/2"))
        await asyncio.to_thread(read.wait, 10)
        await claims.record(sid, "run/send/1")
        committed = journal.item_finished(
            "run", "send", 1, "succeeded", inputs={}, output={"sid": sid}
        )
        committed.add_done_callback(lambda _: claims.settled(sid))
        await committed
        release.set()
        assert await claim is False
        assert journal.holder_of("run", "send", sid) == 1
