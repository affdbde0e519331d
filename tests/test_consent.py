"""The consent ledger, and the pre-send gate of a Connection that has one."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ACCOUNT_SID, AUTH_TOKEN

from connector import (
    BadRequestError,
    Connection,
    HttpRequest,
    HttpResponse,
    MockTransport,
    open_connection,
)
from connector.consent import (
    ACCOUNT_WIDE,
    LEDGER_VARIABLE,
    ConsentEntry,
    ConsentLedger,
    SQLiteLedger,
    check_location,
    inbound_change,
    open_ledger,
    record_inbound,
)
from connector.emulator import EmulatorServer
from connector.errors import OptedOutError
from connector.workflow import Journal, load_workflow, run_workflow


OURS = "+15005550006"
OTHER = "+15005550011"
PERSON = "+15551230002"
SERVICE = "MG" + "a" * 32
SID = "SM" + "1" * 32


def created(request: HttpRequest) -> HttpResponse:
    """A Twilio answer to a send: the message, queued."""
    return HttpResponse(201, json.dumps({"sid": SID, "status": "queued", "to": PERSON}).encode())


def refused_21610(request: HttpRequest) -> HttpResponse:
    """Twilio's answer to a send to an unsubscribed recipient."""
    body = {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
    return HttpResponse(400, json.dumps(body).encode())


def connection(transport: MockTransport, ledger: ConsentLedger | None) -> Connection:
    return Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=transport, rate_limit=False, env={}, ledger=ledger
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SQLiteLedger]:
    opened = SQLiteLedger(tmp_path / "consent.sqlite3")
    yield opened
    opened.close()


# -- the ledger ---------------------------------------------------------------------


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=lambda mask: f"umask{mask:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
async def test_a_ledger_file_is_created_private_whatever_the_umask(
    umask: int, tmp_path: Path
) -> None:
    """A standalone ledger file (and its directory) is created with mode 0600, as are its -wal and -shm."""
    path = tmp_path / "team" / "consent.sqlite3"
    with SQLiteLedger(path) as opened:
        await opened.record(OURS, PERSON, "opted_out", "STOP")
        files = [path, path.with_name("consent.sqlite3-wal"), path.with_name("consent.sqlite3-shm")]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {f.name: 0o600 for f in files}


async def test_stop_then_start_and_an_older_word_never_wins(ledger: SQLiteLedger) -> None:
    """The most recent word decides, whatever order the words are recorded in."""
    assert await ledger.opted_out(OURS, PERSON) is None
    await ledger.record(OURS, PERSON, "opted_out", "STOP", at=100.0)
    reason = await ledger.opted_out(OURS, PERSON)
    assert reason == f"{PERSON} opted out of {OURS} (texted STOP, 1970-01-01T00:01:40Z)"
    assert await ledger.opted_out(OTHER, PERSON) is None  # another sender of the account
    assert await ledger.record(OURS, PERSON, "opted_in", "START", at=200.0)
    assert await ledger.opted_out(OURS, PERSON) is None
    # A poll that finds the STOP again (newest first) changes nothing.
    assert not await ledger.record(OURS, PERSON, "opted_out", "STOP", at=100.0)
    assert await ledger.opted_out(OURS, PERSON) is None


async def test_stopall_covers_every_sender_until_a_start_to_one(ledger: SQLiteLedger) -> None:
    """STOPALL opts out of every sender; a later START to one number opts back in to that one only."""
    assert await record_inbound(ledger, to=OURS, from_=PERSON, body=" stopall ", at=10.0) == (
        "opted_out"
    )
    assert await ledger.opted_out(OURS, PERSON) is not None
    assert await ledger.opted_out(None, PERSON, service=SERVICE) is not None
    await record_inbound(ledger, to=OTHER, from_=PERSON, body="Start", at=20.0)
    assert await ledger.opted_out(OTHER, PERSON) is None
    assert "every sender of the account" in str(await ledger.opted_out(OURS, PERSON))


