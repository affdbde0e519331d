"""
The per-connection limit, proven on a controlled clock: the tests run on an event loop
whose time jumps to the next timer whenever every task is waiting (tests/virtual_clock.py).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random

import pytest
from aiolimiter import AsyncLimiter
from conftest import ACCOUNT_SID, AUTH_TOKEN
from virtual_clock import run_virtual

from connector import Connection, HttpRequest, HttpResponse, MockTransport, RetryPolicy
from connector._ratelimit import ARRIVAL_MARGIN, SlidingWindowLimiter, sliding_window_limiter


SID = "SM" + "2" * 32
OK = HttpResponse(200, json.dumps({"sid": SID, "status": "sent"}).encode())


def busiest_window(times: list[float], window: float) -> int:
    """The most events in any closed window of *window* seconds."""
    times = sorted(times)
    return max(bisect.bisect_right(times, t + window) - i for i, t in enumerate(times))


async def flood(limiter: AsyncLimiter | SlidingWindowLimiter, count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        async with limiter:
            times.append(loop.time())

    await asyncio.gather(*(one() for _ in range(count)))
    return times


async def slots(limiter: SlidingWindowLimiter, count: int) -> list[float]:
    """The admission times (slots) a flood of *count* concurrent callers gets."""
    return list(await asyncio.gather(*(limiter.reserve() for _ in range(count))))


def test_aiolimiter_defaults_would_let_twice_the_limit_through() -> None:
    """The naive AsyncLimiter(1200, 60) admits far more than 1200 in a minute (why we don't use it)."""
    run_virtual(_test_aiolimiter_defaults_would_let_twice_the_limit_through())


async def _test_aiolimiter_defaults_would_let_twice_the_limit_through() -> None:
    times = await flood(AsyncLimiter(1200, 60), 2500)
    assert busiest_window(times, 60) > 2300


def test_sliding_window_bound_holds_under_a_flood() -> None:
    """At most 1200 acquisitions in any 60 s window, at 19.5/s or more sustained."""
    run_virtual(_test_sliding_window_bound_holds_under_a_flood())


async def _test_sliding_window_bound_holds_under_a_flood() -> None:
    times = await flood(sliding_window_limiter(1200, 60), 2500)
    assert busiest_window(times, 60) <= 1200
    rate = (len(times) - 1) / (max(times) - min(times))
    assert rate >= 19.5


@pytest.mark.parametrize(
    ("calls", "period"), [(1, 10), (2, 10), (3, 1), (100, 60), (600, 6), (6000, 60)]
)
def test_the_bound_holds_for_other_limits(calls: int, period: float) -> None:
    """Any (calls, period) is held as a sliding-window bound."""
    run_virtual(_test_the_bound_holds_for_other_limits(calls, period))


async def _test_the_bound_holds_for_other_limits(calls: int, period: float) -> None:
    times = await flood(sliding_window_limiter(calls, period), calls * 3)
    assert busiest_window(times, period - 1e-9) <= calls


def test_limits_must_be_positive() -> None:
    """A limit of zero calls or zero seconds, or a negative margin, is refused."""
    with pytest.raises(ValueError, match="calls >= 1"):
        sliding_window_limiter(0, 60)
    with pytest.raises(ValueError, match="period > 0"):
        sliding_window_limiter(5, 0)
    with pytest.raises(ValueError, match="margin"):
        sliding_window_limiter(5, 1, margin=-0.01)


def test_unreported_calls_count_as_answered_after_the_margin() -> None:
    """acquire() callers: no span of period + margin holds more than the limit, at 98% of the rate or more."""
    run_virtual(_test_unreported_calls_count_as_answered_after_the_margin())


async def _test_unreported_calls_count_as_answered_after_the_margin() -> None:
    limiter = sliding_window_limiter(100, 5)
    assert limiter.margin == ARRIVAL_MARGIN
    times = await slots(limiter, 350)
    assert busiest_window(times, 5 + ARRIVAL_MARGIN - 1e-6) <= 100
    rate = (len(times) - 1) / (max(times) - min(times))
    assert 0.98 * 100 / 5 <= rate <= 100 / 5


async def _flood_with_delays(
    limiter: SlidingWindowLimiter, count: int, report: bool, tail: float = 0.05, seed: int = 13
) -> list[float]:
    """Flood *limiter*; each request arrives after a delay (a share *tail* of them up to
    half a second late) and is answered 1 ms later."""
    jitter = random.Random(seed)
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    async def one() -> None:
        admission = await limiter.admit()
        if not report:
            admission.finish(admission.at + limiter.margin)
        # Mostly 1 to 5 ms; some wait up to half a second (a busy loop).
        delay = jitter.uniform(0.001, 0.005)
        if jitter.random() < tail:
            delay = jitter.uniform(0.05, 0.5)
        await asyncio.sleep(delay)
        arrivals.append(loop.time())
        await asyncio.sleep(0.001)
        if report:
            await admission.done()

    await asyncio.gather(*(one() for _ in range(count)))
    return arrivals


@pytest.mark.parametrize("report", [False, True])
def test_windows_anchored_at_answers_hold_whatever_the_jitter(report: bool) -> None:
    """With answers reported, no server window overflows however late requests arrive; assuming 50 ms does not hold."""
    run_virtual(_test_windows_anchored_at_answers_hold_whatever_the_jitter(report))


async def _test_windows_anchored_at_answers_hold_whatever_the_jitter(report: bool) -> None:
    arrivals = await _flood_with_delays(sliding_window_limiter(100, 5), 350, report)
    most = busiest_window(arrivals, 5.0)
    if report:
        assert most <= 100
        # The price: each call waits for the answer of the call a window before it.
        rate = (len(arrivals) - 1) / (max(arrivals) - min(arrivals))
        assert rate >= 0.95 * 100 / 5
    else:
        assert most > 100


def test_with_the_usual_jitter_anchoring_at_answers_costs_under_two_percent() -> None:
    """With one request in a hundred late by up to half a second, the rate stays above 98%."""
    run_virtual(_test_with_the_usual_jitter_anchoring_at_answers_costs_under_two_percent())


async def _test_with_the_usual_jitter_anchoring_at_answers_costs_under_two_percent() -> None:
    arrivals = await _flood_with_delays(sliding_window_limiter(100, 5), 350, True, tail=0.01)
    assert busiest_window(arrivals, 5.0) <= 100
    rate = (len(arrivals) - 1) / (max(arrivals) - min(arrivals))
    assert rate >= 0.98 * 100 / 5


def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    """A waiter cancelled before its slot leaves it to the next caller when nobody booked after it."""
    run_virtual(_test_a_cancelled_waiter_gives_its_slot_back())


async def _test_a_cancelled_waiter_gives_its_slot_back() -> None:
    limiter = sliding_window_limiter(2, 1, margin=0.0)
    first = await limiter.reserve()
    waiter = asyncio.ensure_future(limiter.reserve())
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slot = await limiter.reserve()
    assert slot - first == pytest.approx(0.5, abs=1e-6)


def test_a_limiter_runs_on_the_clock_it_is_given() -> None:
    """Given a clock, the limiter reads and waits on it instead of the event loop's time."""

    class Ticks:
        def __init__(self) -> None:
            self.at = 1000.0
            self.slept: list[float] = []

        def now(self) -> float:
            return self.at

        async def sleep(self, seconds: float) -> None:
            self.slept.append(seconds)
            self.at += seconds

    async def main() -> list[float]:
        clock = Ticks()
        limiter = SlidingWindowLimiter(4, 2, margin=0.0, clock=clock)
        slots = [await limiter.reserve() for _ in range(5)]
        assert clock.slept == pytest.approx([0.5] * 4, abs=1e-5)
        return slots

    assert asyncio.run(main()) == pytest.approx([1000.0, 1000.5, 1001.0, 1001.5, 1002.0], abs=1e-5)


def test_a_timer_that_fires_early_does_not_let_a_call_in_early() -> None:
    """A clock whose sleeps end early (uvloop's timers run on the turn's stale time) delays, never advances, a slot."""

    class Early:
        def __init__(self) -> None:
            self.at = 1000.0

        def now(self) -> float:
            return self.at

        async def sleep(self, seconds: float) -> None:
            # Fires up to 0.9 ms early, as time goes on (at least 0.1 ms a wait).
            self.at += max(0.0001, seconds - 0.0009)

    async def main() -> list[tuple[float, float]]:
        clock = Early()
        limiter = SlidingWindowLimiter(4, 2, margin=0.0, clock=clock)
        taken = []
        for _ in range(12):
            slot = await limiter.reserve()
            taken.append((slot, clock.now()))
        return taken

    taken = asyncio.run(main())
    assert all(now >= slot for slot, now in taken)  # admitted at its slot or later
    assert busiest_window([now for _, now in taken], 2.0) <= 4


def test_on_uvloop_the_clock_reads_the_present_and_sleeps_are_whole() -> None:
    """uvloop's loop time is the turn's start, in ms: LoopClock reads the monotonic clock and waits out early timers."""
    uvloop = pytest.importorskip("uvloop")
    from connector._clock import LoopClock, coarse_loop_time

    async def main() -> list[float]:
        clock = LoopClock()
        assert coarse_loop_time(asyncio.get_running_loop())
        shortfalls = []
        for wait in (0.0004, 0.0015, 0.003):
            end = clock.now() + wait
            await clock.sleep(wait)
            shortfalls.append(end - clock.now())
        return shortfalls

    assert all(short <= 0 for short in uvloop.run(main()))


def test_the_default_limit_is_anchored_at_answers_too() -> None:
    """The manifest's 1200/60 s, given by nobody: call 1201 waits 60 s after call 1's answer."""
    run_virtual(_test_the_default_limit_is_anchored_at_answers_too())


async def _test_the_default_limit_is_anchored_at_answers_too() -> None:
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    def handler(request: HttpRequest) -> HttpResponse:
        sent.append(loop.time())
        return OK

    conn = Connection(ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(handler), env={})
    async with conn:
        await asyncio.gather(*(conn.call("get_message", {"MessageId": SID}) for _ in range(1201)))
    assert max(sent) - min(sent) == pytest.approx(60, abs=1e-3)
    assert busiest_window(sent, 60) <= 1200


def test_a_connection_holds_the_limit_including_retries() -> None:
    """Every HTTP request of a connection, retries included, counts against one limit."""
    run_virtual(_test_a_connection_holds_the_limit_including_retries())


async def _test_a_connection_holds_the_limit_including_retries() -> None:
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    def handler(request: HttpRequest) -> HttpResponse:
        sent.append(loop.time())
        # Every third request is throttled by the server and must be retried.
        if len(sent) % 3 == 0:
            return HttpResponse(429, b'{"code": 20429, "message": "Too Many Requests"}')
        return OK

    conn = Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        transport=MockTransport(handler),
        retry=RetryPolicy(attempts=10, backoff=0.0),
        env={},
    )
    async with conn:
        await asyncio.gather(*(conn.call("get_message", {"MessageId": SID}) for _ in range(1500)))
    assert len(sent) > 2200
    assert busiest_window(sent, 60) <= 1200


def test_rate_limit_overrides_the_manifest() -> None:
    """rate_limit=(calls, seconds) replaces the manifest's 1200/60 s."""
    run_virtual(_test_rate_limit_overrides_the_manifest())


async def _test_rate_limit_overrides_the_manifest() -> None:
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    def handler(request: HttpRequest) -> HttpResponse:
        sent.append(loop.time())
        return OK

    conn = Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(handler), rate_limit=(10, 1), env={}
    )
    async with conn:
        await asyncio.gather(*(conn.call("get_message", {"MessageId": SID}) for _ in range(100)))
    assert busiest_window(sent, 1) <= 10
    assert max(sent) - min(sent) >= 9.9
