"""The command line called in-process (``main(argv)``): options, messages and exit codes."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.cli import EXIT_INVALID, main


EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other socket is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_emulator_on_a_busy_port_says_so_in_one_line(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port in use is one line naming it and how to pick a free one, and exit 2."""
    assert main(["emulator", "--port", str(busy_port)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert err.strip() == (
        f"twilio-connector emulator: cannot listen on 127.0.0.1:{busy_port}: port "
        f"{busy_port} is already in use; choose another with --port (--port 0 picks a free one)"
    )


def test_listen_on_a_busy_port_says_so_in_one_line(
    busy_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The listener reports a port in use in one line too, without a traceback."""
    argv = ["listen", str(EXAMPLES / "auto-reply.yaml"), "--port", str(busy_port)]
    assert main([*argv, "--state", str(tmp_path / "j.sqlite3")]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{busy_port}: port {busy_port} is already in use" in err
    assert "Traceback" not in err


def test_worker_without_the_temporal_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Running a worker without temporalio says which extra to install, and exits 2."""
    monkeypatch.setitem(sys.modules, "temporalio", None)
    assert main(["worker"]) == EXIT_INVALID
    assert "pip install 'twilio-workflow-connector[temporal]'" in capsys.readouterr().err
