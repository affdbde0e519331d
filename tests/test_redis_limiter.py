"""
The Redis-backed shared limiter, against a private redis-server started for these tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence

import pytest
import redis
from redis_server import free_port

from connector import Connection, HttpRequest, HttpResponse, MockTransport, Pacing
from connector._ratelimit import ARRIVAL_MARGIN
from connector.emulator import Clock
from connector.redis_limiter import KEY_PREFIX, RedisLimiter, RedisSenderBook, limit_key
from connector.testing import EmulatorFactory


# Starts a redis-server (and, for one test, four processes).
pytestmark = pytest.mark.slow


def _unique_key() -> str:
    return f"test:{uuid.uuid4().hex}"


def _max_in_window(times: Sequence[float], period: float) -> int:
    # The most acquisitions in any half-open window [t, t + period), over all start
    # times t; it is enough to start windows at acquisitions.
    ordered = sorted(times)
    best = 0
    end = 0
    for start, t in enumerate(ordered):
        while end < len(ordered) and ordered[end] < t + period:
            end += 1
        best = max(best, end - start)
    return best


async def test_admits_calls_then_waits_for_the_oldest_to_leave(redis_url: str) -> None:
    """Up to `calls` acquisitions go at once; the next waits until the first leaves the window and its margin."""
    async with RedisLimiter(redis_url, _unique_key(), calls=5, period=0.4) as limiter:
        started = time.monotonic()
        times = [await limiter.reserve() for _ in range(5)]
        burst = time.monotonic() - started
        sixth = await limiter.reserve()
    assert limiter.margin == ARRIVAL_MARGIN
    assert burst < 0.3
    assert sixth - times[0] >= 0.4 + ARRIVAL_MARGIN
    assert sixth - times[0] < 0.4 + ARRIVAL_MARGIN + 0.25


async def test_four_processes_share_one_budget(redis_url: str) -> None:
    """Four processes flooding one key never exceed the limit in any window, yet use >= 90% of it."""
    calls, period, run_for = 100, 2.0, 6.0
    key = _unique_key()
    # Each process floods with 8 concurrent tasks and prints the server time of every
    # acquisition (microseconds) as JSON. Tasks stop between acquisitions once the run is
    # over, rather than being cancelled inside a Redis command.
    code = f"""
import asyncio, json, sys, time
from connector.redis_limiter import RedisLimiter

async def main():
    got = []
    deadline = time.monotonic() + {run_for}
    async with RedisLimiter({redis_url!r}, {key!r}, {calls}, {period}) as limiter:
        async def flood():
            while time.monotonic() < deadline:
                got.append(round(await limiter.reserve() * 1_000_000))
        await asyncio.gather(*(flood() for _ in range(8)))
    json.dump(got, sys.stdout)

