"""Workflows that fail loudly instead of silently: misspelt columns, refused credentials."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from connector import Connection, default_connector
from connector.emulator import EmulatorServer
from connector.workflow import Journal, RunError, check_workflow, load_workflow, run_workflow


BROADCAST = """
name: broadcast
inputs:
  recipients: {type: string, default: people.csv}
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ read_csv(inputs.recipients) }}
    concurrency: 2
    with:
      from: "+15005550006"
      to: ${{ item.phone }}
      body: "Hi ${{ item.NAME_FIELD }}"
"""


def broadcast(tmp_path: Path, field: str, rows: int = 3) -> Path:
    people = "\n".join(f"P{i},+1500555{2000 + i:04d}" for i in range(rows))
    (tmp_path / "people.csv").write_text(f"name,phone\n{people}\n")
    path = tmp_path / "broadcast.yaml"
    path.write_text(BROADCAST.replace("NAME_FIELD", field))
    return path


def connect(emulator: EmulatorServer, token: str | None = None) -> Connection:
    return Connection(
        emulator.account_sid,
        token or emulator.auth_token,
        base_url=emulator.base_url,
        rate_limit=False,
        env={},
    )


def test_validate_knows_the_csv_columns(tmp_path: Path) -> None:
    """validate reads the CSV header when the file is known and flags a misspelt column."""
    workflow = load_workflow(broadcast(tmp_path, "nmae"))
    problems = check_workflow(workflow, default_connector())
    assert len(problems) == 1
    assert "has no field 'nmae'; did you mean 'name'?" in problems[0].message
    assert "the people.csv fields are: name, phone" in problems[0].message
    assert check_workflow(load_workflow(broadcast(tmp_path, "name")), default_connector()) == []


async def test_a_misspelt_column_fails_each_item_and_sends_nothing(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A column the CSV does not have is an error at run time, not "Hi " sent to everyone."""
    path = broadcast(tmp_path, "name")
    # The file is only known at run time (an input without a default).
    path.write_text(path.read_text().replace("default: people.csv", "required: true"))
    (tmp_path / "other.csv").write_text("nom,phone\nP0,+15005552000\nP1,+15005552001\n")
    workflow = load_workflow(path)
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with connect(twilio_emulator) as conn:
            result = await run_workflow(workflow, {"recipients": "other.csv"}, conn, journal)
    assert result.status == "failed"
    errors = [item.error or "" for item in result.steps[0].items]
    assert len(errors) == 2
    assert all("other.csv has no column 'name'" in e for e in errors)
    assert all("columns: nom, phone" in e for e in errors)
    assert twilio_emulator.messages() == []


