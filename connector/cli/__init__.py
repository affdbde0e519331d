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
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import _actions, _consent, _emulator, _listen, _plugins, _worker, _workflow
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand and its options."""
    top = argparse.ArgumentParser(
        prog="twilio-connector",
        description="Call Twilio's Messages API from the command line and from workflows.",
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for module in (_actions, _workflow, _listen, _worker, _emulator, _plugins, _consent):
        module.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` if ``None``.

    Returns:
        The exit code (see the module docstring).
    """
    top = parser()
    ns = top.parse_args(list(sys.argv[1:] if argv is None else argv))
    if ns.command is None:
        top.print_help(sys.stderr)
        return EXIT_INVALID
    handler: Callable[[argparse.Namespace], int] = ns.handler
    return handler(ns)
