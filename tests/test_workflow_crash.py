"""A runner killed with SIGKILL mid-broadcast resumes without losing or duplicating a message."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from connector.emulator import Clock
from connector.testing import EmulatorFactory


# Runs the command in subprocesses and kills one mid-run.
pytestmark = pytest.mark.slow


RECIPIENTS = [f"+1500555{n:04d}" for n in range(1000, 1200)]

WORKFLOW = """
name: crash-broadcast
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ read_json('recipients.json') }}
    concurrency: 10
    with:
      from: "+15005550006"
      to: ${{ item }}
      body: "Notice ${{ index }}"
"""


async def run_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sigkill_mid_fan_out_then_resume_sends_each_message_once(
    twilio_emulator_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill -9 the runner once some of 200 messages are stored; the resume completes each exactly once."""
    emulator = await twilio_emulator_factory(clock=Clock())
    (tmp_path / "recipients.json").write_text(json.dumps(RECIPIENTS))
    (tmp_path / "broadcast.yaml").write_text(WORKFLOW)
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": emulator.account_sid,
        "TWILIO_AUTH_TOKEN": emulator.auth_token,
        "TWILIO_BASE_URL": emulator.base_url,
    }
    state = str(tmp_path / "journal.sqlite3")
    common = [
        str(tmp_path / "broadcast.yaml"),
        *("--run-id", "crash", "--state", state, "--rate-limit", "off", "--json"),
    ]

    # From the 40th message on, the emulator stores each send but holds its answer,
    # as if the network stalled: the runner then has ten sends in flight whose
    # messages exist but whose outcome it does not know when it is killed.
    release = asyncio.Event()
    store = emulator.state.store
    commit = store.commit

    async def held_commit() -> None:
        if len(store) >= 40:
            await release.wait()
        await commit()

    monkeypatch.setattr(store, "commit", held_commit)
    first = await run_cli("run", *common, env=env)
    for _ in range(6000):  # bounded: at most ~30 s of polling
        if len(store) >= 49 or first.returncode is not None:
            break
        await asyncio.sleep(0.005)
    first.kill()  # SIGKILL: no cleanup, no flush, no journal update
    await first.communicate()
    assert first.returncode == -9, "the runner finished before it could be killed"
    at_kill = len(emulator.messages())
    assert at_kill == 49
    monkeypatch.setattr(store, "commit", commit)
    release.set()

    listing = await run_cli("runs", "--state", state, "--json", env=env)
    out, _ = await listing.communicate()
    assert json.loads(out)[0]["state"] == "interrupted"

    second = await run_cli("run", *common, env=env)
    out, err = await second.communicate()
    assert second.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["status"] == "succeeded"
    (step,) = result["steps"]
    assert step["succeeded"] == len(RECIPIENTS)
    # The 39 answered sends are skipped; the 10 unanswered ones are found, not resent.
    assert (step["resumed"], step["reconciled"]) == (39, 10)

    # The emulator's store is the witness: one message per recipient, none twice.
    per_recipient = Counter(m["to"] for m in emulator.messages())
    assert sorted(per_recipient) == RECIPIENTS
    assert set(per_recipient.values()) == {1}
    bodies = {m["to"]: m["body"] for m in emulator.messages()}
    assert all(bodies[to] == f"Notice {i}" for i, to in enumerate(RECIPIENTS))
