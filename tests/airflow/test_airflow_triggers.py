"""The triggers' run(), driven directly: status waits with backoff, 200 waits under one
limit, and inbound SMS as events."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import aiohttp

# First of all: it gives Airflow a temporary home before anything imports Airflow.
import airflow_home  # noqa: F401
import pytest
from airflow.triggers.base import TriggerEvent
from virtual_clock import VirtualClockLoop

from connector import Connection, HttpRequest, HttpResponse, MockTransport
from connector.airflow import (
    TwilioInboundMessageTrigger,
    TwilioMessageFailedError,
    TwilioMessageStatusTrigger,
    TwilioSendMessageOperator,
)
from connector.airflow import hooks as hooks_module
from connector.airflow._polling import poll_delays, wait_for_status
from connector.emulator import Clock, EmulatorServer
from connector.testing import EmulatorFactory


pytest_plugins = ["airflow_support"]


SID = "AC" + "0123456789abcdef" * 2
SENDER = "+15005550006"


def _use(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, **extra: Any) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT",
        json.dumps(
            {
                "conn_type": "twilio",
                "login": emulator.account_sid,
                "password": emulator.auth_token,
                "extra": {"base_url": emulator.base_url, **extra},
            }
        ),
    )


async def _send(emulator: EmulatorServer, to: str) -> str:
    async with Connection(
        emulator.account_sid, emulator.auth_token, base_url=emulator.base_url, env={}
    ) as conn:
        message = await conn.call("send_text_message", {"from": SENDER, "to": to, "body": "hi"})
    return str(message.sid)


async def _fire(trigger: Any) -> Any:
    events = trigger.run()
    try:
        event = await anext(events)
    finally:
        await events.aclose()
    assert isinstance(event, TriggerEvent)
    return event.payload


def test_the_status_trigger_serializes_to_what_rebuilds_it() -> None:
    """serialize() names an importable class and the arguments that rebuild the trigger."""
    trigger = TwilioMessageStatusTrigger(
        message_sid="SM" + "0" * 32, wait_for="sent", end_time=1234.5, poll_interval=2.0
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "connector.airflow.triggers.TwilioMessageStatusTrigger"
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    json.dumps(kwargs)


def test_polls_back_off_from_5_seconds_to_a_minute() -> None:
    """The default schedule is 5, 10, 20, 40, then every 60 seconds."""
    delays = poll_delays()
    assert [next(delays) for _ in range(7)] == [5, 10, 20, 40, 60, 60, 60]
    with pytest.raises(ValueError, match="0 < first <= cap"):
        next(poll_delays(0))


def test_a_wait_polls_on_the_schedule_and_once_at_the_deadline() -> None:
    """Five minutes of a message stuck in 'sending': 8 polls, the last at the deadline."""
    loop = VirtualClockLoop()
    polled: list[float] = []

    def answer(request: HttpRequest) -> HttpResponse:
        polled.append(loop.time())
        body = {"sid": "SM" + "1" * 32, "account_sid": SID, "status": "sending"}
        return HttpResponse(200, json.dumps(body).encode(), {})

    async def wait() -> dict[str, Any]:
        async with Connection(SID, "t", transport=MockTransport(answer), env={}) as conn:
            return await wait_for_status(conn, "SM" + "1" * 32, within=300)

    try:
        payload = loop.run_until_complete(wait())
    finally:
        loop.close()
    assert [round(t) for t in polled] == [5, 15, 35, 75, 135, 195, 255, 300]
    assert payload["outcome"] == "timeout" and payload["status"] == "sending"
    assert "still sending after 300 s" in payload["error"]


async def test_the_trigger_fires_when_the_message_is_delivered(
    twilio_emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run() polls while the message is on its way and fires 'succeeded' once delivered."""
    emulator = await twilio_emulator_factory(delivery_delay=3)
    _use(monkeypatch, emulator)
    sid = await _send(emulator, "+15551230001")
    trigger = TwilioMessageStatusTrigger(
        message_sid=sid, end_time=time.time() + 60, poll_interval=0.01, max_poll_interval=0.02
    )
    fired = asyncio.create_task(_fire(trigger))
    await asyncio.sleep(0.05)
    assert not fired.done()  # still queued: the emulator's clock stands still
    for _ in range(3):  # queued -> sending -> sent -> delivered, a second apart
        emulator.advance(1)
    payload = await asyncio.wait_for(fired, 10)
    assert payload["outcome"] == "succeeded" and payload["status"] == "delivered"
    assert payload["message"]["sid"] == sid
    resumed = TwilioSendMessageOperator(task_id="t", to="+1").execute_complete({}, payload)
    assert resumed == payload["message"]


