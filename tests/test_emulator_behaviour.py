"""Emulator behaviour: status clock, callbacks, inbound webhooks, throttle, faults, admin."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from conftest import Receiver

from connector.emulator import FAILURE_NUMBERS, EmulatorServer, FaultConfig, ManualClock
from connector.emulator._throttle import SlidingWindowThrottle
from connector.signature import validate_signature


OK_FROM = "+15005550006"


async def send(emu: EmulatorServer, **params: Any) -> tuple[int, dict[str, Any]]:
    """POST Messages.json with defaults and return (status, json)."""
    form = {"To": "+15551230001", "From": OK_FROM, "Body": "hi", **params}
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
    async with (
        aiohttp.ClientSession(headers={"Authorization": auth}) as session,
        session.post(url, data=form) as response,
    ):
        return response.status, await response.json()


async def test_status_callbacks_are_ordered_and_signed(
    twilio_emulator: EmulatorServer, receiver: Receiver
) -> None:
    """Every transition after the first POSTs a signed callback, in order."""
    url = receiver.url + "/status?x=1"
    _, sent = await send(twilio_emulator, StatusCallback=url)
    await twilio_emulator.drain_callbacks()
    statuses = [form["MessageStatus"] for _, form, _ in receiver.requests]
    assert statuses == ["sending", "sent", "delivered"]
    for got_url, form, signature in receiver.requests:
        assert validate_signature(got_url, form, signature, twilio_emulator.auth_token)
        assert form["MessageSid"] == form["SmsSid"] == sent["sid"]
        assert form["SmsStatus"] == form["MessageStatus"]
        assert form["AccountSid"] == twilio_emulator.account_sid
        assert form["ApiVersion"] == "2010-04-01" and form["To"] == "+15551230001"
        assert "ErrorCode" not in form
    assert len(receiver.requests[-1][1]["RawDlrDoneDate"]) == 10
    assert twilio_emulator.stats()["callbacks"]["delivered"] == 3


@pytest.mark.parametrize(("number", "outcome"), sorted(FAILURE_NUMBERS.items()))
async def test_failure_numbers(
    twilio_emulator: EmulatorServer, receiver: Receiver, number: str, outcome: Any
) -> None:
    """Failure destinations are accepted, then end failed/undelivered with the error code."""
    status, code, text = outcome
    created, sent = await send(twilio_emulator, To=number, StatusCallback=receiver.url)
    assert created == 201
    await twilio_emulator.drain_callbacks()
    message = twilio_emulator.messages(sid=sent["sid"])[0]
    assert (message["status"], message["error_code"], message["error_message"]) == (
        status,
        code,
        text,
    )
    last = receiver.requests[-1][1]
    assert last["MessageStatus"] == status and last["ErrorCode"] == str(code)


async def test_callbacks_retry_with_backoff(
    twilio_emulator_factory: Any, receiver: Receiver
) -> None:
    """A failing receiver is retried; callbacks still arrive in order, then counters add up."""
    emu = await twilio_emulator_factory(callback_attempts=3)
    receiver.fail_first = 2
    await send(emu, StatusCallback=receiver.url)
    await emu.drain_callbacks()
    assert [f["MessageStatus"] for _, f, _ in receiver.requests] == ["sending", "sent", "delivered"]
    stats = emu.stats()["callbacks"]
    assert (stats["delivered"], stats["failed"], stats["attempts_failed"]) == (3, 0, 2)


async def test_callbacks_give_up_after_attempts(twilio_emulator_factory: Any) -> None:
    """An unreachable receiver counts as failed after the configured attempts, without blocking sends."""
    emu = await twilio_emulator_factory(callback_attempts=2)
    status, _ = await send(emu, StatusCallback="http://127.0.0.1:9/unreachable")
    assert status == 201
    await emu.drain_callbacks()
    stats = emu.stats()["callbacks"]
    assert (stats["failed"], stats["attempts_failed"], stats["pending"]) == (3, 6, 0)


async def test_delayed_lifecycle_follows_the_clock(twilio_emulator_factory: Any) -> None:
    """With a delivery delay, statuses advance only as the (manual) clock moves."""
    clock = ManualClock()
    emu = await twilio_emulator_factory(delivery_delay=3.0, clock=clock)
    _, sent = await send(emu)

    def status() -> str:
        return str(emu.messages(sid=sent["sid"])[0]["status"])

    assert status() == "queued"
    emu.advance(1.0)
    assert status() == "sending"
    emu.advance(1.0)
    assert status() == "sent"
    emu.advance(1.0)
    assert status() == "delivered"


async def test_messaging_service_send_starts_accepted(
    twilio_emulator: EmulatorServer, receiver: Receiver
) -> None:
    """A Messaging Service send is accepted, then queued with a sender and segments assigned."""
    _, sent = await send(
        twilio_emulator, From="", MessagingServiceSid="MG" + "d" * 32, StatusCallback=receiver.url
    )
    assert sent["status"] == "accepted"
    await twilio_emulator.drain_callbacks()
    assert [f["MessageStatus"] for _, f, _ in receiver.requests] == [
        "queued",
        "sending",
        "sent",
        "delivered",
    ]
    assert receiver.requests[0][1]["MessagingServiceSid"] == "MG" + "d" * 32
    message = twilio_emulator.messages(sid=sent["sid"])[0]
    assert message["from"] == OK_FROM and message["num_segments"] == "1"


async def test_scheduled_send_waits_until_due(twilio_emulator: EmulatorServer) -> None:
    """A scheduled message stays scheduled until the clock reaches SendAt."""
    due = twilio_emulator.config.clock.now() + 600
    _, sent = await send(
        twilio_emulator,
        From="",
        MessagingServiceSid="MG" + "e" * 32,
        ScheduleType="fixed",
        SendAt=datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert sent["status"] == "scheduled"
    twilio_emulator.advance(500)
    assert twilio_emulator.messages(sid=sent["sid"])[0]["status"] == "scheduled"
    twilio_emulator.advance(100)
    assert twilio_emulator.messages(sid=sent["sid"])[0]["status"] == "delivered"


async def test_inbound_message_is_stored_and_webhook_signed(
    twilio_emulator_factory: Any, receiver: Receiver
) -> None:
    """POST /emulator/inbound stores a received message and POSTs Twilio's webhook parameters, signed."""
    emu = await twilio_emulator_factory(incoming={"+15005550010": receiver.url + "/sms"})
    async with aiohttp.ClientSession() as session:
        form = [
            ("To", "+15005550010"),
            ("From", "+15551239999"),
            ("Body", "hello"),
            ("MediaUrl", "https://e.com/p.jpg"),
        ]
        async with session.post(emu.base_url + "/emulator/inbound", data=form) as response:
            assert response.status == 201
            message = await response.json()
    assert (message["direction"], message["status"]) == ("inbound", "received")
    await emu.drain_callbacks()
    url, params, signature = receiver.requests[0]
    assert url == receiver.url + "/sms"
    assert validate_signature(url, params, signature, emu.auth_token)
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"] == message["sid"]
    assert (params["From"], params["To"], params["Body"]) == (
        "+15551239999",
        "+15005550010",
        "hello",
    )
    assert (params["NumMedia"], params["NumSegments"], params["SmsStatus"]) == (
        "1",
        "1",
        "received",
    )
    # As Twilio posts its own media URL, the emulator posts its (the content: a redirect).
    (media,) = emu.state.store.get(message["sid"]).media  # type: ignore[union-attr]
    assert params["MediaUrl0"] == (
        f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages/{message['sid']}"
        f"/Media/{media.sid}"
    )
    assert params["MediaContentType0"] == "image/jpeg"
    assert params["AccountSid"] == emu.account_sid and params["ApiVersion"] == "2010-04-01"
    # The webhook number is owned, so the workflow can reply from it.
    status, _ = await send(emu, From="+15005550010", To="+15551239999")
    assert status == 201


