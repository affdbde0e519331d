"""
A runner killed with SIGKILL while people are answering resumes without waiting again
for an answer it has, without missing one sent while it was down, and without starting
anyone's timeout again.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from connector.emulator import Clock
from connector.testing import EmulatorFactory
from connector.workflow import Journal


# Runs the command in subprocesses and kills one mid-wait.
pytestmark = pytest.mark.slow

SENDER = "+15005550006"
PEOPLE = [f"+1555123{n:04d}" for n in range(31)]
TIMEOUT = 12

WORKFLOW = f"""
name: crash-survey
steps:
  - id: ask
    uses: twilio/send_text_message
    for_each: ${{{{ read_json('people.json') }}}}
    with: {{from: "{SENDER}", to: "${{{{ item }}}}", body: "A or B?"}}
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{{{ steps.ask.outputs[?sid] }}}}
    concurrency: 5
    with:
      from: "{SENDER}"
      to: ${{{{ item.to }}}}
      after: ${{{{ item.date_created }}}}
      keywords: [A, B]
      timeout: {TIMEOUT}
      poll_interval: 1
outputs:
  statuses: ${{{{ steps.wait.outputs[*].status }}}}
  answers: ${{{{ steps.wait.outputs[*].keyword }}}}
"""


async def run_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "connector", *args),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def answered(state: Path) -> int:
    """How many waits the killed run's journal shows answered."""
    with Journal(state) as journal:
        return sum(r.state == "succeeded" for r in journal.iter_items("crash", "wait"))


async def test_sigkill_mid_wait_then_resume_keeps_and_finds_every_answer(
    twilio_emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Kill -9 after 10 of 31 answers; 20 come while it is down; the resume ends on time."""
    emulator = await twilio_emulator_factory(clock=Clock())
    (tmp_path / "people.json").write_text(json.dumps(PEOPLE))
    (tmp_path / "survey.yaml").write_text(WORKFLOW)
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": emulator.account_sid,
        "TWILIO_AUTH_TOKEN": emulator.auth_token,
        "TWILIO_BASE_URL": emulator.base_url,
    }
    state = tmp_path / "journal.sqlite3"
    common = [
        str(tmp_path / "survey.yaml"),
        *("--run-id", "crash", "--state", str(state), "--rate-limit", "off", "--json"),
    ]
    first = await run_cli("run", *common, env=env)
    for _ in range(6000):  # bounded: at most ~30 s of polling for the questions
        if len(emulator.messages()) >= len(PEOPLE) or first.returncode is not None:
            break
        await asyncio.sleep(0.005)
    for person in PEOPLE[:10]:
        await emulator.inbound(to=SENDER, from_=person, body="A")
    for _ in range(3000):  # until the run has journaled the ten answers
        if answered(state) == 10 or first.returncode is not None:
            break
        await asyncio.sleep(0.01)
    first.kill()  # SIGKILL: no cleanup, no flush, no journal update
    await first.communicate()
    assert first.returncode == -9, "the runner finished before it could be killed"
    with Journal(state) as journal:
        began = journal.item("crash", "wait", 30).started
    assert began is not None

    # While the runner is down, twenty people answer (one of them twice: the first counts).
    for person in PEOPLE[10:30]:
        await emulator.inbound(to=SENDER, from_=person, body="b")
    await emulator.inbound(to=SENDER, from_=PEOPLE[10], body="A")
    lists_before = emulator.stats()["requests"]

    second = await run_cli("run", *common, env=env)
    out, err = await second.communicate()
    ended = time.time()
    assert second.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["outputs"]["statuses"] == ["replied"] * 30 + ["timed_out"]
    assert result["outputs"]["answers"] == ["A"] * 10 + ["B"] * 20
    wait = result["steps"][1]
    # The ten answered waits were not waited for again; the others were found by a look.
    assert (wait["resumed"], wait["succeeded"]) == (10, 31)
    # The last person's timeout ran from when the killed run began the wait, not again.
    assert began + TIMEOUT <= ended < began + TIMEOUT + 4
    # One list per look, not one per person (about one a second until the timeout).
    assert emulator.stats()["requests"] - lists_before <= TIMEOUT + 6