async def test_an_undelivered_message_fails_the_task_with_twilio_s_code(
    twilio_emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure number ends 'undelivered' with 30003; resuming raises it as the task's error."""
    emulator = await twilio_emulator_factory(delivery_delay=0)
    _use(monkeypatch, emulator)
    sid = await _send(emulator, "+15005530003")
    payload = await _fire(
        TwilioMessageStatusTrigger(message_sid=sid, end_time=time.time() + 60, poll_interval=0.01)
    )
    assert (payload["outcome"], payload["status"], payload["error_code"]) == (
        "failed",
        "undelivered",
        30003,
    )
    with pytest.raises(
        TwilioMessageFailedError, match="ended undelivered: Twilio error 30003"
    ) as e:
        TwilioSendMessageOperator(task_id="t", to="+1").execute_complete({}, payload)
    assert (e.value.code, e.value.sid, e.value.status) == (30003, sid, "undelivered")


async def test_a_wait_times_out_and_an_unknown_message_ends_it(
    twilio_emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the deadline the event is 'timeout' with the last status; a 404 is 'error'."""
    emulator = await twilio_emulator_factory(delivery_delay=3)
    _use(monkeypatch, emulator)
    sid = await _send(emulator, "+15551230001")
    payload = await _fire(
        TwilioMessageStatusTrigger(message_sid=sid, end_time=time.time() + 0.1, poll_interval=0.01)
    )
    assert (payload["outcome"], payload["status"]) == ("timeout", "queued")
    unknown = "SM" + "f" * 32
    payload = await _fire(
        TwilioMessageStatusTrigger(
            message_sid=unknown, end_time=time.time() + 60, poll_interval=0.01
        )
    )
    assert payload["outcome"] == "error" and "404" in payload["error"]


class _LoopClock(Clock):
    """The emulator's time as the event loop's (virtual) time, from a fixed start."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._start = time.time()

    def now(self) -> float:
        return self._start + self._loop.time() + self._offset


def test_200_waiting_triggers_share_one_connection_and_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 triggers of one Airflow connection poll through one connection: 20 calls/s, never more."""
    loop = VirtualClockLoop(threads=True)  # Airflow reads connections in a thread
    opened: list[object] = []
    real_open = hooks_module.ConnectionSettings.open

    def counting_open(self: hooks_module.ConnectionSettings) -> Any:
        opened.append(self)
        return real_open(self)

    monkeypatch.setattr(hooks_module.ConnectionSettings, "open", counting_open)

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from connector.testing import test_config

        # The emulator refuses a 21st request in any second (429), on the same virtual clock.
        config = test_config(clock=_LoopClock(loop), throttle=(20, 1.0), delivery_delay=30)
        async with EmulatorServer(config) as emulator:
            _use(monkeypatch, emulator, rate_limit="20/1")
            hook = hooks_module.TwilioHook()
            async with hook.shared_connection() as conn:
                sids = [
                    str(
                        (
                            await conn.call(
                                "send_text_message",
                                {"from": SENDER, "to": f"+1555123{n:04d}", "body": "hi"},
                            )
                        ).sid
                    )
                    for n in range(200)
                ]
                triggers = [
                    TwilioMessageStatusTrigger(
                        message_sid=sid,
                        end_time=time.time() + 3600,
                        poll_interval=1,
                        max_poll_interval=4,
                    )
                    for sid in sids
                ]
                payloads = await asyncio.gather(*(_fire(t) for t in triggers))
            return payloads, emulator.stats()

    try:
        payloads, stats = loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert {p["outcome"] for p in payloads} == {"succeeded"}
    assert len(opened) == 1  # every trigger used the one connection the test opened
    assert stats["throttled"] == 0  # never more than 20 calls in any second
    assert stats["requests"] >= 200 + 200  # the sends, and at least one poll each


class _StateStore:
    """Airflow 3.3's asset state store, as a trigger sees it (aget/aset)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.saved = asyncio.Event()

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))
        self.saved.set()