async def test_throttle_answers_429(twilio_emulator_factory: Any) -> None:
    """Past the per-account window the API answers 429/20429; admin endpoints are exempt."""
    emu = await twilio_emulator_factory(throttle=(3, 60.0))
    results = [(await send(emu))[0] for _ in range(4)]
    assert results == [201, 201, 201, 429]
    status, body = await send(emu)
    assert (status, body["code"], body["message"]) == (429, 20429, "Too Many Requests")
    assert set(body) == {"code", "message", "more_info", "status"}
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    async with aiohttp.ClientSession() as session:
        api = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
        async with session.get(api, headers={"Authorization": auth}) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
        # While the API is throttled, the admin endpoints still answer.
        for path in ("/emulator/stats", "/emulator/messages", "/healthz"):
            async with session.get(emu.base_url + path) as response:
                assert response.status == 200, path
    emu.advance(61)
    assert (await send(emu))[0] == 201
    stats = emu.stats()
    assert (stats["requests"], stats["throttled"]) == (7, 3)


def test_sliding_window_is_exact() -> None:
    """The window admits exactly N requests in any span of the configured length."""
    now = [0.0]
    throttle = SlidingWindowThrottle(2, 10.0, lambda: now[0])
    assert throttle.admit("a") and throttle.admit("a") and not throttle.admit("a")
    assert throttle.admit("b")
    now[0] = 9.99
    assert not throttle.admit("a") and throttle.retry_after("a") == pytest.approx(0.01)
    now[0] = 10.0
    assert throttle.admit("a") and throttle.admit("a") and not throttle.admit("a")


