# SPDX-License-Identifier: MIT
"""
The ``twilio-connector`` command: one dispatcher over the subcommands of this package.

Every subcommand's options are defined here, in modules that import only the standard
library at import time; what a subcommand needs (aiohttp, the workflow engine, the
emulator, temporalio) is imported when it runs, so ``twilio-connector actions`` and
``--help`` start fast, and ``worker --help`` works without the temporal extra.

Exit codes, the same for every subcommand: 0 done, 1 failed at run time (Twilio
refused, a step failed, no connection), 2 invalid command line, file, input or
settings (nothing ran), 130 interrupted.

Options every subcommand takes (before or after its name): ``-v`` (repeat for more),
``--log-level``, ``--log-json``; and ``--version`` before any. With ``--json``, errors
are one JSON object on stderr (``docs/cli.md``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import (
    _actions,
    _completion,
    _consent,
    _emulator,
    _listen,
    _plugins,
    _schema,
    _worker,
    _workflow,
)
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    complain,
    error_object,
    fail,
    set_log_json,
)


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "main", "parser"]

DISTRIBUTION = "twilio-workflow-connector"


class UsageError(Exception):
    """The command line does not parse (argparse's error, raised instead of exiting)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        self.parser = parser
        super().__init__(message)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors reach :func:`main`, which prints them as asked."""

    #: The subcommands' names (on the top parser).
    commands: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


class _Version(argparse.Action):
    """``--version``: the installed distribution's version (looked up only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kw: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:
            found = "unknown (not installed)"
        print(f"twilio-connector {found}")
        parser.exit()


def _add_logging_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-v, --log-level, --log-json; on subcommands they default to the top parser's."""
    suppress = argparse.SUPPRESS
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else suppress,
        help="log more (-v info, -vv debug)",
    )
    group.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error"),
        default=None if top else suppress,
        help="the lowest level logged (default: warning; info for listen)",
    )
    group.add_argument(
        "--log-json",
        action="store_true",
        default=False if top else suppress,
        help="write log lines and notices on stderr as one JSON object per line",
    )


def parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand and its options."""
    top = _Parser(
        prog="twilio-connector",
        description="Call Twilio's Messages API from the command line and from workflows.",
        epilog="Exit codes: 0 done, 1 failed at run time, 2 invalid (nothing ran), "
        "130 interrupted. Reference: docs/cli.md.",
    )
    top.add_argument("--version", action=_Version, help="print the version and exit")
    _add_logging_options(top, top=True)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    commands = (
        _actions,
        _workflow,
        _listen,
        _worker,
        _emulator,
        _plugins,
        _consent,
        _schema,
        _completion,
    )
    for module in commands:
        module.register(sub)
    for command in sub.choices.values():
        _add_logging_options(command, top=False)
    top.commands = tuple(sub.choices)
    return top


def _usage(error: UsageError, argv: Sequence[str], commands: Sequence[str]) -> int:
    """Print a command-line error as argparse does, or as JSON with ``--json``."""
    if "--json" in argv:
        import json

        command = next((a for a in argv if a in commands), "")
        shaped = error_object(command, str(error), kind="usage", exit_code=EXIT_INVALID)
        print(json.dumps(shaped, ensure_ascii=False), file=sys.stderr)
    else:
        error.parser.print_usage(sys.stderr)
        print(f"{error.parser.prog}: error: {error}", file=sys.stderr)
    return EXIT_INVALID


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` if ``None``.

    Returns:
        The exit code (see the module docstring).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    assert isinstance(top, _Parser)
    try:
        ns = top.parse_args(args)
    except UsageError as exc:
        return _usage(exc, args, top.commands)
    if ns.command is None:
        top.print_help(sys.stderr)
        return EXIT_INVALID
    handler: Callable[[argparse.Namespace], int] = ns.handler
    default_level = getattr(ns, "default_log_level", "warning")
    set_log_json(ns.log_json)
    try:
        if not (ns.verbose or ns.log_level or ns.log_json or default_level != "warning"):
            # Nothing asked of logging: leave it alone (Python shows warnings as they
            # are), so that commands that never log do not pay for importing it.
            return handler(ns)
        from ._logs import configured, level_for

        level = level_for(ns.log_level, ns.verbose, default_level)
        with configured(ns.command, level, as_json=ns.log_json):
            return handler(ns)
    except KeyboardInterrupt:
        complain(ns.command, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... --json | head`): nothing more to say to it.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        from ..errors import ConnectorError

        # Every error raised on purpose is a line (or a JSON object), never a traceback.
        if not isinstance(exc, ConnectorError):
            raise
        return fail(ns, exc)
    finally:
        set_log_json(False)