async def test_refused_credentials_stop_the_run_at_the_first_401(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """With a wrong auth token the run stops after the first refusals, with a hint, instead of failing every item."""
    workflow = load_workflow(broadcast(tmp_path, "name", rows=50))
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with connect(twilio_emulator, token="wrong-token") as conn:
            result = await run_workflow(workflow, {}, conn, journal)
    assert result.status == "failed"
    (step,) = result.steps
    assert len(step.items) <= 2  # the calls in flight when the first 401 came back
    assert step.items[0].error_code == 20003
    assert step.error is not None
    assert (
        "The credentials were refused: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in step.error
    )
    assert twilio_emulator.stats()["requests"] <= 2


@pytest.mark.parametrize("continue_on_error", [True, False])
async def test_refused_credentials_stop_even_steps_that_continue_on_error(
    twilio_emulator: EmulatorServer, tmp_path: Path, continue_on_error: bool
) -> None:
    """continue_on_error does not carry a run past refused credentials."""
    path = broadcast(tmp_path, "name")
    text = path.read_text().replace(
        "    concurrency: 2\n",
        f"    concurrency: 2\n    continue_on_error: {str(continue_on_error).lower()}\n",
    )
    text += "  - id: after\n    uses: twilio/get_message\n    with: {MessageId: SM00000000000000000000000000000000}\n"
    path.write_text(text)
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with connect(twilio_emulator, token="wrong-token") as conn:
            result = await run_workflow(load_workflow(path), {}, conn, journal)
    assert result.status == "failed"
    assert [s.id for s in result.steps] == ["send"]


SECRET_BODY = """
name: leak
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550101", body: "token=${{ env.VARIABLE }}"}
"""


def test_validate_refuses_undeclared_and_secret_variables(tmp_path: Path) -> None:
    """env.X must be declared, and no declared variable may hold a secret connection value."""
    path = tmp_path / "leak.yaml"
    path.write_text(SECRET_BODY.replace("VARIABLE", "TWILIO_AUTH_TOKEN"))
    (problem,) = check_workflow(load_workflow(path), default_connector())
    assert "env.TWILIO_AUTH_TOKEN is not declared" in problem.message
    path.write_text(
        "env: [TWILIO_AUTH_TOKEN]\n" + SECRET_BODY.replace("VARIABLE", "TWILIO_AUTH_TOKEN")
    )
    (problem,) = check_workflow(load_workflow(path), default_connector())
    assert (
        "TWILIO_AUTH_TOKEN holds a secret connection value (twilio auth_token)" in problem.message
    )
    assert (problem.line, problem.where) == (1, "env[0]")
    path.write_text(
        "env: [MY_TOKEN]\nconnection: {env: {auth_token: MY_TOKEN, account_sid: MY_SID}}\n"
        + SECRET_BODY.replace("VARIABLE", "MY_TOKEN")
    )
    (problem,) = check_workflow(load_workflow(path), default_connector())
    assert "MY_TOKEN holds a secret connection value" in problem.message


async def test_a_variable_holding_the_token_never_reaches_an_expression(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Whatever its name, a declared variable whose value is a secret stops the run before anything is sent or journaled."""
    path = tmp_path / "leak.yaml"
    path.write_text("env: [INNOCENT]\n" + SECRET_BODY.replace("VARIABLE", "INNOCENT"))
    env = {"INNOCENT": twilio_emulator.auth_token, "OTHER": "x"}
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with connect(twilio_emulator) as conn:
            with pytest.raises(RunError, match="env INNOCENT holds a secret connection value"):
                await run_workflow(load_workflow(path), {}, conn, journal, env=env)
        assert journal.runs() == []
    assert twilio_emulator.messages() == []


async def test_expressions_see_only_declared_variables(
    twilio_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A declared variable is read; the rest of the environment is invisible."""
    path = tmp_path / "ok.yaml"
    path.write_text(
        "env: [GREETING]\n"
        + SECRET_BODY.replace("VARIABLE", "GREETING")
        + "outputs:\n  env: ${{ env }}\n"
    )
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with connect(twilio_emulator) as conn:
            result = await run_workflow(
                load_workflow(path), {}, conn, journal, env={"GREETING": "hi", "HOME": "/root"}
            )
    assert result.ok and result.outputs["env"] == {"GREETING": "hi"}
    assert twilio_emulator.messages()[0]["body"] == "token=hi"


def test_temporal_runs_never_carry_a_secret_variable(tmp_path: Path) -> None:
    """The submitter refuses to put a secret variable in a Temporal run's input."""
    from connector.errors import WorkflowError
    from connector.temporal._client import workflow_env

    path = tmp_path / "leak.yaml"
    path.write_text("env: [INNOCENT]\n" + SECRET_BODY.replace("VARIABLE", "INNOCENT"))
    env = {"TWILIO_AUTH_TOKEN": "tok", "INNOCENT": "tok", "HOME": "/root"}
    with pytest.raises(WorkflowError, match="INNOCENT holds a secret connection value"):
        workflow_env(load_workflow(path), env)
    assert workflow_env(load_workflow(path), {"INNOCENT": "fine", "HOME": "/"}) == {
        "INNOCENT": "fine"
    }


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@pytest.mark.parametrize(
    "step",
    [
        "write_json, with: {path: out.json, value: 1}",
        "write_jsonl, with: {path: out.json, items: [1]}",
    ],
)
async def test_written_files_are_private(
    step: str, tmp_path: Path, twilio_emulator: EmulatorServer
) -> None:
    """What the file-writing built-ins write (messages, events) is readable by its owner only."""
    path = tmp_path / "w.yaml"
    path.write_text(f"name: w\nsteps:\n  - {{id: a, uses: workflow/{step}}}\n")
    previous = os.umask(0o022)
    try:
        with Journal(tmp_path / "runs.db") as journal:
            async with connect(twilio_emulator) as conn:
                result = await run_workflow(load_workflow(path), {}, conn, journal)
    finally:
        os.umask(previous)
    assert result.ok
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o600