async def test_faults_are_deterministic(twilio_emulator_factory: Any) -> None:
    """The same seed injects the same 5xx answers and drops on the same requests."""
    outcomes = []
    for _ in range(2):
        emu = await twilio_emulator_factory(
            faults=FaultConfig(seed=7, error_rate=0.3, drop_rate=0.3)
        )
        run = []
        for _ in range(12):
            try:
                run.append((await send(emu))[0])
            except aiohttp.ServerDisconnectedError:
                run.append(-1)
        outcomes.append((run, len(emu.messages())))
    assert outcomes[0] == outcomes[1]
    run, stored = outcomes[0]
    assert {500, 503} & set(run) and -1 in run and 201 in run
    # Dropped sends were processed: they are stored although never answered.
    assert stored == run.count(201) + run.count(-1)


async def test_stats_and_reset(twilio_emulator: EmulatorServer) -> None:
    """GET /emulator/stats counts messages by status; POST /emulator/reset clears everything."""
    await send(twilio_emulator)
    await send(twilio_emulator, To=sorted(FAILURE_NUMBERS)[0])
    async with aiohttp.ClientSession() as session:
        async with session.get(twilio_emulator.base_url + "/emulator/stats") as response:
            stats = await response.json()
        assert stats["messages"]["by_status"] == {"delivered": 1, "undelivered": 1}
        assert stats["requests"] == 2
        async with session.post(twilio_emulator.base_url + "/emulator/reset") as response:
            assert response.status == 200
        async with session.get(twilio_emulator.base_url + "/healthz") as response:
            assert response.status == 200
    assert twilio_emulator.messages() == []
    assert twilio_emulator.stats()["requests"] == 0


def test_public_surface_is_small_and_sorted() -> None:
    """connector.emulator exports a sorted __all__ (constants, classes, functions) of real names."""
    import connector.emulator as emulator

    def kind(name: str) -> tuple[bool, bool, str]:
        return (not name.isupper(), not name[0].isupper(), name)

    assert emulator.__all__ == sorted(emulator.__all__, key=kind)
    assert all(hasattr(emulator, name) for name in emulator.__all__)
    assert {"EmulatorConfig", "EmulatorServer", "create_app"} <= set(emulator.__all__)


async def test_advance_admin_endpoint_releases_scheduled_sends(
    twilio_emulator: EmulatorServer,
) -> None:
    """POST /emulator/advance moves the clock so a scheduled send goes out."""
    due = twilio_emulator.config.clock.now() + 900
    _, sent = await send(
        twilio_emulator,
        From="",
        MessagingServiceSid="MG" + "f" * 32,
        ScheduleType="fixed",
        SendAt=datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(twilio_emulator.base_url + "/emulator/advance?seconds=901") as response,
    ):
        assert response.status == 200
    assert twilio_emulator.messages(sid=sent["sid"])[0]["status"] == "delivered"