async def test_a_keyword_to_a_service_number_covers_the_service(ledger: SQLiteLedger) -> None:
    """A STOP to a number of a Messaging Service opts out of the service's every send."""
    await record_inbound(
        ledger, to=OURS, from_=PERSON, body="UNSUBSCRIBE", messaging_service_sid=SERVICE
    )
    assert f"Messaging Service {SERVICE}" in str(
        await ledger.opted_out(None, PERSON, service=SERVICE)
    )
    assert await ledger.opted_out(OURS, PERSON) is not None
    assert await ledger.opted_out(OTHER, PERSON) is None


async def test_questions_asked_together_get_each_their_own_answer(
    ledger: SQLiteLedger,
) -> None:
    """Checks made in one turn of the event loop share a read, and each gets its scopes' answer."""
    await ledger.record(OURS, PERSON, "opted_out", "STOP", at=10.0)
    await ledger.record(ACCOUNT_WIDE, "+15551230003", "opted_out", "import", at=10.0)
    await ledger.record(SERVICE, "+15551230004", "opted_out", "STOP", at=10.0)
    asks = [
        (OURS, PERSON, None),  # opted out of this sender
        (OTHER, PERSON, None),  # not of another
        (OTHER, "+15551230003", None),  # of every sender
        (None, "+15551230004", SERVICE),  # of the service
        (OURS, "+15551230004", None),  # the service's opt-out is not this number's
        (OURS, "  +15551230005 ", None),  # never heard of
    ] * 50
    answers = await asyncio.gather(
        *(ledger.opted_out(sender, person, service=service) for sender, person, service in asks)
    )
    expected = [True, False, True, True, False, False] * 50
    assert [answer is not None for answer in answers] == expected


async def test_an_unreadable_entry_fails_its_own_send_only(ledger: SQLiteLedger) -> None:
    """An entry whose reason cannot be written fails the check of its recipient, not the others'."""
    await ledger.record(OURS, PERSON, "opted_out", "STOP", at=1e15)  # a year past 9999
    async with asyncio.timeout(10):  # neither check may be left waiting
        mine, other = await asyncio.gather(
            ledger.opted_out(OURS, PERSON), ledger.opted_out(OURS, OTHER), return_exceptions=True
        )
    assert isinstance(mine, ValueError | OverflowError | OSError)
    assert other is None


async def test_a_failed_read_reaches_every_waiting_send(tmp_path: Path) -> None:
    """When the ledger cannot be read, each send asking at that moment gets the error."""
    ledger = SQLiteLedger(tmp_path / "consent.sqlite3")
    ledger.close()
    results = await asyncio.gather(
        *(ledger.opted_out(OURS, f"+1555123000{n}") for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, sqlite3.ProgrammingError) for r in results)


@pytest.mark.parametrize(
    ("body", "opt_out_type", "expected"),
    [
        ("STOP", None, ("opted_out", "STOP", False)),
        ("quit", None, ("opted_out", "QUIT", False)),
        ("STOPALL", None, ("opted_out", "STOPALL", True)),
        ("yes", None, ("opted_in", "YES", False)),
        ("UNSTOP", None, ("opted_in", "UNSTOP", False)),
        ("HELP", None, None),
        ("info", None, None),
        ("Stop please", None, None),
        ("ARRET", "STOP", ("opted_out", "ARRET", False)),
        ("HELP", "HELP", None),
    ],
)
def test_which_inbound_messages_change_consent(
    body: str, opt_out_type: str | None, expected: Any
) -> None:
    """Twilio's default keywords, whole-body and case-insensitive; HELP and INFO change nothing; OptOutType wins."""
    assert inbound_change(body, opt_out_type) == expected


async def test_help_records_nothing(ledger: SQLiteLedger) -> None:
    """HELP is Twilio's to answer: the ledger stays empty."""
    assert await record_inbound(ledger, to=OURS, from_=PERSON, body="HELP") is None
    assert [e async for e in ledger.entries()] == []