async def _inbound(emulator: EmulatorServer, body: str, sender: str = "+15551239999") -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emulator.base_url}/emulator/inbound",
            data={"To": SENDER, "From": sender, "Body": body},
        ) as answer,
    ):
        assert answer.status in (200, 201)


class _Watch:
    """A trigger run as the triggerer runs an asset watcher's: with a state store, resumed after each event."""

    def __init__(self, store: _StateStore) -> None:
        self.store = store
        self.trigger = TwilioInboundMessageTrigger(to=SENDER, poll_interval=0.01)
        self.trigger.asset_state_store = store  # as the triggerer injects it
        self._events = self.trigger.run()
        self._next: asyncio.Task[Any] | None = None

    async def started(self) -> None:
        """Wait until the trigger has its cursor (after its first poll)."""
        self.store.saved.clear()
        self._next = asyncio.create_task(anext(self._events))
        await asyncio.wait_for(self.store.saved.wait(), 10)

    async def take(self, count: int) -> list[dict[str, Any]]:
        """The next *count* events; then the trigger is resumed once more and stopped."""
        payloads = []
        for _ in range(count):
            if self._next is None:
                self._next = asyncio.create_task(anext(self._events))
            event, self._next = await asyncio.wait_for(self._next, 10), None
            payloads.append(event.payload)
        # The triggerer asks for the next event at once: the cursor is saved first.
        self.store.saved.clear()
        following = asyncio.create_task(anext(self._events))
        await asyncio.wait_for(self.store.saved.wait(), 10)
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await self._events.aclose()
        return payloads


async def test_the_inbound_trigger_fires_on_a_message_posted_to_the_emulator(
    twilio_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages received before the trigger started are not events; one posted after is."""
    _use(monkeypatch, twilio_emulator)
    await _inbound(twilio_emulator, "before the trigger started")
    trigger = TwilioInboundMessageTrigger(to=SENDER, poll_interval=0.01)
    assert trigger.serialize() == (
        "connector.airflow.triggers.TwilioInboundMessageTrigger",
        {"to": [SENDER], "twilio_conn_id": "twilio_default", "poll_interval": 0.01},
    )
    watch = _Watch(_StateStore())
    await watch.started()  # the cursor of "now" is taken
    await _inbound(twilio_emulator, "START please")
    (payload,) = await watch.take(1)
    assert (payload["body"], payload["from"], payload["direction"]) == (
        "START please",
        "+15551239999",
        "inbound",
    )
    cursor = watch.store.values[f"twilio_inbound_cursor:{SENDER}"]
    assert payload["sid"] in cursor["sids"]


async def test_the_inbound_cursor_outlives_the_trigger(
    twilio_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new trigger on the same asset state resumes after what was reported, in order."""
    _use(monkeypatch, twilio_emulator)
    store = _StateStore()
    watch = _Watch(store)
    await watch.started()
    await _inbound(twilio_emulator, "one")
    assert [p["body"] for p in await watch.take(1)] == ["one"]
    # While no trigger runs (a triggerer restart), two more arrive in the same second.
    await _inbound(twilio_emulator, "two")
    await _inbound(twilio_emulator, "three")
    watch = _Watch(store)
    assert [p["body"] for p in await watch.take(2)] == ["two", "three"]
