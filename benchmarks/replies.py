# SPDX-License-Identifier: MIT
"""
Waiting for replies at volume: what N people waiting up to a day each cost the local
runner.

A survey (one question to each of N recipients, then ``twilio/wait_for_reply`` with a
day's timeout and a look every 30 s) runs in process against an in-process emulator
on a manual clock; the run's clock is the emulator's, and time jumps to the end of each
of the run's sleeps, posting on the way the answers that fall due (80% of the people
answer, at random moments of the day; 5% first send something that is no answer). It
prints the asyncio tasks alive while people wait, the peak of traced memory during the
wait step, the lists the emulator answered, the journal's bytes per item, and the CPU
the run took.

    python benchmarks/replies.py                   # 1,000 and 10,000 people
    python benchmarks/replies.py --counts 100000   # a hundred thousand (minutes)

Loopback only; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from connector import Connection
from connector.emulator import EmulatorConfig, EmulatorServer, ManualClock
from connector.workflow import Journal, load_workflow, run_workflow


SENDER = "+15005550006"
DAY = 86400.0

WORKFLOW = """
name: replies-benchmark
inputs:
  people: {type: array}
steps:
  - id: ask
    uses: twilio/send_text_message
    for_each: ${{ inputs.people }}
    concurrency: 50
    with: {from: "+15005550006", to: "${{ item }}", body: "A or B?"}
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{ steps.ask.outputs[?sid] }}
    concurrency: 10
    with:
      from: "+15005550006"
      to: ${{ item.to }}
      after: ${{ item.date_created }}
      keywords: [A, B]
      timeout: 86400
      poll_interval: 30
outputs:
  replied: ${{ length(steps.wait.outputs[?status == 'replied']) }}
  timed_out: ${{ length(steps.wait.outputs[?status == 'timed_out']) }}
"""


class AnsweringClock:
    """The emulator's clock; each sleep jumps ahead, posting the answers due meanwhile."""

    def __init__(self, emulator: EmulatorServer, answers: list[tuple[float, str, str]]) -> None:
        self.emulator = emulator
        self.clock: Any = emulator.state.clock
        self.answers = sorted(answers)
        self.start = self.clock.now()
        self.tasks_seen = 0
        self.sleeps = 0

    def now(self) -> float:
        return float(self.clock.now())

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.tasks_seen = max(self.tasks_seen, len(asyncio.all_tasks()))
        due = self.now() + seconds
        await asyncio.sleep(0)
        while self.answers and self.start + self.answers[0][0] <= due:
            at, person, body = self.answers.pop(0)
            self._advance_to(self.start + at)
            self.emulator.state.receive(to=SENDER, from_=person, body=body)
        self._advance_to(due)

    def _advance_to(self, moment: float) -> None:
        if moment > self.now():
            self.emulator.advance(moment - self.now())


async def measure(count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    people = [f"+1555{n:07d}" for n in range(count)]
    answers: list[tuple[float, str, str]] = []
    for person in people:
        roll = rng.random()
        if roll < 0.05:
            answers.append((rng.uniform(1, DAY / 2), person, "what is this about?"))
        if roll < 0.8:
            answers.append((rng.uniform(60, DAY - 60), person, rng.choice(["A", "b", "B."])))
    config = EmulatorConfig(
        host="127.0.0.1", port=0, throttle=None, delivery_delay=0.0, clock=ManualClock()
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "survey.yaml"
        path.write_text(WORKFLOW)
        async with EmulatorServer(config) as emulator:
            clock = AnsweringClock(emulator, answers)
            with Journal(Path(folder) / "runs.sqlite3") as journal:
                async with Connection(
                    emulator.account_sid,
                    emulator.auth_token,
                    base_url=emulator.base_url,
                    env={},
                    rate_limit=False,
                    pacing=False,
                ) as conn:
                    cpu = time.process_time()
                    wall = time.perf_counter()
                    tracemalloc.start()
                    baseline = len(asyncio.all_tasks())
                    result = await run_workflow(
                        load_workflow(path), {"people": people}, conn, journal, clock=clock
                    )
                    _, peak = tracemalloc.get_traced_memory()
                    tracemalloc.stop()
                    cpu = time.process_time() - cpu
                    wall = time.perf_counter() - wall
                requests = emulator.stats()["requests"]
            size = (Path(folder) / "runs.sqlite3").stat().st_size
    return {
        "people": count,
        "status": result.status,
        "outputs": dict(result.outputs),
        "tasks_alive_while_waiting": clock.tasks_seen - baseline,
        "traced_peak_mb": round(peak / 2**20, 1),
        "lists": requests - count,  # less the questions
        "looks_per_day_at_30s": int(DAY / 30) + 1,
        "sleeps": clock.sleeps,
        "journal_bytes_per_person": round(size / count),
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    for count in args.counts:
        print(asyncio.run(measure(count, args.seed)), flush=True)


if __name__ == "__main__":
    main()
