# SPDX-License-Identifier: MIT
"""
An emulator in a process of its own, for the benchmarks that measure the connector
against it: its base URL comes from the first line it prints.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def start_emulator(
    sid: str, token: str, options: Sequence[str]
) -> tuple[subprocess.Popen[str], str]:
    """
    Start ``python -m connector.emulator`` on a free loopback port with *options*.

    Returns:
        The process and its base URL.
    """
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector.emulator",
            *("--host", "127.0.0.1", "--port", "0", "--no-record"),
            *("--account-sid", sid, "--auth-token", token),
            *options,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    line = emulator.stdout.readline()
    prefix = "Twilio emulator listening on "
    if not line.startswith(prefix):
        emulator.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return emulator, line[len(prefix) :].strip()
