"""
A running `twilio-connector emulator` is recorded per user, and commands without
credentials use it instead of a throwaway emulator of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from connector._connect import choose_target, open_connection
from connector._local_emulator import (
    RunningEmulator,
    record_directory,
    recorded_emulator,
    running_emulator,
)
from connector.emulator import EmulatorServer


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's runtime directory: where records are written and looked for."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime / "twilio-connector"


@pytest.fixture
def recorded(twilio_emulator: EmulatorServer, records: Path) -> Iterator[Path]:
    """The test's emulator, recorded as a running `twilio-connector emulator` would be."""
    emu = twilio_emulator
    with recorded_emulator(emu.base_url, emu.account_sid, emu.auth_token) as path:
        yield path


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_OUT)
    return int(done.stdout)


_OUT: dict[str, object] = {"capture_output": True, "text": True, "check": True}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_record_directory_follows_xdg(tmp_path: Path) -> None:
    """$XDG_RUNTIME_DIR when it exists, else $XDG_STATE_HOME, each with twilio-connector."""
    runtime, state = tmp_path / "run", tmp_path / "state"
    runtime.mkdir()
    env = {"XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(state)}
    assert record_directory(env) == runtime / "twilio-connector"
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "missing")
    assert record_directory(env) == state / "twilio-connector"
    env["XDG_RUNTIME_DIR"] = "relative/dir"
    assert record_directory(env) == state / "twilio-connector"