asyncio.run(main())
"""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        for _ in range(4)
    ]
    try:
        # Each runs for 6 s; the rest is start-up, generous for a loaded 2-core machine.
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in processes)), timeout=90
        )
    except TimeoutError:
        for process in processes:
            if process.returncode is None:
                process.kill()
        errors = [(await p.communicate())[1].decode(errors="replace") for p in processes]
        pytest.fail(f"the flooding processes did not finish in 90 s: {errors}")
    times: list[float] = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        mine = json.loads(out)
        assert mine, "every process got some of the budget"
        times += [t / 1_000_000 for t in mine]
    most = _max_in_window(times, period)
    assert most <= calls, most
    # The aggregate rate over the three full windows from the first acquisition.
    first = min(times)
    windows = 3
    admitted = sum(1 for t in times if t < first + windows * period)
    assert admitted >= 0.9 * windows * calls, admitted


async def test_accounts_have_separate_budgets(redis_url: str) -> None:
    """Each account gets its own key, so one account's flood leaves another's budget intact."""
    sid_a, sid_b = "AC" + "a" * 32, "AC" + "b" * 32
    assert limit_key(sid_a) == KEY_PREFIX + sid_a == "twilio-connector:limit:" + sid_a
    default = RedisLimiter.for_account(redis_url, sid_a)
    assert (default.key, default.calls, default.period) == (limit_key(sid_a), 1200, 60)
    assert default.margin == ARRIVAL_MARGIN
    a = RedisLimiter.for_account(redis_url, sid_a, calls=2, period=30, margin=0)
    b = RedisLimiter.for_account(redis_url, sid_b, calls=2, period=30, margin=0)
    try:
        await a.acquire()
        await a.acquire()
        async with asyncio.timeout(1):
            await b.acquire()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await a.acquire()
    finally:
        await a.aclose()
        await b.aclose()
        redis.Redis.from_url(redis_url).delete(a.key, b.key)


async def test_idle_keys_expire(redis_url: str) -> None:
    """The key carries a TTL just past the window (its margin included), so idle accounts leave nothing behind."""
    key = _unique_key()
    async with RedisLimiter(redis_url, key, calls=3, period=5) as limiter:
        await limiter.acquire()
    with redis.Redis.from_url(redis_url) as client:
        ttl_ms = client.pttl(key)
    assert 5000 + ARRIVAL_MARGIN * 1000 < ttl_ms <= 6000 + ARRIVAL_MARGIN * 1000


def test_rejects_impossible_limits() -> None:
    """A limit needs at least one call, a positive finite period and a jitter within it."""
    for calls, period in ((0, 1.0), (1, 0.0), (1, -1.0), (1, float("inf"))):
        with pytest.raises(ValueError, match="a limit needs"):
            RedisLimiter("redis://127.0.0.1:1/0", "k", calls, period)
    with pytest.raises(ValueError, match="jitter"):
        RedisLimiter("redis://127.0.0.1:1/0", "k", 1, 1.0, jitter=2.0)
    with pytest.raises(ValueError, match="margin"):
        RedisLimiter.for_account("redis://127.0.0.1:1/0", "AC" + "0" * 32, margin=-0.1)


async def test_closed_limiter_refuses(redis_url: str) -> None:
    """After aclose the limiter refuses to acquire instead of letting calls through."""
    limiter = RedisLimiter(redis_url, _unique_key(), calls=10, period=1)
    await limiter.acquire()
    await limiter.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await limiter.acquire()


def test_bound_to_one_event_loop(redis_url: str) -> None:
    """Using one limiter from a second event loop is refused with a clear error."""
    limiter = RedisLimiter(redis_url, _unique_key(), calls=10, period=1)

    async def use() -> None:
        await limiter.acquire()

    async def use_then_close() -> None:
        with pytest.raises(RuntimeError, match="another event loop"):
            await limiter.acquire()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(use())
        asyncio.run(use_then_close())
        loop.run_until_complete(limiter.aclose())
    finally:
        loop.close()


async def test_unreachable_redis_raises(redis_url: str) -> None:
    """When Redis is down, acquire raises instead of letting calls through unmetered."""
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", _unique_key(), 5, 1.0)
    try:
        with pytest.raises(redis.ConnectionError):
            await limiter.acquire()
    finally:
        await limiter.aclose()


async def test_connections_sharing_a_limiter_draw_no_429(
    redis_url: str, twilio_emulator_factory: EmulatorFactory
) -> None:
    """Two connections flooding one account through RedisLimiters sharing a key never hit the throttle."""
    # The emulator's throttle runs on the real clock here. Requests reach it a few
    # milliseconds after Redis admits them, and not always in order: the limiter's
    # built-in margin (ARRIVAL_MARGIN) absorbs that, with the throttle's own limit.
    emulator = await twilio_emulator_factory(throttle=(20, 1.0), clock=Clock())
    key = limit_key(emulator.account_sid)
    redis.Redis.from_url(redis_url).delete(key)
    limiters = [RedisLimiter(redis_url, key, calls=20, period=1.0) for _ in range(2)]
    connections = [
        Connection(
            emulator.account_sid,
            emulator.auth_token,
            base_url=emulator.base_url,
            limiter=limiter,
            env={},
        )
        for limiter in limiters
    ]
    sent = 0

    async def flood(conn: Connection) -> None:
        nonlocal sent
        for _ in range(24):
            await conn.call(
                "send_text_message",
                {"from": "+15005550006", "to": "+14155550100", "body": "hi"},
            )
            sent += 1

    try:
        async with connections[0] as first, connections[1] as second:
            await asyncio.gather(flood(first), flood(second))
    finally:
        for limiter in limiters:
            await limiter.aclose()
    assert sent == 48
    assert emulator.stats()["throttled"] == 0


async def test_the_sender_book_chooses_books_and_adjusts(redis_url: str) -> None:
    """The shared book picks the sender that finishes first (or the sticky one), books, refunds and saturates."""
    book = RedisSenderBook(redis_url, f"{_unique_key()}:")
    senders = ["+15005550006", "+15005550010"]
    try:
        first = await book.book(senders, [2.0, 2.0], [10.0, 10.0], None)
        second = await book.book(senders, [2.0, 2.0], [10.0, 10.0], None)
        third = await book.book(senders, [2.0, 1.0], [10.0, 10.0], None)
        assert [first.sender, second.sender, third.sender] == [*senders, senders[1]]
        assert third.drains_at - first.drains_at == pytest.approx(1.0, abs=0.05)
        assert first.wait == second.wait == 0
        await book.remember("+15551230000", senders[0])
        sticky = await book.book(senders, [2.0, 2.0], [3.0, 3.0], "+15551230000")
        assert sticky.sender == senders[0]
        # Its queue now holds 4 s of work and the horizon is 3 s: a second's wait.
        assert sticky.wait == pytest.approx(1.0, abs=0.05)
        await book.refund(sticky)
        again = await book.book(senders[:1], [2.0], [3.0], None)
        assert again.drains_at == pytest.approx(sticky.drains_at, abs=0.05)
        await book.saturate(senders[1], 600.0)
        full = await book.book(senders[1:], [1.0], [60.0], None)
        assert full.wait == pytest.approx(541.0, abs=0.1)
    finally:
        await book.aclose()


async def test_pacing_holds_across_connections_sharing_a_book(redis_url: str) -> None:
    """Two connections feeding one sender through one Redis book never let its queue pass the horizon."""
    prefix = f"{_unique_key()}:"
    arrivals: list[float] = []

    def twilio(request: HttpRequest) -> HttpResponse:
        arrivals.append(time.monotonic())
        return HttpResponse(201, json.dumps({"sid": "SM" + "0" * 32, "status": "queued"}).encode())

    books = [RedisSenderBook(redis_url, prefix) for _ in range(2)]
    pacing = [Pacing(senders={"+15005550006": "20/s"}, horizon=0.5, book=book) for book in books]
    connections = [
        Connection(
            "AC" + "0" * 32,
            "token",
            transport=MockTransport(twilio),
            rate_limit=False,
            pacing=p,
            env={},
        )
        for p in pacing
    ]

    async def flood(conn: Connection) -> None:
        await asyncio.gather(
            *(
                conn.call(
                    "send_text_message",
                    {"from": "+15005550006", "to": f"+1415555{i:04d}", "body": "hi"},
                )
                for i in range(30)
            )
        )

    try:
        async with connections[0] as first, connections[1] as second:
            await asyncio.gather(flood(first), flood(second))
    finally:
        for book in books:
            await book.aclose()
    # Replay Twilio's queue of the sender (20 segments/s) over the arrivals.
    free, peak = 0.0, 0.0
    for at in sorted(arrivals):
        free = max(free, at) + 1 / 20
        peak = max(peak, free - at)
    assert len(arrivals) == 60
    assert peak <= 0.5 + 0.05
    # 60 segments at 20/s with 0.5 s queued at once: the last leaves at about 2.5 s.
    assert max(arrivals) - min(arrivals) >= 2.4


async def test_open_connection_shares_pacing_through_redis(redis_url: str) -> None:
    """With redis_url, open_connection keeps the senders' queues in Redis under the account's keys."""
    from connector import open_connection

    sid = "AC" + "d" * 32
    values = {"account_sid": sid, "auth_token": "token"}
    async with open_connection(values=values, redis_url=redis_url) as conn:
        assert conn.pacer is not None
        book = conn.pacer.book
        assert isinstance(book, RedisSenderBook)
        assert book.queue_key("+15005550006") == f"twilio-connector:senders:{sid}:+15005550006"
    async with open_connection(values=values, redis_url=redis_url, pacing=False) as conn:
        assert conn.pacer is None


async def test_the_shared_window_is_anchored_at_answers(redis_url: str) -> None:
    """A call counts until a period after its answer is reported: a slow answer holds the window back."""
    async with RedisLimiter(redis_url, _unique_key(), calls=2, period=0.3) as limiter:
        first = await limiter.admit()
        await limiter.admit()
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await first.done()
        third = await limiter.admit()
        waited = time.monotonic() - started
        await third.done()
    assert third.at - first.at >= 0.2 + 0.3
    assert 0.25 <= waited < 0.3 + 0.25
