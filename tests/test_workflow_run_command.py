"""`twilio-connector run` and `runs` as a user runs them: exit codes, output, the emulator notice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


# Every test runs the command in a subprocess.
pytestmark = pytest.mark.slow


EXAMPLES = Path(__file__).parent.parent / "examples"
DATA = Path(__file__).parent / "data" / "workflows"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A journal path for the command's --state."""
    return str(tmp_path / "journal.sqlite3")


def test_broadcast_example_runs_on_the_embedded_emulator(state: str) -> None:
    """Without credentials the example runs against the emulator and says so on stderr."""
    done = cli("run", str(EXAMPLES / "broadcast.yaml"), "--state", state, "--json")
    assert done.returncode == 0, done.stderr
    assert "nothing leaves this machine" in done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert result["outputs"]["sent"] == 5
    assert result["steps"][0]["message_status"] == {"queued": 5}
    listed = cli("runs", "--state", state, "--json")
    assert listed.returncode == 0
    (run,) = json.loads(listed.stdout)
    assert (run["run_id"], run["state"], run["name"]) == (
        result["run_id"],
        "succeeded",
        "broadcast",
    )


def test_failed_step_exits_1_with_twilio_codes(state: str, tmp_path: Path) -> None:
    """A recipient Twilio refuses makes the run exit 1, and the summary shows the code."""
    recipients = tmp_path / "list.csv"
    recipients.write_text("name,phone\nOk,+15005550101\nBad,+15005550001\n")
    done = cli(
        "run",
        str(EXAMPLES / "broadcast.yaml"),
        *("--state", state, "--input", f"recipients={recipients}"),
    )
    assert done.returncode == 1, done.stderr
    assert "21211 x1" in done.stdout
    assert "send +15005550001: HTTP 400, Twilio error 21211" in done.stdout
    assert "step send: failed (2 done, 1 failed" in done.stderr
    assert "send +15005550001 failed: HTTP 400" in done.stderr


def test_send_then_wait_and_export_examples(state: str, tmp_path: Path) -> None:
    """The wait example ends delivered; the export example writes a JSON Lines file."""
    waited = cli("run", str(EXAMPLES / "send-and-wait.yaml"), "--state", state, "--json")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["outputs"]["status"] == "delivered"
    out = tmp_path / "messages.jsonl"
    exported = cli(
        "run",
        str(EXAMPLES / "export-messages.yaml"),
        *("--state", state, "--input", f"out={out}", "--json"),
    )
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["outputs"] == {"exported": 0, "file": str(out)}
    assert out.read_text() == ""


def test_invalid_workflow_and_inputs_exit_2(state: str) -> None:
    """An invalid workflow, an unknown input or a bad option exits 2 before anything runs."""
    broken = cli("run", str(DATA / "broken.yaml"), "--state", state)
    assert broken.returncode == 2
    assert "broken.yaml:25:18" in broken.stderr
    assert not Path(state).exists()
    unknown = cli("run", str(EXAMPLES / "broadcast.yaml"), "--state", state, "-i", "nope=1")
    assert unknown.returncode == 2
    assert "inputs.nope: unknown input" in unknown.stderr
    bad_limit = cli("run", str(EXAMPLES / "broadcast.yaml"), "--rate-limit", "fast")
    assert bad_limit.returncode == 2


def test_connection_env_names_must_be_set(state: str, tmp_path: Path) -> None:
    """A workflow that names its credentials' variables refuses to run when they are unset."""
    text = (
        (EXAMPLES / "broadcast.yaml")
        .read_text()
        .replace(
            "steps:",
            "connection:\n  env: {account_sid: NO_SUCH_SID, auth_token: NO_SUCH_TOKEN}\nsteps:",
        )
    )
    (tmp_path / "wf.yaml").write_text(text)
    (tmp_path / "recipients.csv").write_text("name,phone\nA,+15005550101\n")
    done = cli("run", str(tmp_path / "wf.yaml"), "--state", state)
    assert done.returncode == 2
    assert "NO_SUCH_SID" in done.stderr
    assert "emulator" not in done.stderr
