"""The emulator as a process: CLI start-up, persistence across kill -9, inbound CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.cli import main


# Starts emulator processes and kills them.
pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parents[1]
SID = "AC" + "f" * 32
TOKEN = "t0ken"


def start(db: Path) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m connector.emulator` on a free port and read its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector.emulator",
            "--port",
            "0",
            "--db",
            str(db),
            "--account-sid",
            SID,
            "--auth-token",
            TOKEN,
            "--delivery-delay",
            "0",
            "--throttle",
            "off",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, line
    return proc, line.rsplit(" ", 1)[1].strip()


def call(method: str, url: str, form: dict[str, str] | None = None) -> tuple[int, Any]:
    """One authenticated request with the stdlib client."""
    import base64
    from urllib.parse import urlencode

    request = urllib.request.Request(
        url, data=urlencode(form).encode() if form else None, method=method
    )
    request.add_header(
        "Authorization", "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Started emulator processes, killed after the test."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_messages_survive_kill_9(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    """Messages answered 201 are still there after the process is SIGKILLed and restarted."""
    db = tmp_path / "emulator.db"
    proc, base = start(db)
    processes.append(proc)
    api = f"{base}/2010-04-01/Accounts/{SID}/Messages"
    sids = []
    for i in range(20):
        status, message = call(
            "POST", api + ".json", {"To": "+15551230001", "From": "+15005550006", "Body": f"m{i}"}
        )
        assert status == 201
        sids.append(message["sid"])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    proc, base = start(db)
    processes.append(proc)
    api = f"{base}/2010-04-01/Accounts/{SID}/Messages"
    for sid in sids:
        status, message = call("GET", f"{api}/{sid}.json")
        assert status == 200 and message["sid"] == sid
    status, page = call("GET", api + ".json?PageSize=100")
    assert [m["sid"] for m in page["messages"]] == sids[::-1]
    status, health = call("GET", base + "/healthz")
    assert health == {"status": "ok"}

    # The inbound CLI posts to the running emulator.
    assert (
        main(
            [
                "inbound",
                "--emulator-url",
                base,
                "--to",
                "+15005550006",
                "--from",
                "+15551230009",
                "--body",
                "hey",
            ]
        )
        == 0
    )
    status, page = call("GET", api + ".json?From=%2B15551230009")
    assert [m["direction"] for m in page["messages"]] == ["inbound"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
