# SPDX-License-Identifier: MIT
"""
Start-up time: how long ``twilio-connector actions`` takes, next to a bare interpreter.

Each command runs in a fresh interpreter, as a user runs it; the figure is the best
wall time of ``--runs`` runs (best, not mean: the other processes of a shared machine
only ever add time). Printed, in milliseconds:

  - ``python -c pass``: the floor no command can go below;
  - ``import connector.plugin``: what a workflow engine pays to discover the connector;
  - ``twilio-connector actions``: the command, with the shipped manifest's cache warm;
  - ``twilio-connector actions``, empty cache: the first run after an install or a
    manifest change (Linux only: the cache is moved with ``XDG_CACHE_HOME``).

    python benchmarks/startup.py [--runs 10] [--max-ms 200]

With ``--max-ms`` the script exits 1 when ``actions`` (warm) is slower than that.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def best_of(command: Sequence[str], runs: int, env: Mapping[str, str] | None = None) -> float:
    """The best wall time, in milliseconds, of *runs* runs of *command*."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def cold_cache(command: Sequence[str], runs: int) -> float:
    """The best wall time of *command* with an empty per-user cache each run."""
    best = float("inf")
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache}
            best = min(best, best_of(command, 1, env))
    return best


def _with_bytecode_cache() -> None:
    """
    Let the commands cache their bytecode (in a directory of the benchmark's own), as
    any installed package does: with PYTHONDONTWRITEBYTECODE set, every run would
    compile every module again and the figures would be of the compiler.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "startup-pycache")


def main() -> int:
    _with_bytecode_cache()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--max-ms", type=float, help="fail when `actions` is slower than this")
    args = parser.parse_args()

    script = Path(sys.executable).parent / "twilio-connector"
    if script.exists():
        actions = [str(script), "actions"]
    else:
        actions = [sys.executable, "-m", "connector", "actions"]
    # One untimed run fills the manifest cache, the bytecode cache and the OS file cache.
    subprocess.run(actions, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-c", "import connector.plugin"], check=True)
    plugin = "import connector.plugin"
    rows = [
        ("python -c pass", best_of([sys.executable, "-c", "pass"], args.runs)),
        ("import connector.plugin", best_of([sys.executable, "-c", plugin], args.runs)),
        ("twilio-connector actions", best_of(actions, args.runs)),
    ]
    if sys.platform.startswith("linux"):
        rows.append(("twilio-connector actions, empty cache", cold_cache(actions, args.runs)))
    for name, ms in rows:
        print(f"{name:<40} {ms:6.0f} ms  (best of {args.runs})")
    if args.max_ms is not None and rows[2][1] > args.max_ms:
        print(f"`twilio-connector actions` is above the {args.max_ms:.0f} ms target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
