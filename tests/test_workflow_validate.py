"""Static checks of workflows, and `twilio-connector validate`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connector import default_connector
from connector.cli import main
from connector.workflow import Problem, check_workflow, load_workflow, read_workflow


DATA = Path(__file__).parent / "data" / "workflows"
EXAMPLES = Path(__file__).parent.parent / "examples"


def problems_of(text: str) -> list[Problem]:
    return check_workflow(load_workflow("w.yaml", text=text), default_connector())


@pytest.fixture(scope="module")
def broken() -> dict[tuple[int, int], str]:
    """The problems of tests/data/workflows/broken.yaml by (line, column)."""
    workflow = load_workflow(DATA / "broken.yaml")
    found = check_workflow(workflow, default_connector())
    return {(p.line or 0, p.column or 0): p.message for p in found}


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_pass_the_checks(example: Path) -> None:
    """Every shipped example passes the static checks."""
    assert check_workflow(load_workflow(example), default_connector()) == []


def test_literal_inputs_break_the_manifest_rules(broken: dict[tuple[int, int], str]) -> None:
    """A malformed number and a 1601-character body are reported where they are written."""
    assert "E.164" in broken[(11, 11)]
    assert "at most 1600 characters" in broken[(12, 13)]


def test_missing_required_input(broken: dict[tuple[int, int], str]) -> None:
    """A required input that is not given is reported at the step's with block."""
    assert broken[(16, 7)] == "send_text_message: body: is required"


def test_unknown_action_gets_a_suggestion(broken: dict[tuple[int, int], str]) -> None:
    """An unknown action is reported with the closest known one."""
    assert "did you mean 'twilio/send_text_message'?" in broken[(19, 11)]


def test_unknown_output_field_gets_a_suggestion(broken: dict[tuple[int, int], str]) -> None:
    """steps.send.outputs.sidd is not in the Message definition; sid is suggested."""
    message = broken[(25, 18)]
    assert message.startswith("steps.send.outputs has no field 'sidd'; did you mean 'sid'?")


def test_unknown_step_and_stray_item(broken: dict[tuple[int, int], str]) -> None:
    """Reading a step that does not exist, or item outside a fan-out, is reported."""
    assert broken[(29, 18)].startswith("no earlier step 'nosuch'")
    assert broken[(40, 18)] == "item is only defined in a step with for_each"


def test_static_type_mismatches(broken: dict[tuple[int, int], str]) -> None:
    """for_each over a number, and an object into a text input, are caught before running."""
    assert broken[(32, 15)] == "for_each needs a list, but this is an integer"
    assert broken[(36, 13)] == "body takes string, but this is an object (Message)"


def test_fan_out_outputs_are_lists(broken: dict[tuple[int, int], str]) -> None:
    """Reading a field of a for_each step's outputs suggests the per-item form."""
    assert "steps.loop.outputs[*].sid" in broken[(42, 10)]
    assert len(broken) == 10


def test_reading_a_later_step_is_an_error() -> None:
    """A step may only read steps that run before it."""
    text = """
name: x
steps:
  - id: first
    uses: twilio/get_message
    with: {MessageId: "${{ steps.second.outputs.sid }}"}
  - id: second
    uses: twilio/get_message
    with: {MessageId: "${{ steps.first.outputs.sid }}"}
"""
    (problem,) = problems_of(text)
    assert problem.message == "step 'second' has not run yet at this point"
    assert (problem.line, problem.column) == (6, 23)


def test_paged_and_builtin_outputs_are_typed() -> None:
    """A paginate step's outputs are a list of messages; built-in outputs are known too."""
    text = """
name: x
inputs:
  since: {type: string, default: "2026-01-01"}
steps:
  - id: page
    uses: twilio/list_messages_v2
    paginate: true
    with: {DateSentAfter: "${{ inputs.since }}"}
  - id: out
    uses: workflow/write_jsonl
    with: {path: out.jsonl, items: "${{ steps.page.outputs[*].bdy }}"}
outputs:
  n: ${{ steps.out.outputs.cuont }}
"""
    messages = [p.message for p in problems_of(text)]
    assert any("has no field 'bdy'; did you mean 'body'?" in m for m in messages)
    assert any("has no field 'cuont'; did you mean 'count'?" in m for m in messages)


def test_unknown_inputs_functions_and_wait_on_send() -> None:
    """Unknown inputs and functions are caught, and wait_until may not repeat a send."""
    text = """
name: x
inputs:
  sender: {type: string, default: "+15005550006"}
steps:
  - id: send
    uses: twilio/send_text_message
    with:
      from: ${{ inputs.sendr }}
      to: ${{ read_cvs('x.csv')[0].phone }}
      body: hi
    wait_until:
      condition: ${{ outputs.status == 'delivered' }}
"""
    messages = [p.message for p in problems_of(text)]
    assert any("no input 'sendr'; did you mean 'sender'?" in m for m in messages)
    assert any("unknown function read_cvs(); did you mean 'read_csv'?" in m for m in messages)
    assert any("wait_until repeats the action" in m for m in messages)


