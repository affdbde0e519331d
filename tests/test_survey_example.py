"""
examples/survey.yaml as shipped: asked, answered as the handsets answer (A, B, STOP,
silence), followed up per answer, in process on the emulator's clock and with
``twilio-connector run`` against its embedded emulator.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from handsets import Handsets

from connector import Connection
from connector.emulator import EmulatorServer
from connector.workflow import Journal, load_workflow, run_workflow


EXAMPLES = Path(__file__).parent.parent / "examples"
SENDER = "+15005550006"
ADA, GRACE, ALAN, EDSGER, BARBARA = (f"+1500555010{n}" for n in range(1, 6))


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    """The example and its recipients, copied as they ship."""
    shutil.copy(EXAMPLES / "recipients.csv", tmp_path / "recipients.csv")
    return Path(shutil.copy(EXAMPLES / "survey.yaml", tmp_path / "survey.yaml"))


def texts_to(emulator: EmulatorServer, person: str) -> list[str]:
    """What the workflow sent *person*, oldest first (not Twilio's own answers to keywords)."""
    sent = emulator.messages(to=person)
    return [m["body"] for m in reversed(sent) if m["direction"] == "outbound-api"]


async def test_the_survey_follows_up_per_answer(
    twilio_emulator: EmulatorServer, conn: Connection, survey: Path, tmp_path: Path
) -> None:
    """A, b after a question of their own, STOP, and silence get three different follow-ups and none."""
    handsets = Handsets(twilio_emulator)
    handsets.text(20, ADA, SENDER, "A")
    handsets.text(30, GRACE, SENDER, "which one is Thursday?")  # not an answer: waits on
    handsets.text(95, GRACE, SENDER, "b")
    handsets.text(400, ALAN, SENDER, "STOP")
    handsets.text(500, EDSGER, SENDER, "maybe later")
    with Journal(tmp_path / "runs.sqlite3") as journal:
        result = await run_workflow(load_workflow(survey), {}, conn, journal, clock=handsets)
        assert result.ok, [s.error for s in result.steps]
        assert result.outputs == {
            "tuesday": [ADA],
            "thursday": [GRACE],
            "no_answer": [EDSGER, BARBARA],
            "opted_out": [ALAN],
        }
        question = texts_to(twilio_emulator, ADA)[0]
        assert question.startswith("Hi Ada! Which day suits you")
        assert texts_to(twilio_emulator, ADA)[1:] == ["Tuesday it is. See you at 6pm!"]
        assert texts_to(twilio_emulator, GRACE)[1:] == ["Thursday it is. See you at 6pm!"]
        for person in (EDSGER, BARBARA):
            assert texts_to(twilio_emulator, person)[1:] == [
                "No answer yet? No problem: we will send you both dates."
            ]
        # Alan texted STOP: he gets nothing more, from us or from any later run.
        assert texts_to(twilio_emulator, ALAN)[1:] == []
        assert await journal.consent.opted_out(SENDER, ALAN) is not None
    # Timeouts follow the run's clock: an hour after the questions, the follow-ups.
    assert handsets.now() - handsets.start == pytest.approx(3600, abs=11)


def _post(base_url: str, person: str, body: str) -> None:
    form = urlencode({"To": SENDER, "From": person, "Body": body}).encode()
    with urllib.request.urlopen(f"{base_url}/emulator/inbound", form, timeout=10) as answer:
        assert answer.status == 201


@pytest.mark.slow
def test_the_survey_runs_as_written_with_twilio_connector_run(tmp_path: Path) -> None:
    """`twilio-connector run examples/survey.yaml` on its embedded emulator, answered by handsets."""
    command = [
        sys.executable,
        *("-m", "connector", "run", str(EXAMPLES / "survey.yaml")),
        *("--state", str(tmp_path / "runs.sqlite3"), "--json", "--log-json"),
        *("--input", "timeout=4", "--input", "poll_interval=1"),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        base_url = None
        for line in process.stderr:
            found = re.search(r"embedded Twilio emulator at (http://[0-9.:]+)", line)
            base_url = base_url or (found and found.group(1))
            if "answers" in line and "started" in line:
                break
        assert base_url is not None, "the run did not announce its emulator"
        _post(base_url, "+15005550101", "a")
        _post(base_url, "+15005550102", "B.")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    outputs = json.loads(out)["outputs"]
    assert outputs["tuesday"] == ["+15005550101"]
    assert outputs["thursday"] == ["+15005550102"]
    assert outputs["no_answer"] == ["+15005550103", "+15005550104", "+15005550105"]
