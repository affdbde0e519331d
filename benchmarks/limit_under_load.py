# SPDX-License-Identifier: MIT
"""
Does a connection's call limit hold as the server counts it, on a busy machine?

A canned Twilio (201 for every send) runs in its own process and records, for every
request, when it arrived and when the client's limiter admitted it (sent along in a
header; both are ``time.monotonic()``, one clock for every process of the machine).
Meanwhile one CPU hog per core spins at the lowest priority (``nice 19``). The client
floods the server through a :class:`connector.Connection` whose limiter is the one every
connection uses (``SlidingWindowLimiter``, its window anchored at answers), and the
script prints, per run: the most arrivals in any window of the limit's period against
the limit, the sustained rate at the server against the limit's rate, and the spread
of the delay from admission to arrival (what a fixed margin would have to cover).

    python benchmarks/limit_under_load.py                  # 5 runs of 350 sends at 100/5 s
    python benchmarks/limit_under_load.py --margin 0.05    # a fixed 50 ms margin instead
    python benchmarks/limit_under_load.py --no-hogs        # on an idle machine
    python benchmarks/limit_under_load.py --loop asyncio   # on asyncio's loop (uvloop's by default)

Loopback only; bounded (at most 5,000 sends per run, 20 runs).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "limit-under-load"
ADMITTED = "X-Bench-Admitted"
CANNED = {
    "sid": "SM" + "0" * 32,
    "account_sid": ACCOUNT_SID,
    "to": "+15551230000",
    "from": "+15005550006",
    "body": "x",
    "status": "queued",
    "direction": "outbound-api",
    "num_segments": "1",
    "num_media": "0",
    "api_version": "2010-04-01",
    "date_created": "Mon, 30 Nov 2026 00:00:00 +0000",
    "date_updated": "Mon, 30 Nov 2026 00:00:00 +0000",
    "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'0' * 32}.json",
}


# -- the canned server (its own process) --------------------------------------------


def _serve() -> None:
    from aiohttp import web

    arrivals: list[tuple[float, float]] = []
    body = json.dumps(CANNED)

    async def create(request: web.Request) -> web.Response:
        arrived = time.monotonic()
        arrivals.append((arrived, float(request.headers.get(ADMITTED, "nan"))))
        return web.Response(status=201, text=body, content_type="application/json")

    async def collect(request: web.Request) -> web.Response:
        taken = list(arrivals)
        arrivals.clear()
        return web.json_response(taken)

    async def main() -> None:
        app = web.Application()
        app.router.add_post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", create)
        app.router.add_post("/arrivals", collect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the hogs -------------------------------------------------------------------------


def _hog() -> None:
    os.nice(19)
    while True:
        pass


def _start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, __file__, "--hog"]) for _ in range(count)]


# -- the client -----------------------------------------------------------------------


class MonotonicClock:
    """``time.monotonic()``: the clock the server records arrivals on."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _flood(
    base_url: str, sends: int, calls: int, period: float, margin: float | None
) -> None:
    from connector import AiohttpTransport, Connection, HttpRequest, HttpResponse
    from connector._ratelimit import Admission, SlidingWindowLimiter

    limiter = SlidingWindowLimiter(calls, period, margin=margin or 0.0, clock=MonotonicClock())
    admitted: dict[asyncio.Task[Any] | None, float] = {}

    class Recording:
        """The connection's limiter, noting each admission for the request that took it."""

        async def acquire(self) -> None:
            # A fixed margin: answers are not reported.
            admitted[asyncio.current_task()] = await limiter.reserve()

        async def admit(self) -> Admission:
            admission = await limiter.admit()
            admitted[asyncio.current_task()] = admission.at
            return admission

    if margin is not None:
        Recording.admit = None  # type: ignore[assignment,method-assign]

    class Stamping(AiohttpTransport):
        """Sends each request with the time its slot was admitted."""

        async def send(self, request: HttpRequest) -> HttpResponse:
            slot = admitted.pop(asyncio.current_task(), float("nan"))
            headers = {**request.headers, ADMITTED: repr(slot)}
            stamped = HttpRequest(request.method, request.url, request.body, headers)
            return await super().send(stamped)

    connection = Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        base_url=base_url,
        transport=Stamping(),
        limiter=Recording(),
        env={},
    )
    async with connection:
        await asyncio.gather(
            *(
                connection.call(
                    "send_text_message",
                    {"from": "+15005550006", "to": f"+1555123{i:04d}", "body": f"load {i}"},
                )
                for i in range(sends)
            )
        )


