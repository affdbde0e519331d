# SPDX-License-Identifier: MIT
"""
Fan-out benchmark: a broadcast through ``twilio-connector run`` against an emulator
process with the same throttle on both sides.

The emulator runs in its own process on 127.0.0.1 with ``--throttle CALLS/SECONDS``;
the runner runs as ``python -m connector run`` with ``--rate-limit CALLS/SECONDS`` and
``TWILIO_*`` pointing at it. The script prints the fan-out step's time against the
minimum N / rate, the share above it, and the 429s the emulator counted.

    python benchmarks/fanout.py                       # 2,000 sends at 6000/60 s (~20 s)
    python benchmarks/fanout.py --count 10000         # the full size (~100 s)

Loopback only; bounded in count (at most 20,000) and time (--timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from emulator_process import start_emulator


MAX_COUNT = 20_000

WORKFLOW = """
name: fanout-benchmark
connection:
  # The magic sender stands for a sender as fast as the call limit (a short code's 100/s
  # would do); a long code's 1 segment/s would pace this broadcast by the hour
  # (benchmarks/sender_pacing.py measures that side).
  senders:
    "+15005550006": 1000/s
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ read_json('recipients.json') }}
    concurrency: CONCURRENCY
    with:
      from: "+15005550006"
      to: ${{ item }}
      body: "Benchmark ${{ index }}"
"""


def _stats(base_url: str) -> dict[str, object]:
    with urllib.request.urlopen(base_url + "/emulator/stats", timeout=10) as response:
        stats: dict[str, object] = json.loads(response.read())
    return stats


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="recipients (default 2000)")
    parser.add_argument("--rate", default="6000/60", help="CALLS/SECONDS on both sides")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after (s)")
    args = parser.parse_args()
    if not 1 <= args.count <= MAX_COUNT:
        parser.error(f"--count must be between 1 and {MAX_COUNT}")
    calls, _, seconds = args.rate.partition("/")
    rate = int(calls) / float(seconds)
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    emulator, base_url = start_emulator(
        sid, token, ["--throttle", args.rate, "--delivery-delay", "0"]
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            recipients = [f"+1555{n:07d}" for n in range(args.count)]
            (folder / "recipients.json").write_text(json.dumps(recipients))
            workflow = WORKFLOW.replace("CONCURRENCY", str(args.concurrency))
            (folder / "fanout.yaml").write_text(workflow)
            env = {
                **os.environ,
                "TWILIO_ACCOUNT_SID": sid,
                "TWILIO_AUTH_TOKEN": token,
                "TWILIO_BASE_URL": base_url,
            }
            began = time.monotonic()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "connector",
                    "run",
                    str(folder / "fanout.yaml"),
                    *("--rate-limit", args.rate, "--state", str(folder / "journal.sqlite3")),
                    "--json",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=args.timeout,
                check=False,
            )
            wall = time.monotonic() - began
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        result = json.loads(done.stdout)
        step = result["steps"][0]
        stats = _stats(base_url)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    minimum = args.count / rate
    fan_out = step["seconds"]
    print(f"recipients            {args.count}")
    print(f"throttle (both sides) {args.rate}  ({rate:g}/s), concurrency {args.concurrency}")
    print(f"sent                  {step['succeeded']} ok, {step['failed']} failed")
    print(f"minimum N/rate        {minimum:.2f} s")
    print(f"fan-out step          {fan_out:.2f} s  ({(fan_out / minimum - 1) * 100:+.2f}%)")
    print(f"whole command         {wall:.2f} s  (start-up and journal included)")
    print(f"429s at the emulator  {stats['throttled']}  (of {stats['requests']} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
