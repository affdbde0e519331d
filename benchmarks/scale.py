# SPDX-License-Identifier: MIT
"""
Scale benchmark of the local runner: memory, journal size and CPU per send.

An unthrottled broadcast (``for_each: read_csv(...)``) runs through ``python -m
connector run`` against an emulator in its own process (no throttle, instant delivery,
a throwaway SQLite database). For each size it prints the runner's peak RSS, the
journal's bytes per item, the runner's and the emulator's CPU per send, and the sends
per second end to end.

    python benchmarks/scale.py                          # 2,000 and 20,000 sends
    python benchmarks/scale.py --counts 1000000         # a million rows (long)

Goals (issue 16): peak RSS grows by at most 25 MB from 2,000 to 20,000 sends and stays
under 200 MB for 1,000,000 rows; at most 600 bytes of journal per item; the runner's
CPU per send at most the emulator's; at least 2,000 sends/s if the emulator keeps up.
Segment counting (pacing), the consent lookup (the journal's ledger) and the masking of
secrets are on, as in any run. Both processes run as the commands do, on uvloop's event
loop where it is installed (``TWILIO_CONNECTOR_EVENT_LOOP=asyncio`` for asyncio's).
Loopback only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from emulator_process import start_emulator


WORKFLOW = """
name: scale-benchmark
connection:
  # Pacing counts every message's segments, as in production; the rate is declared far
  # above the run's so that the runner's own cost is measured, not 1 segment/s, and the
  # account's 2000/s is lifted: the run goes as fast as the runner and emulator can.
  senders: {"+15005550006": 1000000/s}
  pacing: {account_rate: "off"}
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ read_csv('recipients.csv') }}
    concurrency: CONCURRENCY
    with:
      from: "+15005550006"
      to: ${{ item.phone }}
      body: "Hi ${{ item.name }}, the doors open at 6pm."
outputs:
  sent: ${{ length(steps.send.outputs) }}
"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def measure(count: int, concurrency: int, timeout: float) -> dict[str, float]:
    """
    Run one broadcast of *count* recipients; return its figures. CPU per send leaves out
    the start (imports, reading the manifest), measured by a run of one recipient.
    """
    # Twice: the first run may also fill the bytecode cache.
    start = min(
        (_run(1, concurrency, timeout) for _ in range(2 if count > 1 else 0)),
        key=lambda run: run["runner_cpu"],
        default=None,
    )
    figures = _run(count, concurrency, timeout)
    if start is not None:
        figures["start_cpu_ms"] = start["runner_cpu"] * 1000
        figures["runner_cpu_ms"] = (
            (figures["runner_cpu"] - start["runner_cpu"]) * 1000 / (count - 1)
        )
    return figures


def _run(count: int, concurrency: int, timeout: float) -> dict[str, float]:
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with (folder / "recipients.csv").open("w") as f:
            f.write("name,phone\n")
            for n in range(count):
                f.write(f"R{n},+1555{n:07d}\n")
        (folder / "scale.yaml").write_text(WORKFLOW.replace("CONCURRENCY", str(concurrency)))
        emulator, base_url = start_emulator(
            sid,
            token,
            [
                "--db",
                str(folder / "emulator.sqlite3"),
                "--throttle",
                "off",
                "--delivery-delay",
                "0",
            ],
        )
        try:
            env = {
                **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                # Bytecode cached as in any install, so the start is not compiling.
                "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "scale-pycache"),
                "TWILIO_ACCOUNT_SID": sid,
                "TWILIO_AUTH_TOKEN": token,
                "TWILIO_BASE_URL": base_url,
            }
            emulator_before = _cpu_seconds(emulator.pid)
            began = time.monotonic()
            runner = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "connector",
                    "run",
                    str(folder / "scale.yaml"),
                    *("--rate-limit", "off", "--state", str(folder / "journal.sqlite3")),
                    "--json",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            # The runner's own rusage (peak RSS, CPU) from wait4: the children's totals
            # would mix in the start run and its emulator.
            killer = threading.Timer(timeout, runner.kill)
            killer.start()
            try:
                assert runner.stdout is not None
                out = runner.stdout.read()
                _, status, usage = os.wait4(runner.pid, 0)
            finally:
                killer.cancel()
            runner.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - began
            emulator_cpu = _cpu_seconds(emulator.pid) - emulator_before
        finally:
            emulator.terminate()
            emulator.wait(timeout=60)
        if runner.returncode != 0:
            raise SystemExit(f"the run failed ({runner.returncode}): {out[-2000:]}")
        result = json.loads(out)
        step = result["steps"][0]
        journal_bytes = sum(
            p.stat().st_size for p in folder.iterdir() if p.name.startswith("journal.sqlite3")
        )
    return {
        "count": count,
        "succeeded": step["succeeded"],
        "seconds": step["seconds"],
        "wall": wall,
        "rss_mb": usage.ru_maxrss / 1024,
        "journal_per_item": journal_bytes / count,
        "runner_cpu": usage.ru_utime + usage.ru_stime,
        "runner_cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000 / count,
        "emulator_cpu_ms": emulator_cpu * 1000 / count,
    }


def main() -> int:
    """Measure each size and print the figures next to the goals."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts", type=int, nargs="+", default=[2000, 20000], help="recipients per run"
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    rows = []
    for count in args.counts:
        # Each size in a fresh child, so that nothing of one size carries over to the next.
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(count), "--concurrency", str(args.concurrency)],
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout))
    print(f"{'sends':>9} {'ok':>9} {'step s':>8} {'sends/s':>8} {'peak RSS':>9} "
          f"{'journal/item':>13} {'runner CPU':>11} {'emulator CPU':>13}")  # fmt: skip
    for r in rows:
        print(
            f"{r['count']:>9,} {r['succeeded']:>9,} {r['seconds']:>8.1f} "
            f"{r['count'] / r['seconds']:>8.0f} {r['rss_mb']:>7.1f}MB "
            f"{r['journal_per_item']:>11.0f} B {r['runner_cpu_ms']:>8.3f} ms "
            f"{r['emulator_cpu_ms']:>10.3f} ms"
        )
    if len(rows) >= 2:
        growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
        print(f"peak RSS from {rows[0]['count']:,} to {rows[-1]['count']:,}: {growth:+.1f} MB "
              "(goal: at most +25 MB)")  # fmt: skip
    if "start_cpu_ms" in rows[0]:
        print(f"runner start (a run of one recipient): {rows[0]['start_cpu_ms']:.0f} ms CPU, "
              "left out of the runner's CPU per send")  # fmt: skip
    loop = "uvloop's" if importlib.util.find_spec("uvloop") else "asyncio's"
    if os.environ.get("TWILIO_CONNECTOR_EVENT_LOOP", "").strip().lower() == "asyncio":
        loop = "asyncio's"
    print(f"runner and emulator on {loop} event loop (TWILIO_CONNECTOR_EVENT_LOOP)")
    print("goals: journal <= 600 B/item; runner CPU/send <= emulator's; >= 2,000 sends/s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--one":
        concurrency = int(sys.argv[sys.argv.index("--concurrency") + 1])
        print(json.dumps(measure(int(sys.argv[2]), concurrency, 3600.0)))
        raise SystemExit(0)
    raise SystemExit(main())
