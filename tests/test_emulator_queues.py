"""The emulator's sender queues: dequeue by segments, 21611, 30001, expiry, 63017, a scaled clock."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from connector.emulator import Clock, EmulatorServer, ManualClock, QueueConfig
from connector.testing import EmulatorFactory


LONG = "+15005550006"
TOLL_FREE = "+18005550100"
SERVICE = "MG" + "a" * 32
GSM_2 = "x" * 161
UCS_2 = "✓" * 71


async def send(emu: EmulatorServer, body: str = "hi", **params: Any) -> tuple[int, dict[str, Any]]:
    """POST Messages.json and return (status, json)."""
    form = {"To": "+15551230001", "From": LONG, "Body": body, **params}
    form = {k: v for k, v in form.items() if v is not None}
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
    async with (
        aiohttp.ClientSession(headers={"Authorization": auth}) as session,
        session.post(url, data=form) as response,
    ):
        return response.status, await response.json()


def sending_at(emu: EmulatorServer, sid: str) -> float | None:
    """When the message turned `sending` (emulator time), if it has."""
    record = emu.state.store.get(sid)
    assert record is not None
    return next((at for status, at in record.timeline if status == "sending"), None)


async def settle() -> None:
    """Let transitions planned for now run (they are scheduled with call_soon)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_messages_leave_the_queue_at_the_senders_rate_in_segments(
    twilio_emulator_factory: EmulatorFactory,
) -> None:
    """A long code sends a segment a second: queued messages turn sending one after another."""
    clock = ManualClock(1_000_000.0)
    emu = await twilio_emulator_factory(clock=clock, queues=QueueConfig(senders={LONG: 1.0}))
    sids = [(await send(emu, body))[1]["sid"] for body in ("one", GSM_2, UCS_2, "four")]
    await settle()
    assert [emu.messages(sid=s)[0]["status"] for s in sids] == [
        "delivered",
        "queued",
        "queued",
        "queued",
    ]
    for step in (1.0, 2.0, 2.0):
        clock.advance(step)
        await settle()
    # 1 + 2 + 2 segments before the last: it left the queue at 5 s.
    assert [sending_at(emu, s) for s in sids] == [
        1_000_000.0,
        1_000_001.0,
        1_000_003.0,
        1_000_005.0,
    ]
    assert emu.stats()["queues"]["senders"][LONG]["units"] == 6


async def test_a_full_number_queue_refuses_with_21611(
    twilio_emulator_factory: EmulatorFactory,
) -> None:
    """Once a number's queue holds more than the limit, a create is refused (400, 21611)."""
    emu = await twilio_emulator_factory(
        queues=QueueConfig(senders={LONG: 1.0}, queue_limit=5.0), clock=ManualClock()
    )
    answers = [await send(emu) for _ in range(7)]
    assert [status for status, _ in answers] == [201] * 6 + [400]
    assert answers[-1][1]["code"] == 21611
    assert emu.stats()["queues"]["senders"][LONG]["refused"] == 1
    emu.advance(2.0)
    assert (await send(emu))[0] == 201


async def test_a_messaging_service_overflow_fails_later_with_30001(
    twilio_emulator_factory: EmulatorFactory,
) -> None:
    """A Messaging Service accepts past its limit; the overflowing messages then fail with 30001."""
    emu = await twilio_emulator_factory(
        queues=QueueConfig(senders={SERVICE: 1.0}, queue_limit=3.0), clock=ManualClock()
    )
    answers = [await send(emu, From=None, MessagingServiceSid=SERVICE) for _ in range(6)]
    assert all(status == 201 and body["status"] == "accepted" for status, body in answers)
    await settle()
    outcomes = [emu.messages(sid=body["sid"])[0] for _, body in answers]
    assert [(m["status"], m["error_code"]) for m in outcomes[-2:]] == [
        ("failed", 30001),
        ("failed", 30001),
    ]
    assert outcomes[-1]["error_message"] == "Queue overflow"
    assert all(m["status"] == "queued" for m in outcomes[1:4])
    assert emu.stats()["queues"]["senders"][SERVICE]["overflowed"] == 2


@pytest.mark.parametrize("code", [30036, 30001])
async def test_a_message_past_its_validity_period_expires(
    twilio_emulator_factory: EmulatorFactory, code: int
) -> None:
    """A message that would wait past its ValidityPeriod fails then, with the configured code."""
    clock = ManualClock(2_000_000.0)
    emu = await twilio_emulator_factory(
        queues=QueueConfig(senders={LONG: 1.0}, expiry_code=code), clock=clock
    )
    sids = [(await send(emu, ValidityPeriod="2"))[1]["sid"] for _ in range(4)]
    await settle()
    clock.advance(1.5)
    await settle()
    assert emu.messages(sid=sids[3])[0]["status"] == "queued"
    clock.advance(0.5)
    await settle()
    last = emu.messages(sid=sids[3])[0]
    assert (last["status"], last["error_code"]) == ("failed", code)
    assert sending_at(emu, sids[2]) == 2_000_002.0
    assert emu.stats()["queues"]["senders"][LONG]["expired"] == 1


