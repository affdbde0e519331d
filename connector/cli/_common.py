# SPDX-License-Identifier: MIT
"""
What every subcommand shares: exit codes, argument types, and how problems are printed.

Nothing here imports more than the standard library at import time, so that building
the parser (``--help``, ``actions``) stays fast.

Errors go through :func:`fail`: one line (or the located problems) on stderr, or with
``--json`` one JSON object on stderr, of this shape (``docs/cli.md``)::

    {"error": {"command": "call", "kind": "invalid_input", "type": "InvalidInputError",
               "message": "...", "fields": [{"field": "to", "message": "...", "value": "x"}],
               "twilio": null, "exit_code": 2}}
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import threading
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeVar


if TYPE_CHECKING:
    import asyncio

    from .._connection import Connection
    from .._manifest import ConnectorSpec
    from ..workflow import Workflow


__all__ = [
    "ERROR_KINDS",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "add_consent_option",
    "add_emulator_switch",
    "add_state_option",
    "bind_failure",
    "complain",
    "error_object",
    "exit_code_of",
    "fail",
    "json_line",
    "key_value",
    "parse_pairs",
    "print_json",
    "print_problems",
    "problem_fields",
    "rate_limit",
    "run_async",
    "sender_rate",
    "set_log_json",
    "workflow_connection",
    "workflow_connectors",
]

#: Everything asked for was done.
EXIT_OK: Final = 0
#: Something failed at run time: Twilio refused, a step failed, the network broke.
EXIT_FAILED: Final = 1
#: The command, a file or an input is invalid, or settings are missing; nothing ran.
EXIT_INVALID: Final = 2
#: Interrupted (Ctrl-C); a journaled run can be resumed.
EXIT_INTERRUPTED: Final = 130


def rate_limit(value: str) -> tuple[int, float] | bool:
    """Argument type of ``--rate-limit``: ``CALLS/SECONDS`` or ``off``."""
    from .._ratelimit import parse_rate_limit

    try:
        return parse_rate_limit(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def sender_rate(value: str) -> tuple[str, float]:
    """Argument type of ``--sender``: ``SENDER=RATE`` in segments (``+15005550006=1/s``)."""
    from .._pacing import parse_rate

    sender, sep, rate = value.partition("=")
    if not sep or not sender.strip():
        raise argparse.ArgumentTypeError(
            f"expected SENDER=RATE (e.g. +15005550006=1/s), got {value!r}"
        )
    try:
        return sender.strip(), parse_rate(rate)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def key_value(value: str) -> tuple[str, str]:
    """Argument type of ``KEY=VALUE`` options."""
    key, sep, rest = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, rest


def parse_pairs(
    pairs: Sequence[tuple[str, str]], repeatable: Collection[str] = ()
) -> dict[str, Any]:
    """
    Gather ``KEY=VALUE`` pairs into a mapping; keys in *repeatable* collect lists.

    Raises:
        ValueError: A key other than those in *repeatable* is given twice.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in repeatable:
            out.setdefault(key, []).append(value)
        elif key in out:
            raise ValueError(f"{key}: given twice (only array inputs repeat)")
        else:
            out[key] = value
    return out


def add_state_option(parser: argparse.ArgumentParser) -> None:
    """``--state PATH``: the run journal."""
    parser.add_argument(
        "--state",
        metavar="PATH",
        type=Path,
        help="the run journal (SQLite; default: runs.sqlite3 in the per-user data directory)",
    )


def add_consent_option(parser: argparse.ArgumentParser) -> None:
    """``--consent LOCATION``: the consent ledger sends are checked against."""
    parser.add_argument(
        "--consent",
        metavar="FILE|URL",
        help="the consent ledger: a SQLite file (created 0600) or redis://HOST:PORT/DB "
        "(default: TWILIO_CONSENT_LEDGER, else the run journal's)",
    )


