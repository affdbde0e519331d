"""`twilio-connector listen` as a process: the embedded emulator, a triggered run, and a clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from connector._local_emulator import recorded_emulator
from connector.emulator import EmulatorServer


# Runs `twilio-connector listen` in a subprocess.
pytestmark = pytest.mark.slow


EXAMPLES = Path(__file__).parent.parent / "examples"


async def _line_matching(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> str:
    """Read stderr lines until one matches *pattern* (each read bounded by a timeout)."""
    while True:
        raw = await asyncio.wait_for(stream.readline(), timeout=20)
        assert raw, "listen exited early:\n" + "".join(seen)
        line = raw.decode()
        seen.append(line)
        if re.search(pattern, line):
            return line


async def test_listen_with_the_embedded_emulator_runs_a_triggered_workflow(tmp_path: Path) -> None:
    """Without credentials, listen wires an emulator to itself, runs the example on an injected message, and stops on SIGTERM."""
    state = tmp_path / "runs.sqlite3"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        "listen",
        str(EXAMPLES / "auto-reply.yaml"),
        "--port",
        "0",
        "--state",
        str(state),
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")},
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        hint = await _line_matching(process.stderr, r"inbound --emulator-url", seen)
        emulator_url = re.search(r"--emulator-url (\S+)", hint)
        assert emulator_url is not None
        await _line_matching(process.stderr, r"listening on http://127\.0\.0\.1:\d+", seen)
        form = {"To": "+15005550006", "From": "+15551230000", "Body": "Your hours?"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(emulator_url.group(1) + "/emulator/inbound", data=form) as response,
        ):
            assert response.status == 201
        await _line_matching(process.stderr, r"run \S+ of auto-reply succeeded", seen)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=20)
    assert code == 0, "".join(seen)
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT name, state FROM runs").fetchall()
        events = db.execute("SELECT kind FROM events ORDER BY received").fetchall()
    assert rows == [("auto-reply", "succeeded")]
    assert events[0] == ("twilio/message_received",)


async def test_listen_uses_the_running_emulator_and_gives_its_numbers_back(
    tmp_path: Path, twilio_emulator: EmulatorServer
) -> None:
    """With `twilio-connector emulator` running, listen has it post the trigger's number here, then undoes it."""
    emu = twilio_emulator
    with recorded_emulator(emu.base_url, emu.account_sid, emu.auth_token):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "connector",
            "listen",
            str(EXAMPLES / "auto-reply.yaml"),
            "--port",
            "0",
            "--state",
            str(tmp_path / "runs.sqlite3"),
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        seen: list[str] = []
        try:
            await _line_matching(process.stderr, r"using the running Twilio emulator", seen)
            hint = await _line_matching(process.stderr, r"inbound --emulator-url", seen)
            assert f"--emulator-url {emu.base_url} --to +15005550006" in hint
            assert "body_matches" in hint, "'hello' would not start auto-reply: the hint says so"
            await _line_matching(process.stderr, r"listening on http://127\.0\.0\.1:\d+", seen)
            webhook = emu.state.webhook_for("+15005550006")
            assert webhook is not None and webhook.endswith("/messages")
            emu.state.receive(to="+15005550006", from_="+15551230000", body="Your hours?")
            await _line_matching(process.stderr, r"run \S+ of auto-reply succeeded", seen)
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=20)
    assert code == 0, "".join(seen)
    assert emu.auth_token not in "".join(seen)
    assert emu.state.webhook_for("+15005550006") is None
    replies = emu.messages(to="+15551230000")
    assert sorted(m["body"] for m in replies) == [
        "Thanks for asking! You wrote: Your hours?",  # the run's follow-up
        "We are open 9:00-17:00. More details follow in a moment.",  # the TwiML reply
    ]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_trigger_json_applies_the_triggers_filters(tmp_path: Path) -> None:
    """An event the trigger would not start a run for is refused (exit 2); a fitting one runs."""
    state = str(tmp_path / "runs.sqlite3")
    workflow = str(EXAMPLES / "auto-reply.yaml")
    event = {"From": "+15551230000", "To": "+15005550006", "Body": "hi"}
    done = _run(workflow, "--state", state, "--trigger-json", json.dumps(event))
    assert done.returncode == 2
    assert "would not start" in done.stderr and "body_matches" in done.stderr
    event["Body"] = "What are your hours?"
    done = _run(workflow, "--state", state, "--trigger-json", json.dumps(event))
    # Without a listener there is no public URL, so the follow-up asks for no callback.
    assert done.returncode == 0, done.stderr
