# SPDX-License-Identifier: MIT
"""
What every subcommand shares: exit codes, argument types, and how problems are printed.

Nothing here imports more than the standard library at import time, so that building
the parser (``--help``, ``actions``) stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO


if TYPE_CHECKING:
    from .._connection import Connection
    from .._manifest import ConnectorSpec
    from ..workflow import Workflow


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "add_consent_option",
    "add_emulator_switch",
    "add_state_option",
    "complain",
    "key_value",
    "parse_pairs",
    "print_json",
    "print_problems",
    "rate_limit",
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
    """``--emulator`` / ``--no-emulator``: force or refuse the embedded emulator."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--emulator",
        dest="emulator",
        action="store_true",
        default=None,
        help="use the embedded emulator even if credentials are set (TWILIO_EMULATOR=1)",
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


def complain(command: str, message: object, stream: TextIO | None = None) -> None:
    """Print ``twilio-connector COMMAND: message`` to stderr."""
    print(f"twilio-connector {command}: {message}", file=stream or sys.stderr)


def print_problems(problems: Sequence[Any], stream: TextIO | None = None) -> None:
    """Print located problems, one per line, then their count."""
    out = stream or sys.stderr
    for problem in problems:
        print(f"{problem}", file=out)
    count = len(problems)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=out)


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
        ledger=getattr(args, "consent", None) if connector.id == "twilio" else None,
    )
