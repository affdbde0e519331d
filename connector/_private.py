# SPDX-License-Identifier: MIT
"""
Files only their owner may read: journals, consent ledgers and what they hold (phone
numbers, message bodies, opt-outs).

The emulator keeps a copy of :func:`create_private` of its own: it imports nothing of
the connector but Twilio's shared rules (``connector._twilio``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


__all__ = ["create_private"]


def create_private(path: Path) -> None:
    """
    Create *path*, empty, readable and writable by its owner only (0600), unless it
    exists. SQLite gives a database's -wal and -shm files the database file's mode, so
    they are private too.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        # The umask may have taken bits from 0600 (SQLite would then fail to write).
        if sys.platform != "win32":
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