async def test_more_than_the_accounts_messages_per_second_is_63017(
    twilio_emulator_factory: EmulatorFactory,
) -> None:
    """Above the account's messages per second a create is refused (429, 63017), then allowed again."""
    emu = await twilio_emulator_factory(queues=QueueConfig(account_mps=3), clock=ManualClock())
    answers = [await send(emu) for _ in range(4)]
    assert [status for status, _ in answers] == [201, 201, 201, 429]
    assert answers[-1][1]["code"] == 63017
    emu.advance(1.0)
    assert (await send(emu))[0] == 201
    assert emu.stats()["queues"]["account_refused"] == 1


async def test_undeclared_senders_take_their_kinds_rate(
    twilio_emulator_factory: EmulatorFactory,
) -> None:
    """A toll-free number sends 3 segments a second, a short code 100, unless configured."""
    clock = ManualClock(3_000_000.0)
    emu = await twilio_emulator_factory(
        queues=QueueConfig(), clock=clock, numbers=(TOLL_FREE, "12345")
    )
    toll_free = [(await send(emu, From=TOLL_FREE))[1]["sid"] for _ in range(4)]
    short = [(await send(emu, From="12345"))[1]["sid"] for _ in range(4)]
    clock.advance(2.0)
    await settle()
    assert [sending_at(emu, s) for s in toll_free][-1] == pytest.approx(3_000_001.0)
    assert [sending_at(emu, s) for s in short][-1] == pytest.approx(3_000_000.03)


async def test_the_queues_are_off_unless_configured(twilio_emulator: EmulatorServer) -> None:
    """Without a queue model every message leaves at once, as before."""
    sids = [(await send(twilio_emulator))[1]["sid"] for _ in range(5)]
    await settle()
    assert {twilio_emulator.messages(sid=s)[0]["status"] for s in sids} == {"delivered"}
    assert "queues" not in twilio_emulator.stats()


async def test_a_scaled_clock_runs_the_queues_faster_than_real_time(
    twilio_emulator_factory: EmulatorFactory,
) -> None:
    """At 60 times real time, three seconds of a long code's queue pass in about 50 milliseconds."""
    clock = Clock(scale=60.0)
    emu = await twilio_emulator_factory(clock=clock, queues=QueueConfig(senders={LONG: 1.0}))
    started = time.monotonic()
    answers = await asyncio.gather(*(send(emu) for _ in range(3)))
    sids = [body["sid"] for _, body in answers]
    await clock.sleep(3.0)
    await asyncio.sleep(0.05)
    assert time.monotonic() - started < 1.0
    assert {emu.messages(sid=s)[0]["status"] for s in sids} == {"delivered"}
    times = sorted(sending_at(emu, s) for s in sids)  # type: ignore[type-var]
    # Created within a fraction of an emulated second, they left the queue a second apart.
    assert times[-1] - times[0] >= 1.5  # type: ignore[operator]


def test_clocks_scale_and_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scaled clock runs faster and sleeps shorter; a manual clock sleeps until it is advanced."""
    with pytest.raises(ValueError, match="time scale"):
        Clock(scale=0)
    real = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: real[0])  # the machine's clock, controlled
    fast = Clock(scale=3600.0)
    before = fast.now()
    real[0] += 0.01
    assert fast.now() - before == pytest.approx(36.0)
    monkeypatch.undo()
    assert fast.real_seconds(3600.0) == 1.0

    async def main() -> float:
        manual = ManualClock(100.0)
        sleeper = asyncio.ensure_future(manual.sleep(5.0))
        await asyncio.sleep(0)
        manual.advance(3.0)
        await asyncio.sleep(0)
        assert not sleeper.done()
        manual.advance(2.0)
        await sleeper
        return manual.now()

    assert asyncio.run(main()) == 105.0


def test_the_command_line_sets_senders_and_the_time_scale() -> None:
    """`emulator --sender N=RATE --time-scale X` configures the queues and a scaled clock."""
    import argparse

    from connector.cli._emulator import config_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "emulator",
            "--sender",
            f"{LONG}=1/s",
            "--sender",
            "12345=6000/min",
            "--time-scale",
            "60",
            "--queue-limit",
            "600",
            "--expiry-code",
            "30001",
        ]
    )
    config = config_from_args(args)
    assert config.queues is not None
    assert dict(config.queues.senders) == {LONG: 1.0, "12345": 100.0}
    assert (config.queues.queue_limit, config.queues.expiry_code) == (600.0, 30001)
    assert config.clock.scale == 60.0
    plain = config_from_args(parser.parse_args(["emulator"]))
    assert plain.queues is None and plain.clock.scale == 1.0
    with pytest.raises(SystemExit):
        parser.parse_args(["emulator", "--sender", "+15005550006"])