def add_emulator_switch(parser: argparse.ArgumentParser) -> None:
    """``--emulator`` / ``--no-emulator``: force or refuse the emulator."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--emulator",
        dest="emulator",
        action="store_true",
        default=None,
        help="use the emulator (the running one, else a throwaway embedded one) even if "
        "credentials are set (TWILIO_EMULATOR=1)",
    )
    group.add_argument(
        "--no-emulator",
        dest="emulator",
        action="store_false",
        help="never use the emulator; fail without credentials (TWILIO_EMULATOR=0)",
    )


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ


#: Chooses the commands' event loop: ``asyncio`` for the standard library's, else uvloop's
#: where it is installed.
EVENT_LOOP_VARIABLE: Final = "TWILIO_CONNECTOR_EVENT_LOOP"

_T = TypeVar("_T")

#: The collector's first threshold while a command runs (Python's default is 700).
GC_THRESHOLD: Final = 10_000


def run_async(main: Coroutine[Any, Any, _T]) -> _T:
    """
    Run a command's coroutine to the end, as :func:`asyncio.run` does, on uvloop's event
    loop where it is installed (a dependency on Linux and macOS). Its loop, handles and
    transports are written in C: a busy run spends about a tenth less CPU per send
    (``benchmarks/scale.py``). ``TWILIO_CONNECTOR_EVENT_LOOP=asyncio`` keeps the
    standard library's loop. The garbage collector is tuned while it runs
    (:class:`_CollectorTuning`).
    """
    import asyncio

    with _COLLECTOR, asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


class _CollectorTuning:
    """
    The garbage collector's settings while commands run, set by the first of them and
    put back by the last (commands may run in threads of a host's process).

    The command's modules are loaded: what they made lives as long as the process, so it
    is moved out of the collector's sight (``gc.freeze``), and young objects are
    collected every 10,000 net allocations instead of 700. A busy run
    (``benchmarks/scale.py``) spent 0.31 s of 20,000 sends in 1,373 collections; now in
    3. The few cycles a send leaves (exceptions, closed transports) still go, soon
    enough. A host that froze objects itself, or collects less often, keeps its choice.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._threshold: tuple[int, int, int] = (0, 0, 0)
        self._froze = False

    def __enter__(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            self._threshold = gc.get_threshold()
            self._froze = gc.get_freeze_count() == 0
            if self._froze:
                gc.freeze()
            gc.set_threshold(max(self._threshold[0], GC_THRESHOLD), *self._threshold[1:])

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users:
                return
            gc.set_threshold(*self._threshold)
            if self._froze:
                gc.unfreeze()


_COLLECTOR: Final = _CollectorTuning()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop``, or ``None`` (asyncio's) when it is absent or refused."""
    if environ().get(EVENT_LOOP_VARIABLE, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


#: Whether every line on stderr is a JSON object (``--log-json``); set by ``main``.
_log_json = False


def set_log_json(enabled: bool) -> None:
    """Make :func:`complain` write JSON lines (``--log-json``), or plain ones again."""
    global _log_json
    _log_json = enabled


def json_line(command: str, message: object, level: str = "info") -> str:
    """One ``--log-json`` line: a JSON object with the time, level, command and message."""
    import datetime as dt

    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "time": stamp,
            "level": level,
            "logger": "connector.cli",
            "command": command,
            "message": str(message),
        },
        ensure_ascii=False,
    )


def complain(command: str, message: object, stream: TextIO | None = None) -> None:
    """Print ``twilio-connector COMMAND: message`` to stderr (a JSON line with ``--log-json``)."""
    line = json_line(command, message) if _log_json else f"twilio-connector {command}: {message}"
    print(line, file=stream or sys.stderr, flush=True)


#: The ``kind`` of an error in ``--json`` output, by exception class; an error takes
#: the kind of the nearest class of its hierarchy listed here.
ERROR_KINDS: Final = {
    "UsageError": "usage",
    "WorkflowError": "invalid_workflow",
    "DocumentError": "invalid_file",
    "ManifestError": "invalid_manifest",
    "UnknownActionError": "unknown_action",
    "UnknownConnectorError": "unknown_connector",
    "UnsafeLinkError": "unsafe_link",
    "InvalidInputError": "invalid_input",
    "ConfigurationError": "configuration",
    "RunError": "run_refused",
    "ExpressionError": "expression",
    "TwilioAPIError": "twilio",
    "MessageMayHaveBeenSentError": "outcome_unknown",
    "TransportError": "network",
    "PluginLoadError": "plugin",
    "OSError": "system",
}
# Kinds that mean "nothing ran: fix the command line, a file, an input or a setting".
_INVALID_KINDS = frozenset(
    {
        "usage",
        "invalid_workflow",
        "invalid_file",
        "invalid_manifest",
        "unknown_action",
        "unknown_connector",
        "invalid_input",
        "unsafe_link",
        "configuration",
        "run_refused",
        "expression",
    }
)


def _kind(error: BaseException) -> tuple[str, str]:
    for cls in type(error).__mro__:
        if cls.__name__ in ERROR_KINDS:
            return ERROR_KINDS[cls.__name__], type(error).__name__
    return "error", type(error).__name__


def problem_fields(problems: Sequence[Any]) -> list[dict[str, Any]]:
    """Located problems as ``--json`` fields: field, message, file, line, column."""
    return [
        {"field": p.where, "message": p.message, "file": p.file, "line": p.line, "column": p.column}
        for p in problems
    ]


def _fields(error: BaseException) -> list[dict[str, Any]]:
    problems = getattr(error, "problems", None)
    if problems is None and getattr(error, "problem", None) is not None:
        problems = [error.problem]  # type: ignore[attr-defined]
    if problems is not None:
        return problem_fields(problems)
    issues = getattr(error, "issues", None)
    if issues is not None:
        return [{"field": i.key, "message": i.rule, "value": i.value} for i in issues]
    if hasattr(error, "rule") and hasattr(error, "where"):  # a ManifestError
        return [
            {
                "field": error.where,
                "message": error.rule,
                "file": getattr(error, "file", None),
                "line": getattr(error, "line", None),
                "column": getattr(error, "column", None),
            }
        ]
    return []


def _twilio(error: BaseException) -> dict[str, Any] | None:
    # A send whose outcome is unknown carries Twilio's answer (a 5xx) as its cause.
    for candidate in (error, getattr(error, "cause", None)):
        status = getattr(candidate, "status", None)
        if isinstance(status, int):
            return {
                "status": status,
                "code": getattr(candidate, "code", None),
                "message": getattr(candidate, "message", None),
                "more_info": getattr(candidate, "more_info", None),
            }
    return None


def _message(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    problems = getattr(error, "problems", None)
    if problems is not None:
        count = len(problems)
        return f"{count} problem{'s' if count != 1 else ''} found"
    if getattr(error, "problem", None) is not None:
        return str(error.problem)  # type: ignore[attr-defined]
    return str(error)


def exit_code_of(kind: str) -> int:
    """The exit code for an error of *kind*: 2 when nothing ran, 1 otherwise."""
    return EXIT_INVALID if kind in _INVALID_KINDS else EXIT_FAILED


def error_object(
    command: str,
    error: BaseException | str,
    *,
    kind: str | None = None,
    exit_code: int | None = None,
) -> dict[str, Any]:
    """
    The JSON form of an error (see the module docstring and ``docs/cli.md``).

    Args:
        command: The subcommand (``""`` before one was parsed).
        error: The exception, or a message.
        kind: The kind; derived from the exception's class unless given.
        exit_code: The exit code; derived from the kind unless given.
    """
    if isinstance(error, str):
        found, type_name = kind or "usage", None
    else:
        found, type_name = _kind(error)
        found = kind or found
    return {
        "error": {
            "command": command,
            "kind": found,
            "type": type_name,
            "message": _message(error),
            "fields": [] if isinstance(error, str) else _fields(error),
            "twilio": None if isinstance(error, str) else _twilio(error),
            "exit_code": exit_code_of(found) if exit_code is None else exit_code,
        }
    }


def fail(
    args: argparse.Namespace,
    error: BaseException | str,
    *,
    kind: str | None = None,
    exit_code: int | None = None,
) -> int:
    """
    Report an error the way the command line was asked to, and return the exit code.

    Without ``--json``: located problems one per line then their count, anything else
    as one ``twilio-connector COMMAND: message`` line. With ``--json``: one JSON object
    on stderr (:func:`error_object`).

    Args:
        args: The parsed command line (its ``command`` and ``json``).
        error: The exception, or a message (of *kind* ``usage`` unless given).
        kind: The kind; derived from the exception's class unless given.
        exit_code: The exit code; 2 for kinds where nothing ran, 1 otherwise, unless given.
    """
    command = str(getattr(args, "command", "") or "")
    shaped = error_object(command, error, kind=kind, exit_code=exit_code)
    if getattr(args, "json", False):
        print(json.dumps(shaped, ensure_ascii=False, default=str), file=sys.stderr, flush=True)
    elif isinstance(error, BaseException) and getattr(error, "problems", None) is not None:
        print_problems(error.problems)  # type: ignore[attr-defined]
    else:
        complain(command, _message(error))
    code: int = shaped["error"]["exit_code"]
    return code


def bind_failure(exc: OSError, host: str, port: int) -> str | None:
    """
    Say in one line why a server cannot listen on *host*:*port*, with what to do.

    Returns:
        The line, or ``None`` when *exc* is not about binding the socket (re-raise it).
    """
    import errno
    import socket

    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: unknown host {host!r}; check --host"
    reasons = {
        errno.EADDRINUSE: f"port {port} is already in use; choose another with --port "
        "(--port 0 picks a free one)",
        errno.EACCES: f"no permission to use port {port} (ports below 1024 need "
        "privileges); choose another with --port (--port 0 picks a free one)",
        errno.EADDRNOTAVAIL: f"{host} is not an address of this machine; check --host",
    }
    reason = reasons.get(exc.errno or 0)
    return None if reason is None else f"cannot listen on {where}: {reason}"


def print_problems(problems: Sequence[Any], stream: TextIO | None = None) -> None:
    """Print located problems, one per line, then their count."""
    out = stream or sys.stderr
    for problem in problems:
        print(f"{problem}", file=out)
    count = len(problems)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=out, flush=True)


def print_json(value: Any) -> None:
    """Print *value* as indented JSON (UTF-8 text, not escapes) to stdout."""
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def workflow_connectors(*workflows: Workflow) -> dict[str, ConnectorSpec]:
    """The connectors workflows may use: Twilio's, and the installed plugins if they name others."""
    from .._manifest import default_connector
    from ..plugin import TWILIO, installed

    named: set[str] = set()
    for workflow in workflows:
        named |= {*workflow.connector_ids, *workflow.connections}
        if workflow.trigger is not None:
            named.add(workflow.trigger.connector_id)
    if named <= {TWILIO}:
        return {TWILIO: default_connector()}
    return installed().specs()


def workflow_connection(
    workflow: Workflow,
    connector: ConnectorSpec,
    inputs: Mapping[str, Any],
    args: argparse.Namespace,
    command: str,
) -> contextlib.AbstractAsyncContextManager[Connection]:
    """Open one connector's connection as the workflow's block says (or from the environment)."""
    from .._connect import open_connection

    env = environ()
    block = workflow.connection_for(connector.id)
    limit = args.rate_limit
    if limit is None and block is not None:
        limit = block.rate_limit
    return open_connection(
        connector=connector,
        values=block.values(env, inputs) if block is not None and block.explicit else None,
        env=env,
        # The emulator serves Twilio's API only; other connectors never fall back to it.
        emulator=args.emulator if connector.id == "twilio" else None,
        rate_limit=limit,
        announce=lambda text: complain(command, text),
        pacing=block.pacing if block is not None else None,
        ledger=getattr(args, "consent", None) if connector.id == "twilio" else None,
    )