def test_rules_depending_on_expressions_are_left_to_run_time() -> None:
    """A required input given by an expression is not reported as missing."""
    text = """
name: x
inputs:
  to: {type: string, required: true}
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "${{ inputs.to }}", body: "${{ inputs.to }}"}
"""
    assert problems_of(text) == []


@pytest.mark.slow  # runs the command in a subprocess
def test_validate_command_reports_file_line_column() -> None:
    """`twilio-connector validate` prints FILE:LINE:COLUMN problems and exits 2."""
    done = subprocess.run(
        [sys.executable, "-m", "connector", "validate", str(DATA / "broken.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert f"{DATA / 'broken.yaml'}:25:18: steps[3].with.MessageId:" in done.stderr
    assert "10 problems found" in done.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "connector", "validate", str(EXAMPLES / "broadcast.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok (1 step)" in ok.stdout


def test_every_problem_is_reported_in_one_pass() -> None:
    """Misspelt keys get a did-you-mean, and the static checks still look at the rest."""
    text = """
name: x
steps:
  - id: send
    uses: twilio/send_text_message
    for_eech: ${{ inputs.people }}
    concurency: 5
    wiht: {from: "+15005550006", to: "${{ item }}", body: hi}
  - id: get
    uses: twilio/get_message
    with: {MessageId: "${{ steps.send.outputs[0].sidd }}"}
"""
    workflow, problems = read_workflow("w.yaml", text=text)
    assert workflow is not None
    problems += check_workflow(workflow, default_connector())
    found = {(p.line, p.column, p.where, p.message) for p in problems}
    assert found >= {
        (6, 5, "steps[0].for_eech", "unknown key; did you mean 'for_each'?"),
        (7, 5, "steps[0].concurency", "unknown key; did you mean 'concurrency'?"),
        (8, 5, "steps[0].wiht", "unknown key; did you mean 'with'?"),
    }
    messages = [p.message for p in problems]
    assert any("the workflow has no input 'people'" in m for m in messages)
    assert any("has no field 'sidd'; did you mean 'sid'?" in m for m in messages)
    # Read as for_each, the misspelt key gives the step its item: no problem about item.
    assert not any("item is only defined" in m for m in messages)


def test_a_misspelt_required_key_is_one_problem() -> None:
    """`usse:` is reported as a misspelt `uses`, not also as a missing one."""
    text = "name: x\nsteps:\n  - id: a\n    usse: twilio/get_message\n    with: {MessageId: x}\n"
    workflow, problems = read_workflow("w.yaml", text=text)
    assert [(p.where, p.message) for p in problems] == [
        ("steps[0].usse", "unknown key; did you mean 'uses'?")
    ]
    assert workflow is not None
    (problem,) = check_workflow(workflow, default_connector())
    assert problem.where == "steps[0].with.MessageId"


def test_a_step_set_aside_can_still_be_read_by_later_steps() -> None:
    """A step without an action is reported once; later steps reading it are not blamed."""
    text = """
steps:
  - id: first
  - id: second
    uses: twilio/get_message
    with: {MessageId: "${{ steps.first.outputs.sid }}", Bogus: 1}
"""
    workflow, problems = read_workflow("w.yaml", text=text)
    assert [p.message for p in problems] == [
        "'name' is a required property",
        "'uses' is a required property",
    ]
    assert workflow is not None
    (problem,) = check_workflow(workflow, default_connector())
    assert problem.where == "steps[1].with.Bogus"


def test_a_document_that_is_not_a_workflow_is_one_problem() -> None:
    """A list at the root cannot be checked further; that is the one problem."""
    workflow, problems = read_workflow("w.yaml", text="- a\n- b\n")
    assert workflow is None
    assert [p.message for p in problems] == ["['a', 'b'] is not of type 'object'"]


def test_validate_json_prints_every_problem_of_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`validate --json` prints {ok, problems, files} on stdout and exits 2 when any is found."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - id: a\n    usse: twilio/get_message\n")
    good = EXAMPLES / "broadcast.yaml"
    assert main(["validate", str(bad), str(good), "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["problems"]) == (False, 2)
    first, second = result["files"]
    assert first["ok"] is False and first["steps"] is None
    assert first["problems"] == [
        {
            "field": "steps[0]",
            "message": "get_message: MessageId: is required",
            "file": str(bad),
            "line": 3,
            "column": 5,
        },
        {
            "field": "steps[0].usse",
            "message": "unknown key; did you mean 'uses'?",
            "file": str(bad),
            "line": 4,
            "column": 5,
        },
    ]
    assert second == {"file": str(good), "ok": True, "steps": 1, "problems": []}