async def test_entries_list_every_scope_in_order(ledger: SQLiteLedger) -> None:
    """entries() yields every row by recipient then scope, and filters on one recipient."""
    for n in range(2500):
        await ledger.record(OURS, f"+1555{n:07d}", "opted_out", "import", at=1.0)
    await ledger.record(ACCOUNT_WIDE, PERSON, "opted_out", "STOPALL", at=2.0)
    everything = [e async for e in ledger.entries()]
    assert len(everything) == 2501
    assert everything == sorted(everything, key=lambda e: (e.recipient, e.sender))
    assert [e async for e in ledger.entries(PERSON)] == [
        ConsentEntry(ACCOUNT_WIDE, PERSON, "opted_out", "STOPALL", 2.0)
    ]


def test_open_ledger_picks_the_store_by_location(tmp_path: Path) -> None:
    """A redis:// URL names a Redis ledger; anything else is a SQLite file."""
    local = open_ledger(tmp_path / "c.sqlite3")
    assert isinstance(local, SQLiteLedger)
    local.close()
    remote = open_ledger("redis://127.0.0.1:1/0", account=ACCOUNT_SID)
    assert type(remote).__name__ == "RedisLedger"
    assert isinstance(remote, ConsentLedger) and isinstance(local, ConsentLedger)


@pytest.mark.parametrize("location", ["http://ledger.example.com/c", "s3://bucket/c", " ", ""])
def test_a_location_that_is_no_ledger_is_refused(location: str, tmp_path: Path) -> None:
    """Another scheme's URL is refused, not taken for a file named "http:"; so is nothing."""
    with pytest.raises(ValueError, match="file path or a redis:// "):
        check_location(location)
    with pytest.raises(ValueError, match="file path or a redis:// "):
        open_ledger(location)
    assert check_location(tmp_path / "c.sqlite3") == str(tmp_path / "c.sqlite3")
    assert check_location("rediss://h:6380/1") == "rediss://h:6380/1"
    assert check_location("~/consent.sqlite3") == "~/consent.sqlite3"


# -- the gate -----------------------------------------------------------------------


async def test_a_send_to_an_opted_out_recipient_is_skipped_before_any_request(
    ledger: SQLiteLedger,
) -> None:
    """With a ledger, a send to a recipient who texted STOP raises OptedOutError and makes no request."""
    await ledger.record(OURS, PERSON, "opted_out", "STOP")
    transport = MockTransport(created)
    async with connection(transport, ledger) as conn:
        for action in ("send_text_message", "send_message"):
            with pytest.raises(OptedOutError) as caught:
                await conn.call(action, {"from": OURS, "to": PERSON, "body": "hi"})
            assert caught.value.recipient == PERSON
            assert caught.value.code is None
            assert "texted STOP" in caught.value.reason
        await conn.call("send_text_message", {"from": OTHER, "to": PERSON, "body": "hi"})
    assert [r.body for r in transport.requests] == [
        b"From=%2B15005550011&To=%2B15551230002&Body=hi"
    ]


async def test_a_pool_is_one_campaign_for_consent(ledger: SQLiteLedger) -> None:
    """A STOP to any sender of a pool skips the recipient for the pool, before any pacing wait."""
    await ledger.record(OURS, PERSON, "opted_out", "STOP")
    transport = MockTransport(created)
    async with connection(transport, ledger) as conn:
        with pytest.raises(OptedOutError):
            await conn.call("send_text_message", {"from": [OTHER, OURS], "to": PERSON, "body": "x"})
        await conn.call("send_text_message", {"from": [OTHER, OURS], "to": OTHER, "body": "x"})
    assert len(transport.requests) == 1
    assert b"To=%2B15005550011" in transport.requests[0].body


async def test_a_service_send_is_checked_against_the_service(ledger: SQLiteLedger) -> None:
    """A send through a Messaging Service with no From is skipped when the service is opted out of."""
    await ledger.record(SERVICE, PERSON, "opted_out", "STOP")
    transport = MockTransport(created)
    async with connection(transport, ledger) as conn:
        with pytest.raises(OptedOutError):
            await conn.call(
                "send_message", {"to": PERSON, "messaging_service_sid": SERVICE, "body": "hi"}
            )
    assert transport.requests == []


