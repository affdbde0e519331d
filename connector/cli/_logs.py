# SPDX-License-Identifier: MIT
"""
Logging of the ``connector`` loggers for one command: ``-v``, ``--log-level``, ``--log-json``.

Only the ``connector`` loggers are configured (``connector``, ``connector.receiving``,
``connector.temporal``...), on a handler of their own that is removed when the command
ends, so a program that calls :func:`connector.cli.main` keeps its own logging.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Final


__all__ = ["LEVELS", "configured", "level_for"]

#: The names ``--log-level`` takes, most verbose first.
LEVELS: Final = ("debug", "info", "warning", "error")


def level_for(name: str | None, verbose: int, default: str) -> int:
    """
    The level to log at: *name* when given, else *default* made one step more verbose
    per ``-v``.
    """
    if name is not None:
        return int(logging.getLevelName(name.upper()))
    index = max(0, LEVELS.index(default) - verbose)
    return int(logging.getLevelName(LEVELS[index].upper()))


class _TextFormatter(logging.Formatter):
    """``twilio-connector COMMAND: [level: ]message``, the level left out for info."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self._prefix = f"twilio-connector {command}: " if command else "twilio-connector: "

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        text = f"{self._prefix}{level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, command, message."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self._command = command

    def format(self, record: logging.LogRecord) -> str:
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "command": self._command,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


@contextlib.contextmanager
def configured(command: str, level: int, *, as_json: bool) -> Iterator[None]:
    """
    Log the ``connector`` loggers at *level* to stderr while the block runs.

    Args:
        command: The subcommand, named on each line.
        level: The lowest level shown.
        as_json: One JSON object per line instead of text.
    """
    logger = logging.getLogger("connector")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter(command) if as_json else _TextFormatter(command))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    # The records are shown here; a root handler (a host's basicConfig) would show them twice.
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
