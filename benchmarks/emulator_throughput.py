# SPDX-License-Identifier: MIT
"""
Benchmark the emulator: sustained creates/s and p50/p99 latency at a fixed rate.

The emulator runs in this process with its SQLite database on disk (WAL, full status
lifecycle with ``--delivery-delay 0``); the load generator runs in a separate process
(this script with ``--generate``), only against 127.0.0.1, bounded in count and time.

    python benchmarks/emulator_throughput.py [--seconds 10] [--concurrency 32] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAX_REQUESTS = 200_000


async def _generate(opts: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    if not opts.url.startswith("http://127.0.0.1:"):
        raise SystemExit("the load generator only targets 127.0.0.1")
    form = {"To": "+15551230001", "From": "+15005550006", "Body": "benchmark message"}
    headers = {"Authorization": aiohttp.encode_basic_auth(opts.sid, opts.token)}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + opts.seconds
    connector = aiohttp.TCPConnector(limit=opts.concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            started = time.perf_counter()
            async with session.post(opts.url, data=form) as response:
                await response.read()
                if response.status != 201:
                    errors += 1
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        if opts.rate:
            # Open-loop pacing: requests start on schedule whether or not earlier ones ended.
            tasks = []
            interval = 1.0 / opts.rate
            for index in range(min(MAX_REQUESTS, int(opts.rate * opts.seconds))):
                delay = started + index * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
        else:

            async def worker() -> None:
                while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                    await one()

            await asyncio.gather(*(worker() for _ in range(opts.concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


async def _run_generator(url: str, sid: str, token: str, **options: Any) -> dict[str, Any]:
    args = [sys.executable, __file__, "--generate", "--url", url, "--sid", sid]
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    # The token goes through the environment: a command line is visible to `ps`.
    env = {**os.environ, "EMULATOR_BENCH_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=options["seconds"] + 60)
    return dict(json.loads(out))


async def _main(opts: argparse.Namespace) -> None:
    from connector.emulator import EmulatorConfig, EmulatorServer

    with tempfile.TemporaryDirectory() as tmp:
        config = EmulatorConfig(
            db_path=str(Path(tmp) / "bench.db"), throttle=None, delivery_delay=0.0
        )
        async with EmulatorServer(config) as emu:
            url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
            common = {"seconds": opts.seconds, "concurrency": opts.concurrency}
            burst = await _run_generator(url, emu.account_sid, emu.auth_token, rate=0, **common)
            print(f"sustained creates ({opts.concurrency} concurrent): {json.dumps(burst)}")
            paced = await _run_generator(
                url, emu.account_sid, emu.auth_token, rate=opts.rate, **common
            )
            print(f"latency at {opts.rate}/s: {json.dumps(paced)}")
            print(f"stored messages: {emu.stats()['messages']['total']}")


def main() -> None:
    """Parse options and run the benchmark or, with --generate, the load generator."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--sid", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    opts.token = os.environ.get("EMULATOR_BENCH_TOKEN", "")
    if opts.generate:
        print(json.dumps(asyncio.run(_generate(opts))))
    else:
        asyncio.run(_main(opts))


if __name__ == "__main__":
    main()