async def test_a_21610_answer_is_recorded_and_the_next_send_never_leaves(
    ledger: SQLiteLedger,
) -> None:
    """Twilio's 21610 opts the recipient out in the ledger; the next send to them makes no request."""
    transport = MockTransport(refused_21610)
    async with connection(transport, ledger) as conn:
        with pytest.raises(OptedOutError) as caught:
            await conn.call("send_text_message", {"from": OURS, "to": PERSON, "body": "a"})
        assert caught.value.code == 21610
        assert isinstance(caught.value.__cause__, BadRequestError)
        assert len(transport.requests) == 1
        with pytest.raises(OptedOutError) as again:
            await conn.call("send_text_message", {"from": OURS, "to": PERSON, "body": "b"})
        assert "Twilio refused a send with 21610" in again.value.reason
    assert len(transport.requests) == 1
    (entry,) = [e async for e in ledger.entries()]
    assert (entry.sender, entry.recipient, entry.state, entry.source) == (
        OURS,
        PERSON,
        "opted_out",
        "21610",
    )


async def test_without_a_ledger_nothing_changes() -> None:
    """A connection without a ledger sends as before, and 21610 stays a BadRequestError."""
    transport = MockTransport(refused_21610)
    async with connection(transport, None) as conn:
        with pytest.raises(BadRequestError):
            await conn.call("send_text_message", {"from": OURS, "to": PERSON, "body": "a"})


async def test_open_connection_takes_the_ledger_from_the_environment(
    tmp_path: Path, twilio_emulator: EmulatorServer
) -> None:
    """TWILIO_CONSENT_LEDGER names the ledger every send of open_connection's connection is checked against."""
    path = tmp_path / "team.sqlite3"
    with SQLiteLedger(path) as shared:
        await shared.record(OURS, PERSON, "opted_out", "import")
    env = {
        "TWILIO_ACCOUNT_SID": twilio_emulator.account_sid,
        "TWILIO_AUTH_TOKEN": twilio_emulator.auth_token,
        "TWILIO_BASE_URL": twilio_emulator.base_url,
        LEDGER_VARIABLE: str(path),
    }
    async with open_connection(env=env) as conn:
        with pytest.raises(OptedOutError, match="imported"):
            await conn.call("send_text_message", {"from": OURS, "to": PERSON, "body": "hi"})
    async with open_connection(env=env, ledger=False) as conn:
        assert conn.ledger is None
    assert twilio_emulator.stats()["requests"] == 0


# -- workflows ----------------------------------------------------------------------


async def test_a_fan_out_skips_the_opted_out_and_its_step_succeeds(
    tmp_path: Path, twilio_emulator: EmulatorServer
) -> None:
    """In a run, a send to an opted-out recipient is a skipped item with its reason; the step and the run succeed."""
    file = tmp_path / "notify.yaml"
    file.write_text(
        yaml.safe_dump(
            {
                "name": "notify",
                "steps": [
                    {
                        "id": "send",
                        "uses": "twilio/send_text_message",
                        "for_each": ["+15551230001", PERSON, "+15551230003"],
                        "with": {"from": OURS, "to": "${{ item }}", "body": "Hello"},
                    }
                ],
            }
        )
    )
    await twilio_emulator.inbound(to=OURS, from_=PERSON, body="STOP")
    async with Connection(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        base_url=twilio_emulator.base_url,
        env={},
        rate_limit=False,
    ) as conn:
        with Journal(tmp_path / "runs.sqlite3") as journal:
            # As the listener does when the STOP reaches it.
            await record_inbound(journal.consent, to=OURS, from_=PERSON, body="STOP")
            result = await run_workflow(load_workflow(file), {}, conn, journal)
            assert conn.ledger is journal.consent
    assert result.ok
    (step,) = result.steps
    assert step.status == "succeeded"
    assert [i.status for i in step.items] == ["succeeded", "skipped", "succeeded"]
    assert step.items[1].error is not None and "texted STOP" in step.items[1].error
    assert step.counts is not None
    assert (step.counts["succeeded"], step.counts["skipped"], step.counts["failed"]) == (2, 1, 0)
    assert step.counts["skips"][0]["key"] == PERSON
    sent = [m["to"] for m in twilio_emulator.messages(direction="outbound-api")]
    assert sorted(sent) == ["+15551230001", "+15551230003"]