def _busiest(times: list[float], window: float) -> int:
    """The most events in any closed window of *window* seconds."""
    ordered = sorted(times)
    return max(bisect.bisect_right(ordered, t + window) - i for i, t in enumerate(ordered))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _collect(base_url: str) -> list[tuple[float, float]]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(f"{base_url}/arrivals") as r:
        return [(float(a), float(b)) for a, b in await r.json()]


def _report(
    run: int, pairs: list[tuple[float, float]], calls: int, period: float
) -> dict[str, Any]:
    arrivals = [a for a, _ in pairs]
    delays = [a - b for a, b in pairs]
    rate = (len(arrivals) - 1) / (max(arrivals) - min(arrivals))
    return {
        "run": run,
        "sends": len(pairs),
        "max_in_window": _busiest(arrivals, period),
        "limit": calls,
        "rate_per_s": round(rate, 3),
        "rate_share": round(rate / (calls / period), 4),
        "delay_ms": {
            "min": round(min(delays) * 1000, 2),
            "p50": round(statistics.median(delays) * 1000, 2),
            "p99": round(_percentile(delays, 0.99) * 1000, 2),
            "p999": round(_percentile(delays, 0.999) * 1000, 2),
            "max": round(max(delays) * 1000, 2),
        },
        "spread_ms": round((max(delays) - min(delays)) * 1000, 2),
    }


async def _runs(
    opts: argparse.Namespace, base_url: str, margin: float | None
) -> list[dict[str, Any]]:
    results = []
    for run in range(1, opts.runs + 1):
        await _flood(base_url, opts.sends, opts.calls, opts.period, margin)
        figures = _report(run, await _collect(base_url), opts.calls, opts.period)
        results.append(figures)
        print(json.dumps(figures), flush=True)
    return results


def _bench(opts: argparse.Namespace) -> int:
    margin = opts.margin
    how = (
        "windows anchored at answers" if margin is None else f"a fixed {margin * 1000:g} ms margin"
    )
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        load = os.getloadavg()
        if opts.hogs:
            hogs = _start_hogs(os.cpu_count() or 1)
        print(
            f"limit {opts.calls}/{opts.period:g}s, {how}, "
            f"{opts.sends} sends per run, {len(hogs)} nice-19 hogs, "
            f"{os.cpu_count()} cores, load average {load[0]:.2f} before the hogs, "
            f"the client on {opts.loop}'s event loop",
            flush=True,
        )
        factory = None
        if opts.loop == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            results = runner.run(_runs(opts, base_url, margin))
    finally:
        for process in [*hogs, server]:
            process.terminate()
        for process in [*hogs, server]:
            process.wait(timeout=10)
    held = sum(1 for r in results if r["max_in_window"] <= opts.calls)
    fast = sum(1 for r in results if r["rate_share"] >= 0.98)
    spread = max(r["spread_ms"] for r in results)
    print(
        f"limit held in {held}/{len(results)} runs (most in a {opts.period:g} s window: "
        f"{max(r['max_in_window'] for r in results)} of {opts.calls}); "
        f"rate >= 98% in {fast}/{len(results)} (lowest "
        f"{min(r['rate_share'] for r in results):.2%}); "
        f"worst admission-to-arrival spread {spread} ms ({how})"
    )
    return 0 if held == fast == len(results) else 1


def main() -> None:
    """Parse options; run the benchmark, or the server or a hog (internal)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sends", type=int, default=350)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--period", type=float, default=5.0)
    parser.add_argument(
        "--margin",
        type=float,
        help="hold the window with this fixed margin (seconds) instead of anchoring it at answers",
    )
    parser.add_argument("--no-hogs", dest="hogs", action="store_false")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        help="the client's event loop (default: uvloop's where installed, as the commands use)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hog", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        _serve()
        return
    if opts.hog:
        _hog()
        return
    if not (1 <= opts.runs <= 20 and 1 <= opts.sends <= 5000):
        parser.error("at most 20 runs of at most 5,000 sends")
    sys.exit(_bench(opts))


if __name__ == "__main__":
    main()
