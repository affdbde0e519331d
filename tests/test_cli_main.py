"""The command line called in-process (``main(argv)``): options, messages and exit codes."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata, resources
from pathlib import Path

import pytest

from connector.cli import EXIT_INTERRUPTED, EXIT_INVALID, _workflow, main
from connector.cli._common import (
    ERROR_KINDS,
    EVENT_LOOP_VARIABLE,
    GC_THRESHOLD,
    error_object,
    run_async,
)
from connector.cli._logs import configured, level_for
from connector.cli._schema import SCHEMA_URL
from connector.errors import (
    BadRequestError,
    MessageMayHaveBeenSentError,
    Problem,
    ServerError,
    WorkflowError,
)


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


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed distribution's version and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    expected = metadata.version("twilio-workflow-connector")
    assert capsys.readouterr().out == f"twilio-connector {expected}\n"


def test_a_usage_error_with_json_is_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    """A command line that does not parse is argparse's two lines, or with --json one JSON object."""
    assert main(["call"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert err.startswith("usage: twilio-connector call")
    assert "error: the following arguments are required: action" in err
    assert main(["call", "--json"]) == EXIT_INVALID
    error = json.loads(capsys.readouterr().err)["error"]
    assert (error["command"], error["kind"], error["exit_code"]) == ("call", "usage", 2)
    assert error["message"] == "the following arguments are required: action"


def test_call_errors_with_json_name_the_fields_at_fault(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """call --json reports invalid inputs as one JSON object with every field at fault."""
    argv = ["call", "send_text_message", "-i", "to=nope", "-i", "from=+15005550006", "--json"]
    assert main(argv) == EXIT_INVALID
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    error = json.loads(line)["error"]
    assert (error["kind"], error["type"]) == ("invalid_input", "InvalidInputError")
    assert {f["field"] for f in error["fields"]} == {"to", "body"}
    assert error["twilio"] is None
    assert main(["call", "send_text_mesage", "--json"]) == EXIT_INVALID
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["kind"] == "unknown_action"
    assert "did you mean 'send_text_message'?" in error["message"]


def test_error_objects_carry_twilio_status_and_code() -> None:
    """A Twilio refusal, and a send of unknown outcome caused by one, carry Twilio's status and code."""
    refused = BadRequestError("bad To", status=400, code=21211, more_info="https://x/21211")
    error = error_object("call", refused)["error"]
    assert (error["kind"], error["exit_code"]) == ("twilio", 1)
    assert error["twilio"] == {
        "status": 400,
        "code": 21211,
        "message": "bad To",
        "more_info": "https://x/21211",
    }
    unknown = MessageMayHaveBeenSentError(
        "send_text_message", {}, ServerError("down", status=503, code=None)
    )
    error = error_object("run", unknown)["error"]
    assert (error["kind"], error["twilio"]["status"]) == ("outcome_unknown", 503)


def test_workflow_problems_become_located_fields() -> None:
    """A WorkflowError's problems are fields with file, line and column."""
    problem = Problem("w.yaml", 3, 5, "steps[0].uses", "unknown action")
    error = error_object("run", WorkflowError([problem]))["error"]
    assert error["message"] == "1 problem found"
    assert error["fields"] == [
        {
            "field": "steps[0].uses",
            "message": "unknown action",
            "file": "w.yaml",
            "line": 3,
            "column": 5,
        }
    ]
    assert error["exit_code"] == EXIT_INVALID


def test_every_error_kind_is_documented() -> None:
    """Each kind an error can have is listed in docs/cli.md."""
    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    for kind in {*ERROR_KINDS.values(), "error"}:
        assert f"`{kind}`" in text, kind


def test_verbosity_and_log_level() -> None:
    """-v lowers the default level one step each; --log-level names it outright."""
    assert level_for(None, 0, "warning") == logging.WARNING
    assert level_for(None, 1, "warning") == logging.INFO
    assert level_for(None, 5, "warning") == logging.DEBUG
    assert level_for(None, 0, "info") == logging.INFO
    assert level_for("error", 2, "info") == logging.ERROR


def test_log_json_writes_one_object_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    """With --log-json, every record of a connector logger is one JSON line on stderr."""
    with configured("listen", logging.INFO, as_json=True):
        logging.getLogger("connector.receiving").info("run %s started", "r1")
        logging.getLogger("connector").debug("not shown")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["message"] == "run r1 started"
    assert (record["level"], record["logger"], record["command"]) == (
        "info",
        "connector.receiving",
        "listen",
    )
    assert record["time"].endswith("Z")


def test_logging_options_go_before_or_after_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """-v and --log-level work on either side of the subcommand, and main leaves logging as it was."""
    logger = logging.getLogger("connector")
    before = (logger.level, logger.propagate, list(logger.handlers))
    assert main(["-v", "actions", "--log-level", "debug"]) == 0
    assert main(["actions", "--log-json"]) == 0
    assert "send_text_message" in capsys.readouterr().out
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_runs_json_dates_are_iso_8601(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`runs --json` writes started and finished as ISO 8601 UTC, as every JSON date."""
    state = str(tmp_path / "j.sqlite3")
    assert main(["run", str(EXAMPLES / "broadcast.yaml"), "--state", state, "--json"]) == 0
    capsys.readouterr()
    assert main(["runs", "--state", state, "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(iso, run["started"]) and re.fullmatch(iso, run["finished"])


def test_resume_is_offered_only_for_a_journaled_run_that_did_not_finish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that succeeds says nothing of --run-id; one that fails says how to resume it."""
    state = str(tmp_path / "j.sqlite3")
    assert main(["run", str(EXAMPLES / "broadcast.yaml"), "--state", state]) == 0
    assert "--run-id" not in capsys.readouterr().err
    recipients = tmp_path / "list.csv"
    recipients.write_text("name,phone\nOk,+15005550101\nBad,+15005550001\n")
    argv = ["run", str(EXAMPLES / "broadcast.yaml"), "--state", state]
    assert main([*argv, "-i", f"recipients={recipients}"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"run (\S+) failed; resume with --run-id \1 ", err), err


def test_an_interrupt_before_the_run_starts_offers_no_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while connecting, before the journal holds the run, does not offer --run-id."""

    async def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_workflow, "_run", interrupted)
    argv = ["run", str(EXAMPLES / "broadcast.yaml"), "--state", str(tmp_path / "j.sqlite3")]
    assert main(argv) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted before run" in err and "--run-id" not in err


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "-F _shtab_twilio_connector twilio-connector"),
        ("zsh", "#compdef twilio-connector"),
        ("fish", "complete -c twilio-connector"),
        ("tcsh", "complete twilio-connector"),
        ("powershell", "Register-ArgumentCompleter"),
    ],
)
def test_completion_prints_a_script_for_each_shell(
    shell: str, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`completion SHELL` prints that shell's script, knowing the commands and the actions."""
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert marker in script
    assert "validate" in script and "--log-level" in script
    assert "send_text_message" in script


@pytest.mark.slow  # runs bash
def test_bash_completes_commands_actions_and_workflow_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In bash, the script completes a command, an action id and a workflow file."""
    assert main(["completion", "bash"]) == 0
    (tmp_path / "complete.bash").write_text(capsys.readouterr().out)
    (tmp_path / "broadcast.yaml").write_text("")
    probe = (
        "source complete.bash\n"
        'comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=();\n'
        '  _shtab_twilio_connector twilio-connector "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}";\n'
        '  echo "${COMPREPLY[*]}"; }\n'
        "comp twilio-connector vali\ncomp twilio-connector call send_te\n"
        "comp twilio-connector run broad\n"
    )
    done = subprocess.run(
        ["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["validate", "send_text_message", "broadcast.yaml"]


@pytest.mark.parametrize("name", ["workflow", "manifest"])
def test_schema_prints_the_shipped_schema_with_its_stable_url(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`schema NAME` prints the shipped schema; its $id is the published URL the docs give."""
    assert main(["schema", name]) == 0
    printed = json.loads(capsys.readouterr().out)
    shipped = resources.files("connector").joinpath(f"schemas/{name}.schema.json")
    assert printed == json.loads(shipped.read_text())
    url = SCHEMA_URL.format(name=name)
    assert printed["$id"] == url
    docs = Path(__file__).parent.parent / "docs"
    page = "workflows.md" if name == "workflow" else "manifest-format.md"
    assert url in (docs / page).read_text()


def test_the_summary_comes_last_and_names_failures_by_recipient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outputs first, then failed items by recipient, then the table; --json names the item too."""
    recipients = tmp_path / "list.csv"
    recipients.write_text("name,phone\nOk,+15005550101\nBad,+15005550001\n")
    argv = ["run", str(EXAMPLES / "broadcast.yaml"), "--state", str(tmp_path / "j.sqlite3")]
    assert main([*argv, "-i", f"recipients={recipients}"]) == 1
    out = capsys.readouterr().out
    outputs, failure, table = (
        out.index("Outputs:"),
        out.index("send +15005550001: HTTP 400"),
        out.index("Run "),
    )
    assert outputs < failure < table
    assert out.rstrip().endswith("┘")  # the table is the last thing printed
    assert main([*argv, "-i", f"recipients={recipients}", "--json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["steps"][0]["errors"]
    assert (error["index"], error["item"], error["code"]) == (1, "+15005550001", 21211)


def test_commands_run_on_uvloop_unless_asked_for_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commands' loop is uvloop's where installed; TWILIO_CONNECTOR_EVENT_LOOP=asyncio keeps asyncio's."""
    uvloop = pytest.importorskip("uvloop")

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    monkeypatch.delenv(EVENT_LOOP_VARIABLE, raising=False)
    assert run_async(loop_type()) is uvloop.Loop
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, "asyncio")
    chosen = run_async(loop_type())
    assert not issubclass(chosen, uvloop.Loop)
    assert issubclass(chosen, asyncio.BaseEventLoop)


def test_a_command_tunes_the_collector_only_while_it_runs() -> None:
    """While a command runs, young objects are collected less often; after, the settings are back."""
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    gc.unfreeze()
    try:

        async def during() -> tuple[int, int]:
            return gc.get_threshold()[0], gc.get_freeze_count()

        threshold, frozen = run_async(during())
        assert threshold == max(before[0], GC_THRESHOLD)
        assert frozen > 0  # what the imports made is out of the collector's way
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
    finally:
        if frozen_before:
            gc.freeze()


def test_a_host_keeps_its_own_collector_settings() -> None:
    """A host that froze objects and collects less often than a command would keeps both."""
    before = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD * 5, *before[1:])
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:

        async def during() -> int:
            return gc.get_threshold()[0]

        assert run_async(during()) == GC_THRESHOLD * 5
        # Still frozen (a frozen object that is freed leaves the count).
        assert gc.get_freeze_count() > frozen - 100
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