def test_a_record_is_private_and_gone_after_the_block(records: Path) -> None:
    """The directory is 0700, the record 0600 with URL, SID, token and pid; it is removed on exit."""
    with recorded_emulator("http://127.0.0.1:1", "AC" + "1" * 32, "tok", pid=4242) as path:
        assert path == records / "emulator-4242.json"
        assert stat.S_IMODE(records.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = json.loads(path.read_text())
        assert data["base_url"] == "http://127.0.0.1:1" and data["pid"] == 4242
        assert data["account_sid"] == "AC" + "1" * 32 and data["auth_token"] == "tok"
        assert [p.name for p in records.iterdir()] == ["emulator-4242.json"]
    assert not path.exists()


async def test_a_recorded_emulator_that_answers_is_found(
    twilio_emulator: EmulatorServer, recorded: Path
) -> None:
    """The record names the emulator; its token is in the record but never in a repr."""
    found = await asyncio.to_thread(running_emulator)
    assert found is not None
    assert found.base_url == twilio_emulator.base_url and found.pid == os.getpid()
    assert found.auth_token == twilio_emulator.auth_token
    assert twilio_emulator.auth_token not in repr(found)


def test_a_record_of_a_dead_process_is_deleted(records: Path) -> None:
    """A process that is gone leaves a stale record: ignored and cleaned."""
    with recorded_emulator("http://127.0.0.1:9", "AC" + "2" * 32, "t", pid=_dead_pid()) as path:
        assert running_emulator() is None
        assert not path.exists()


def test_a_record_whose_port_refuses_is_deleted(records: Path) -> None:
    """A live pid whose port refuses connections (a server that stopped listening) is stale."""
    url = f"http://127.0.0.1:{_free_port()}"
    with recorded_emulator(url, "AC" + "3" * 32, "t") as path:
        assert running_emulator() is None
        assert not path.exists()


def test_malformed_and_foreign_records_are_not_used(records: Path) -> None:
    """Broken JSON is deleted; a record others could have written is never trusted."""
    records.mkdir(mode=0o700, parents=True)
    broken = records / "emulator-1.json"
    broken.write_text("{not json")
    assert running_emulator() is None
    assert not broken.exists()
    with recorded_emulator("http://127.0.0.1:9", "AC" + "4" * 32, "t") as path:
        path.chmod(0o622)  # group- and world-writable
        assert running_emulator() is None
        assert path.exists(), "a record we cannot trust is not ours to delete either"


async def test_the_newest_running_emulator_wins(
    twilio_emulator_factory: object, records: Path
) -> None:
    """Two recorded emulators: commands use the one started last."""
    factory = twilio_emulator_factory
    first: EmulatorServer = await factory()  # type: ignore[operator]
    second: EmulatorServer = await factory()  # type: ignore[operator]
    with (
        recorded_emulator(first.base_url, first.account_sid, first.auth_token, pid=os.getpid()),
        recorded_emulator(second.base_url, second.account_sid, second.auth_token, pid=os.getppid()),
    ):
        found = await asyncio.to_thread(running_emulator)
    assert found is not None and found.base_url == second.base_url


async def test_the_rule_prefers_the_running_emulator(
    twilio_emulator: EmulatorServer, recorded: Path
) -> None:
    """No credentials, or --emulator: the running one; credentials: the API; running=False: embedded."""
    target = await asyncio.to_thread(choose_target, {})
    assert target.emulator and isinstance(target.running, RunningEmulator)
    forced = await asyncio.to_thread(
        choose_target,
        {"TWILIO_ACCOUNT_SID": "AC" + "5" * 32, "TWILIO_AUTH_TOKEN": "x"},
        emulator=True,
    )
    assert forced.running is not None
    real = await asyncio.to_thread(
        choose_target, {"TWILIO_ACCOUNT_SID": "AC" + "5" * 32, "TWILIO_AUTH_TOKEN": "x"}
    )
    assert not real.emulator and real.running is None
    embedded = await asyncio.to_thread(choose_target, {}, running=False)
    assert embedded.emulator and embedded.running is None


async def test_a_connection_without_credentials_sends_to_the_running_emulator(
    twilio_emulator: EmulatorServer, recorded: Path
) -> None:
    """What one connection sends, the next one lists: both went to the recorded emulator."""
    said: list[str] = []
    async with open_connection(env={}, announce=said.append) as conn:
        sent = await conn.call(
            "send_text_message", {"from": "+15005550006", "to": "+15551230001", "body": "hi"}
        )
    async with open_connection(env={}) as conn:
        page = await conn.call("list_messages_v2", {"To": "+15551230001"})
    assert [m.sid for m in page.value] == [sent.sid]
    assert said == [
        f"using the running Twilio emulator at {twilio_emulator.base_url} (pid {os.getpid()}, "
        "recorded by `twilio-connector emulator`; no Twilio credentials (TWILIO_*) are set); "
        "nothing leaves this machine"
    ]
    assert twilio_emulator.auth_token not in said[0]


async def test_without_a_running_emulator_a_throwaway_one_is_announced(records: Path) -> None:
    """Nothing recorded: an embedded emulator, said to be throwaway."""
    said: list[str] = []
    async with open_connection(env={}, announce=said.append) as conn:
        assert conn.base_url.startswith("http://127.0.0.1:")
    assert "throwaway embedded Twilio emulator" in said[0]
    assert "no `twilio-connector emulator` is running" in said[0]


async def test_emulator_options_ask_for_an_embedded_emulator(
    twilio_emulator: EmulatorServer, recorded: Path
) -> None:
    """Settings for an embedded emulator get one, even with another running."""
    async with open_connection(env={}, emulator_options={"delivery_delay": 0}) as conn:
        assert conn.base_url != twilio_emulator.base_url


# The command line, as users run it.


async def _output_line(process: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> str:
    assert process.stdout is not None
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert raw, "the process exited early:\n" + "".join(seen)
        line = raw.decode()
        seen.append(line)
        if re.search(pattern, line):
            return line


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def emulator_command(
    records: Path,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, list[str]]]:
    """`twilio-connector emulator --port 0` running: the process, its base URL, its output so far."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        "emulator",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    seen: list[str] = []
    try:
        line = await _output_line(process, r"listening on (\S+)", seen)
        await _output_line(process, r"recorded in ", seen)
        yield process, line.split()[-1], seen
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)


@pytest.mark.slow
async def test_commands_share_the_emulator_command_and_its_record_goes_with_it(
    emulator_command: tuple[asyncio.subprocess.Process, str, list[str]], records: Path
) -> None:
    """`call` then `call list_messages_v2` see the same messages; SIGINT removes the record."""
    process, base_url, seen = emulator_command
    (record,) = await asyncio.to_thread(lambda: list(records.glob("emulator-*.json")))
    written = json.loads(await asyncio.to_thread(record.read_text))
    assert written["base_url"] == base_url
    code, out, err = await _cli(
        "call",
        "send_text_message",
        "-i",
        "from=+15005550006",
        "-i",
        "to=+15551234567",
        "-i",
        "body=Hello",
    )
    assert code == 0, err
    assert f"using the running Twilio emulator at {base_url}" in err
    assert written["auth_token"] not in err
    code, out, err = await _cli("call", "list_messages_v2", "-i", "To=+15551234567")
    assert code == 0, err
    assert [m["body"] for m in json.loads(out)["value"]] == ["Hello"]
    # `inbound` posts to the recorded emulator without being told where it is.
    code, out, err = await _cli("inbound", "--to", "+15005550006", "--from", "+15551239999")
    assert code == 0, err
    assert json.loads(out)["direction"] == "inbound"
    process.send_signal(signal.SIGINT)  # Ctrl-C
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0, "".join(seen)
    assert not await asyncio.to_thread(record.exists)


async def test_a_worker_shares_the_running_emulator_but_never_starts_one(
    twilio_emulator: EmulatorServer, records: Path
) -> None:
    """Workers must share one Twilio: the running emulator will do, a throwaway one will not."""
    from connector.errors import ConfigurationError
    from connector.temporal._worker import worker_connection

    with pytest.raises(ConfigurationError, match="no `twilio-connector emulator` is running"):
        async with worker_connection(env={}):
            pass
    emu = twilio_emulator
    with recorded_emulator(emu.base_url, emu.account_sid, emu.auth_token):
        async with worker_connection(env={}) as (conn, claims):
            assert conn.base_url == emu.base_url and claims is None


def test_an_emulator_can_stay_out_of_the_record() -> None:
    """`emulator --no-record` (benchmarks, private servers) is not the one commands pick."""
    from connector.cli import parser as command_line

    parser = command_line()
    assert parser.parse_args(["emulator"]).record is True
    assert parser.parse_args(["emulator", "--no-record"]).record is False
