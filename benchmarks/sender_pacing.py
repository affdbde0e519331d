# SPDX-License-Identifier: MIT
"""
A broadcast against the physical limit: how close does sender pacing get to the pool's
combined rate?

The emulator models Twilio's sender queues (three US long codes at 1 segment/s and a
toll-free number at 3/s) and the connector paces the same senders; both run on one
clock, ``--scale`` times faster than real time. The connection's call limit is lifted,
so only the senders' rates bind. A workflow sends ``--count`` messages (one- and
two-segment bodies, GSM-7 and UCS-2) from the pool, journaled as any run is.

Printed next to the physical limit (total segments over the pool's combined rate):
the broadcast's time from the first create to the last segment out, the 21611, 30001
and 429 answers, each sender's idle time while work remained, and the expected finish
the pacer predicted along the way.

    python benchmarks/sender_pacing.py                    # 10,000 messages at 30x (~90 s)
    python benchmarks/sender_pacing.py --count 2000       # a quicker look

Loopback only, in one process; bounded (at most 50,000 messages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POOL = {"+15005550010": 1.0, "+15005550011": 1.0, "+15005550012": 1.0, "+18005550100": 3.0}
BODIES = [
    "Your order has shipped.",  # GSM-7, 1 segment
    "Your order has shipped and will arrive tomorrow between 9 and 12. Reply STOP to stop "
    "these messages, HELP for help. Thank you for shopping with us, see you soon again!",  # GSM-7, 2
    "Ihre Bestellung ist unterwegs ✓",  # UCS-2, 1
    "Ihre Bestellung ist unterwegs ✓ und kommt morgen zwischen 9 und 12 Uhr an. Grüße!",  # UCS-2, 2
]

WORKFLOW = """
name: pooled-broadcast
inputs:
  recipients: {type: array, default: []}
connection:
  senders:
SENDERS
  pacing:
    horizon: HORIZONs
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ inputs.recipients }}
    concurrency: CONCURRENCY
    with:
      from: POOL
      to: ${{ item.to }}
      body: ${{ item.body }}
