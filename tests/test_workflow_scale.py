"""The local runner at scale: streamed items, a small journal, results read back from it."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from connector import Connection, HttpRequest, HttpResponse, MockTransport
from connector.cli import main
from connector.emulator import EmulatorServer
from connector.workflow import Journal, LazyList, load_workflow, run_workflow
from connector.workflow import _expressions as expressions


BROADCAST = """
name: broadcast
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ read_csv('people.csv') }}
    concurrency: 8
    with: {from: "+15005550006", to: "${{ item.phone }}", body: "secret plan for ${{ item.name }}"}
outputs:
  sent: ${{ length(steps.send.outputs) }}
  delivered: ${{ length(steps.send.outputs[?sid]) }}
  sids: ${{ steps.send.outputs[*].sid }}
"""


def people(tmp_path: Path, count: int, *, bad: int | None = None) -> Path:
    with (tmp_path / "people.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "phone"])
        for i in range(count):
            writer.writerow([f"P{i}", "+15005550001" if i == bad else f"+1555{2_000_000 + i:07d}"])
    path = tmp_path / "broadcast.yaml"
    path.write_text(BROADCAST)
    return path


def connect(emulator: EmulatorServer) -> Connection:
    return Connection(
        emulator.account_sid,
        emulator.auth_token,
        base_url=emulator.base_url,
        rate_limit=False,
        env={},
    )


def test_read_csv_in_for_each_is_read_row_by_row(tmp_path: Path) -> None:
    """for_each: read_csv(FILE) gives an iterator and a line count, not a list."""
    path = people(tmp_path, 30)
    workflow = load_workflow(path)
    template = workflow.steps[0].for_each
    assert isinstance(template, expressions.Template)
    functions = expressions.WorkflowFunctions(tmp_path)
    stream = functions.stream(template, {"inputs": {}})
    assert stream is not None
    rows, total = stream
    assert total == 30 and not isinstance(rows, list)
    assert next(rows) == {"name": "P0", "phone": "+15552000000"}


async def test_a_large_step_is_read_from_the_journal(
    twilio_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the in-memory bound, a step's outputs and items are views of the journal, and outputs that would read too much are refused by name."""
    monkeypatch.setattr("connector.workflow._runner.KEEP_IN_MEMORY", 10)
    monkeypatch.setattr(expressions, "READ_LIMIT", 20)
    path = people(tmp_path, 40, bad=7)
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with connect(twilio_emulator) as conn:
            result = await run_workflow(load_workflow(path), {}, conn, journal)
        step = result.steps[0]
        assert not isinstance(step.items, tuple) and len(step.items) == 40
        assert step.counts is not None
        assert (step.counts["succeeded"], step.counts["failed"]) == (39, 1)
        assert step.counts["failures"][0]["key"] == "+15005550001"
        assert step.counts["error_codes"] == {21211: 1}
        assert isinstance(step.outputs, LazyList) and len(step.outputs) == 40
        assert result.outputs["sent"] == 40
        # length(x[?sid]) and x[*].sid read every item: past the limit, refused by name.
        assert result.outputs["delivered"] is None and result.outputs["sids"] is None
        assert "runs export" in result.output_errors["sids"]
        assert step.items[7].status == "failed" and step.items[7].error_code == 21211


async def test_the_journal_keeps_no_bodies_and_no_second_copy(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Per item the journal keeps the recipient, state, SID and code; never a body, never the step's outputs again."""
    path = people(tmp_path, 50)
    journal_path = tmp_path / "j.sqlite3"
    with Journal(journal_path) as journal:
        async with connect(twilio_emulator) as conn:
            result = await run_workflow(load_workflow(path), {}, conn, journal)
    assert result.ok
    raw = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()) if p.name.startswith("j."))  # noqa: ASYNC240
    assert b"secret plan" not in raw
    with sqlite3.connect(journal_path) as db:
        (outputs,) = db.execute("SELECT outputs FROM steps").fetchone()
        keys = [row[0] for row in db.execute("SELECT key FROM item_rows ORDER BY idx")]
    assert outputs in (None, "null")
    assert keys[:2] == ["+15552000000", "+15552000001"]


async def test_a_send_is_journaled_as_started_before_its_request_leaves(tmp_path: Path) -> None:
    """Grouped commits keep the guarantee: when Twilio sees a send, the journal already has it started."""
    path = people(tmp_path, 6)
    journal_path = tmp_path / "j.sqlite3"
    seen: list[int] = []

    def answer(request: HttpRequest) -> HttpResponse:
        with sqlite3.connect(journal_path) as db:
            started = db.execute("SELECT COUNT(*) FROM item_rows WHERE state = 0").fetchone()[0]
        seen.append(started)
        body = {"sid": f"SM{len(seen):032d}", "status": "queued", "to": "+1555"}
        return HttpResponse(201, json.dumps(body).encode())

    conn = Connection(
        "AC" + "0" * 32,
        "token",
        base_url="https://api.twilio.com",
        transport=MockTransport(answer),
        rate_limit=False,
        env={},
    )
    with Journal(journal_path) as journal:
        async with conn:
            result = await run_workflow(load_workflow(path), {}, conn, journal)
    assert result.ok and len(seen) == 6
    assert all(count >= 1 for count in seen)


async def test_runs_export_streams_every_item(
    twilio_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """runs export RUN_ID writes one row per item, as CSV or JSON lines."""
    path = people(tmp_path, 12, bad=3)
    state = tmp_path / "j.sqlite3"
    with Journal(state) as journal:
        async with connect(twilio_emulator) as conn:
            result = await run_workflow(load_workflow(path), {}, conn, journal, run_id="big-1")
    assert result.status == "failed"
    assert main(["runs", "export", "big-1", "--state", str(state)]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 12 and rows[3]["state"] == "failed" and rows[3]["error_code"] == "21211"
    assert rows[0]["sid"].startswith("SM") and rows[0]["key"] == "+15552000000"
    out = tmp_path / "items.jsonl"
    assert (
        main(
            ["runs", "export", "big-1", "--state", str(state), "--format", "jsonl", "-o", str(out)]
        )
        == 0
    )
    lines: list[dict[str, Any]] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(12))
    assert main(["runs", "export", "nope", "--state", str(state)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
