"""
Client CPU time per send: how much the connector costs on top of a bare HTTP POST.

A minimal aiohttp server in its own process answers every POST with a canned Message.
From one client process, 2000 sends run at concurrency 50, three ways:

  (a) a hand-written aiohttp POST plus a JSON parse, the floor;
  (b) ``Connection.call("send_text_message", ...)`` with the rate limit and sender
      pacing lifted, as (a) and (c) have neither: validation, request building, retry
      bookkeeping and typed parsing included;
  (c) twilio-python's async client (``messages.create_async``).

The figure is the client process's CPU time (``time.process_time``) divided by the
number of sends, best of several rounds. Targets: (b)/(a) <= 1.15 and (c)/(b) >= 1.25.
A fourth line, (p), is (b) with pacing on as a connection has it by default (its
segment counting and queue estimates), the sender declared far faster than the run and
the account's rate lifted, so that nothing waits: what pacing costs per send. It also times the cold start of
``twilio-connector actions``.

    python benchmarks/client_overhead.py [--sends 2000] [--concurrency 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web


ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "benchmark-token"
SID = "SM" + "a" * 32
MESSAGE = {
    "account_sid": ACCOUNT_SID,
    "api_version": "2010-04-01",
    "body": "Hello from the benchmark",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_sent": None,
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+15005550006",
    "messaging_service_sid": None,
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": "USD",
    "sid": SID,
    "status": "queued",
    "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}/Media.json"},
    "to": "+15551234567",
    "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}.json",
}
INPUTS = {"from": "+15005550006", "to": "+15551234567", "body": "Hello from the benchmark"}


def serve(port: int, ready: Any) -> None:
    """The canned-answer server (runs in its own process)."""
    body = json.dumps(MESSAGE).encode()

    async def create(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, status=201, content_type="application/json")

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def drive(send: Callable[[], Awaitable[Any]], sends: int, concurrency: int) -> None:
    remaining = iter(range(sends))

    async def worker() -> None:
        for _ in remaining:
            await send()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(name: str, base: str, sends: int, concurrency: int) -> float:
    """CPU microseconds per send for one round of approach *name*."""
    async with _client(name, base) as send:
        await drive(send, concurrency * 4, concurrency)  # open connections, warm caches
        start = time.process_time()
        await drive(send, sends, concurrency)
        cpu = time.process_time() - start
    return cpu / sends * 1e6


class _client:
    """An async context manager giving a send() for approach *name*."""

    def __init__(self, name: str, base: str) -> None:
        self.name, self.base = name, base
        self._close: Callable[[], Awaitable[Any]] | None = None

    async def __aenter__(self) -> Callable[[], Awaitable[Any]]:
        url = f"{self.base}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        if self.name == "a":
            session = aiohttp.ClientSession(auth=aiohttp.BasicAuth(ACCOUNT_SID, AUTH_TOKEN))
            self._close = session.close
            form = {"From": INPUTS["from"], "To": INPUTS["to"], "Body": INPUTS["body"]}

            async def send_a() -> Any:
                async with session.post(url, data=form) as response:
                    return json.loads(await response.read())

            return send_a
        if self.name in ("b", "p"):
            from connector import Connection, Pacing

            # Without a declared rate, pacing holds +15005550006 to a long code's 1
            # segment/s and the account to 2000/s, and the figure would be the idle loop's.
            pacing = (
                Pacing(senders={INPUTS["from"]: "1000000/s"}, account_rate=None)
                if self.name == "p"
                else False
            )
            conn = Connection(
                ACCOUNT_SID, AUTH_TOKEN, base_url=self.base, rate_limit=False, pacing=pacing, env={}
            )
            await conn.__aenter__()
            self._close = conn.aclose

            async def send_b() -> Any:
                return await conn.call("send_text_message", INPUTS)

            return send_b
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.rest import Client

        http = AsyncTwilioHttpClient()
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
        client.api.base_url = self.base
        self._close = http.close

        async def send_c() -> Any:
            return await client.messages.create_async(
                from_=INPUTS["from"], to=INPUTS["to"], body=INPUTS["body"]
            )

        return send_c

    async def __aexit__(self, *exc: object) -> None:
        assert self._close is not None
        await self._close()


async def connector_only(sends: int) -> float:
    """
    CPU microseconds per call spent in the connector itself: validation, the limiter (on,
    with a limit too high to wait; pacing off, as in (b)), request building, retry bookkeeping and typed
    parsing, with a mock transport returning the canned answer instead of the network.
    """
    from connector import Connection, HttpResponse, MockTransport

    canned = HttpResponse(201, json.dumps(MESSAGE).encode())
    transport = MockTransport(lambda request: canned)
    conn = Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=transport, rate_limit=(10**9, 1.0), pacing=False, env={}
    )
    async with conn:
        for _ in range(1000):
            await conn.call("send_text_message", INPUTS)
        transport.requests.clear()
        start = time.process_time()
        for _ in range(sends):
            await conn.call("send_text_message", INPUTS)
        cpu = time.process_time() - start
    return cpu / sends * 1e6


def cold_start(runs: int = 5) -> float:
    """Median wall seconds of `twilio-connector actions` in a fresh interpreter."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "connector", "actions"], check=True, stdout=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # twilio-python uses aiohttp APIs aiohttp 3.14 deprecates
    for name in ("TWILIO_EDGE", "TWILIO_REGION"):
        os.environ.pop(name, None)

    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # bounded wait for the port to accept connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        # Interleave the approaches round by round so that drift in the machine's speed
        # affects all three alike; keep each one's best round.
        rounds: dict[str, list[float]] = {"a": [], "b": [], "c": [], "p": []}
        for _ in range(args.rounds):
            for name, results in rounds.items():
                results.append(asyncio.run(measure(name, base, args.sends, args.concurrency)))
        figures = {name: min(results) for name, results in rounds.items()}
    finally:
        server.terminate()
        server.join(5)
    a, b, c, p = figures["a"], figures["b"], figures["c"], figures["p"]
    print(f"sends per round: {args.sends}, concurrency {args.concurrency}, best of {args.rounds}")
    print(f"(a) hand-written aiohttp POST + JSON : {a:7.1f} us CPU per send")
    print(f"(b) connector Connection.call        : {b:7.1f} us CPU per send")
    print(f"(c) twilio-python async client       : {c:7.1f} us CPU per send")
    print(f"(p) (b) with sender pacing on        : {p:7.1f} us CPU per send")
    print(f"connector overhead (b - a)           : {b - a:7.1f} us per call")
    print(f"pacing's cost (p - b)                : {p - b:7.1f} us per send")
    print(f"(b)/(a) = {b / a:.3f}   (target <= 1.15)")
    print(f"(c)/(b) = {c / b:.3f}   (target >= 1.25)")
    own = min(asyncio.run(connector_only(args.sends * 5)) for _ in range(args.rounds))
    print(f"connector's own work per call (mock transport, limiter on): {own:.1f} us (target < 20)")
    print(f"`twilio-connector actions` cold start: {cold_start() * 1000:.0f} ms (median of 5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