"""


class Checkpoints:
    """A progress reporter noting the pacer's expected finish at every tenth."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.pacer: Any = None
        self.total = 0
        self.done = 0
        self.predictions: list[tuple[int, float, float]] = []

    def step_started(self, step_id: str, total: int | None) -> None:
        self.total = total or 0

    def advance(self, step_id: str, count: int = 1) -> None:
        self.done += count
        if self.pacer is not None and self.total and self.done % (self.total // 10) == 0:
            status = self.pacer.status()
            finish = status.expected_finish(self.total - self.done)
            if finish is not None:
                self.predictions.append((self.done, self.clock.now(), finish))

    def step_finished(self, step_id: str, status: str) -> None:
        pass


def _replay(records: list[Any]) -> dict[str, Any]:
    """Each sender's queue, replayed from the stored creates as the emulator ran it."""
    from connector._twilio import count_segments

    free: dict[str, float] = {}
    idle: dict[str, float] = defaultdict(float)
    segments: dict[str, int] = defaultdict(int)
    for record in sorted(records, key=lambda r: r.seq):
        sender = record.from_
        units = count_segments(record.body)
        if sender in free and record.date_created > free[sender]:
            idle[sender] += record.date_created - free[sender]
        start = max(record.date_created, free.get(sender, record.date_created))
        free[sender] = start + units / POOL[sender]
        segments[sender] += units
    end = max(free.values())
    return {
        "first": min(r.date_created for r in records),
        "end": end,
        "idle": {s: round(idle[s], 3) for s in POOL},
        "tail": {s: round(end - free[s], 3) for s in POOL},
        "segments": dict(segments),
    }


async def _run(opts: argparse.Namespace) -> dict[str, Any]:
    import attrs

    from connector import Connection
    from connector.emulator import Clock, EmulatorConfig, EmulatorServer, QueueConfig
    from connector.workflow import Journal, load_workflow, run_workflow

    clock = Clock(scale=opts.scale)
    config = EmulatorConfig(
        clock=clock,
        throttle=None,
        delivery_delay=0.0,
        numbers=tuple(POOL),
        queues=QueueConfig(senders=POOL, queue_limit=opts.queue_limit),
    )
    senders = "\n".join(f'    "{s}": {r:g}/s' for s, r in POOL.items())
    text = (
        WORKFLOW.replace("SENDERS", senders)
        .replace("HORIZON", f"{opts.horizon:g}")
        .replace("CONCURRENCY", str(opts.concurrency))
        .replace("POOL", json.dumps(list(POOL)))
    )
    with tempfile.TemporaryDirectory(dir=opts.tmp) as tmp:
        workflow = load_workflow(Path(tmp) / "pooled-broadcast.yaml", text=text)
        assert workflow.connection is not None and workflow.connection.pacing
        pacing = attrs.evolve(workflow.connection.pacing, clock=clock)
        recipients = [
            {"to": f"+1555{i:07d}", "body": BODIES[i % len(BODIES)]} for i in range(opts.count)
        ]
        progress = Checkpoints(clock)
        async with EmulatorServer(config) as emulator:
            connection = Connection(
                emulator.account_sid,
                emulator.auth_token,
                base_url=emulator.base_url,
                rate_limit=False,
                pacing=pacing,
                env={},
            )
            with Journal(Path(tmp) / "runs.sqlite3") as journal:
                async with connection:
                    progress.pacer = connection.pacer
                    started = time.monotonic()
                    result = await run_workflow(
                        workflow,
                        {"recipients": recipients},
                        connection,
                        journal,
                        progress=progress,
                    )
                    submitted = time.monotonic() - started
            replay = _replay(list(emulator.state.store.all()))
            # Let the queues drain, on the fast clock, so the statuses can be counted.
            await clock.sleep(max(0.0, replay["end"] - clock.now()) + 5)
            stats = emulator.stats()
    return {
        "result": result,
        "replay": replay,
        "stats": stats,
        "submitted_real_s": submitted,
        "predictions": progress.predictions,
    }


def _bench(opts: argparse.Namespace) -> int:
    from connector._twilio import count_segments

    load = os.getloadavg()
    began = time.monotonic()
    out = asyncio.run(_run(opts))
    wall = time.monotonic() - began
    replay, stats, result = out["replay"], out["stats"], out["result"]
    segments = sum(count_segments(BODIES[i % len(BODIES)]) for i in range(opts.count))
    rate = sum(POOL.values())
    limit = segments / rate
    took = replay["end"] - replay["first"]
    queues = stats["queues"]
    refused = sum(s["refused"] for s in queues["senders"].values())
    overflowed = sum(s["overflowed"] for s in queues["senders"].values())
    expired = sum(s["expired"] for s in queues["senders"].values())
    answered_429 = stats["throttled"] + queues["account_refused"]
    failed_items = sum(1 for item in result.steps[0].items if item.status == "failed")
    print(
        f"{opts.count} messages, {segments} segments, pool {', '.join(f'{s} {r:g}/s' for s, r in POOL.items())}"
    )
    print(
        f"clock x{opts.scale:g}, horizon {opts.horizon:g} s, emulator queue limit "
        f"{opts.queue_limit:g} s, concurrency {opts.concurrency}; load average {load[0]:.2f} "
        f"before, {os.cpu_count()} cores"
    )
    print(f"physical limit: {segments} segments / {rate:g} per s = {limit:.1f} s (emulated)")
    print(
        f"broadcast:      first create to last segment out = {took:.1f} s "
        f"({(took / limit - 1) * 100:+.2f}% of the limit)"
    )
    print(
        f"answers:        21611 x{refused}, 30001 x{overflowed}, expired x{expired}, "
        f"429 x{answered_429}; failed items {failed_items}; run {result.status}"
    )
    print(f"idle while work remained (s): {json.dumps(replay['idle'])}")
    print(f"finished before the last sender (s): {json.dumps(replay['tail'])}")
    print(f"segments per sender: {json.dumps(replay['segments'])}")
    for done, at, predicted in out["predictions"]:
        print(
            f"expected finish at {done:>6} sent: {predicted - replay['first']:8.1f} s "
            f"(actual {took:.1f} s, predicted {at - replay['first']:.1f} s in)"
        )
    print(
        f"real time: {out['submitted_real_s']:.1f} s to submit, {wall:.1f} s in all "
        f"(the emulated {took:.0f} s at x{opts.scale:g} is {took / opts.scale:.1f} s)"
    )
    ok = (
        took <= limit * 1.02
        and refused == overflowed == answered_429 == 0
        and result.ok
        and all(seconds < 1.0 for seconds in replay["idle"].values())
    )
    return 0 if ok else 1


def main() -> None:
    """Parse options and run the benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=30.0, help="clock speed-up")
    parser.add_argument("--horizon", type=float, default=120.0, help="emulated seconds")
    parser.add_argument("--queue-limit", type=float, default=300.0, help="emulated seconds")
    parser.add_argument("--concurrency", type=int, default=200)
    opts = parser.parse_args()
    if not 1 <= opts.count <= 50_000:
        parser.error("--count must be between 1 and 50,000")
    # The journal syncs every item to disk; on tmpfs that costs little, and the
    # benchmark measures pacing, not the disk.
    opts.tmp = "/dev/shm" if os.path.isdir("/dev/shm") else None
    sys.exit(_bench(opts))


if __name__ == "__main__":
    main()
