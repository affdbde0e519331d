"""Paths built from trigger or item data stay in the workflow's directory (or the output directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector import Connection
from connector.emulator import EmulatorServer
from connector.receiving._triggers import render_reply
from connector.workflow import (
    OUTPUT_DIR_ENV,
    ExpressionError,
    Journal,
    RunResult,
    load_workflow,
    run_workflow,
)


TRIGGERED = """
name: alerts
on:
  twilio/message_received: {}
steps:
  - id: save
    uses: workflow/write_json
    with: {path: "${{ trigger.Body }}", value: "${{ trigger.From }}"}
"""

ITEMS = """
name: items
inputs:
  names: {type: array}
steps:
  - id: save
    uses: workflow/write_json
    for_each: ${{ inputs.names }}
    with: {path: "out/${{ item }}", value: "${{ index }}"}
"""

READS = """
name: reads
on:
  twilio/message_received: {}
steps:
  - id: read
    uses: workflow/write_json
    with: {path: copy.json, value: "${{ read_json(trigger.Body) }}"}
"""

LITERAL = """
name: literal
inputs:
  target: {type: string}
steps:
  - id: fixed
    uses: workflow/write_json
    with: {path: "FIXED", value: "${{ read_json('SECRET') }}"}
  - id: given
    uses: workflow/write_json
    with: {path: "${{ inputs.target }}", value: 2}
"""

EVENT = {"MessageSid": "SM" + "1" * 32, "From": "+15551230001", "To": "+15005550006"}


def place(base: Path, text: str) -> None:
    """Write *text* as the workflow file base/wf.yaml."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "wf.yaml").write_text(text)


async def run(
    emulator: EmulatorServer,
    base: Path,
    text: str,
    *,
    inputs: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
) -> RunResult:
    """Write *text* as base/wf.yaml and run it once against the emulator."""
    place(base, text)
    with Journal(base.parent / "runs.db") as journal:
        async with Connection(
            emulator.account_sid,
            emulator.auth_token,
            base_url=emulator.base_url,
            rate_limit=False,
            env={},
        ) as conn:
            return await run_workflow(
                load_workflow(base / "wf.yaml"), inputs or {}, conn, journal, trigger=trigger
            )


async def test_a_trigger_built_path_may_not_leave_the_workflow_directory(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """write_json to ../x built from trigger data fails the item, naming the path; inside works."""
    base = tmp_path / "wf"
    result = await run(twilio_emulator, base, TRIGGERED, trigger={**EVENT, "Body": "../x.json"})
    item = result.steps[0].items[0]
    assert item.status == "failed"
    assert "../x.json" in (item.error or "") and "outside the workflow's directory" in (
        item.error or ""
    )
    assert not (tmp_path / "x.json").exists()
    result = await run(twilio_emulator, base, TRIGGERED, trigger={**EVENT, "Body": "in/x.json"})
    assert result.ok and (base / "in" / "x.json").exists()


async def test_absolute_and_home_paths_from_a_trigger_are_refused(
    twilio_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absolute path or ~ from the event is outside too."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for body in (str(tmp_path / "abs.json"), "~/x.json"):
        result = await run(
            twilio_emulator, tmp_path / "wf", TRIGGERED, trigger={**EVENT, "Body": body}
        )
        assert result.steps[0].items[0].status == "failed", body
    assert not (tmp_path / "abs.json").exists()


async def test_a_symlink_out_of_the_directory_is_refused(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A path through a symbolic link that points elsewhere resolves outside and is refused."""
    base = tmp_path / "wf"
    base.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (base / "link").symlink_to(tmp_path / "elsewhere")
    result = await run(twilio_emulator, base, TRIGGERED, trigger={**EVENT, "Body": "link/x.json"})
    assert result.steps[0].items[0].status == "failed"
    assert not (tmp_path / "elsewhere" / "x.json").exists()


async def test_item_built_paths_are_confined_per_item(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Each for_each item whose path leaves the directory fails alone; the others are written."""
    base = tmp_path / "wf"
    names = ["a.json", "../../escaped.json", "b.json"]
    result = await run(twilio_emulator, base, ITEMS, inputs={"names": names})
    assert [i.status for i in result.steps[0].items] == ["succeeded", "failed", "succeeded"]
    assert not (tmp_path / "escaped.json").exists()
    assert sorted(p.name for p in (base / "out").iterdir()) == ["a.json", "b.json"]


async def test_the_output_directory_may_be_used_too(
    twilio_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TWILIO_CONNECTOR_OUTPUT_DIR names a second directory such paths may use."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    body = str(outputs / "x.json")
    base = tmp_path / "wf"
    result = await run(twilio_emulator, base, TRIGGERED, trigger={**EVENT, "Body": body})
    assert not result.ok
    monkeypatch.setenv(OUTPUT_DIR_ENV, str(outputs))
    result = await run(twilio_emulator, base, TRIGGERED, trigger={**EVENT, "Body": body})
    assert result.ok and (outputs / "x.json").exists()


async def test_read_functions_on_trigger_data_are_confined(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """read_json of a name from the event may not read outside the directory either."""
    (tmp_path / "secret.json").write_text('"s3cr3t"')
    base = tmp_path / "wf"
    base.mkdir()
    (base / "ok.json").write_text('"fine"')
    result = await run(twilio_emulator, base, READS, trigger={**EVENT, "Body": "../secret.json"})
    item = result.steps[0].items[0]
    assert item.status == "failed" and "secret.json" in (item.error or "")
    assert "s3cr3t" not in str(result)
    result = await run(twilio_emulator, base, READS, trigger={**EVENT, "Body": "ok.json"})
    assert result.ok


async def test_literal_paths_and_run_inputs_keep_todays_rules(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Paths written in the workflow or given as inputs may still be absolute or leave the directory."""
    (tmp_path / "secret.json").write_text('"kept"')
    target = tmp_path / "given.json"
    text = LITERAL.replace("FIXED", str(tmp_path / "fixed.json")).replace(
        "SECRET", str(tmp_path / "secret.json")
    )
    result = await run(twilio_emulator, tmp_path / "wf", text, inputs={"target": str(target)})
    assert result.ok, result
    assert (tmp_path / "fixed.json").read_text().strip() == '"kept"'
    assert target.exists()


def test_replies_reading_trigger_data_are_confined(tmp_path: Path) -> None:
    """A reply template's read_lines of a name from the event may not leave the directory."""
    (tmp_path / "secret.txt").write_text("s3cr3t\n")
    base = tmp_path / "wf"
    base.mkdir()
    (base / "hours.txt").write_text("9 to 5\n")
    (base / "wf.yaml").write_text(
        "name: r\non:\n  twilio/message_received:\n"
        "    reply: \"${{ join(' ', read_lines(trigger.Body)) }}\"\n"
        "steps:\n  - {id: a, uses: workflow/write_json, with: {path: a.json, value: 1}}\n"
    )
    workflow = load_workflow(base / "wf.yaml")
    assert render_reply(workflow, {"Body": "hours.txt"}, {}, {}) == "9 to 5"
    with pytest.raises(ExpressionError, match="outside the workflow's directory"):
        render_reply(workflow, {"Body": "../secret.txt"}, {}, {})
