"""
What counts as a reply, and finding replies with one list for everyone waited for:
keywords, patterns, STOP and HELP, the cursor, and ``wait_for_reply`` called on its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, CREATED_AT, FakeTwilio
from virtual_clock import run_virtual

from connector import Connection, InvalidInputError, MockTransport, NoReplyError, default_connector
from connector._replies import (
    LIST_SETTLE,
    InboxCursor,
    ReplyRule,
    ReplySettings,
    list_inbound,
)
from connector._validation import compile_action
from connector.consent import SQLiteLedger
from connector.emulator import EmulatorServer
from connector.models import Reply, ReplyStatus


SENDER = "+15005550006"
SERVICE = "MG" + "0" * 32
WAIT = default_connector().actions["wait_for_reply"]


@pytest.mark.parametrize(
    ("body", "kind", "keyword"),
    [
        ("A", "replied", "A"),
        ("  a. ", "replied", "A"),
        ("(b)!", "replied", "B"),
        ("A please", "ignored", None),
        ("what?", "ignored", None),
        ("STOP", "opted_out", None),
        ("unsubscribe", "opted_out", None),
        ("HELP", "ignored", None),
        ("info", "ignored", None),
    ],
)
def test_keywords_are_whole_replies(body: str, kind: str, keyword: str | None) -> None:
    """A keyword matches the whole reply (case and surrounding punctuation aside); STOP ends the wait; HELP is no answer."""
    verdict = ReplyRule(("A", "B")).judge(body)
    assert (verdict.kind, verdict.keyword) == (kind, keyword)


def test_a_pattern_is_searched_and_its_match_kept() -> None:
    """A pattern counts a reply it is found in, and says what it matched."""
    rule = ReplyRule(pattern=r"\b\d{4}\b")
    assert rule.judge("my code is 1234, thanks").match == "1234"
    assert rule.judge("no code").kind == "ignored"
    either = ReplyRule(("yes",), r"^y")
    assert either.judge("Yes").keyword == "yes"
    assert either.judge("yep").match == "y"


def test_case_counts_when_asked() -> None:
    """With ignore_case false, keywords and patterns compare case."""
    rule = ReplyRule(("A",), "^Z", ignore_case=False)
    assert rule.judge("a").kind == "ignored"
    assert rule.judge("A").kind == "replied"
    assert rule.judge("z").kind == "ignored"


def test_without_keywords_any_message_is_the_answer_but_stop_and_help() -> None:
    """No keywords and no pattern: the first message answers, unless it is a STOP or a HELP."""
    rule = ReplyRule()
    assert rule.judge("sure, why not").kind == "replied"
    assert rule.judge("YES").kind == "replied"  # an opt-in word may be an answer
    assert rule.judge("Stop").kind == "opted_out"
    assert rule.judge("whatever", opt_out_type="STOP").kind == "opted_out"
    assert rule.judge("ayuda", opt_out_type="HELP").kind == "ignored"


def test_a_bad_pattern_is_refused_naming_the_field_before_any_request() -> None:
    """A pattern RE2 cannot run fails the call with the field and the rule; nothing is listed."""
    requests: list[Any] = []

    def handler(request: Any) -> Any:
        requests.append(request)
        raise AssertionError("no request expected")

    async def call() -> None:
        async with Connection(
            ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(handler), env={}
        ) as conn:
            with pytest.raises(InvalidInputError) as caught:
                await conn.call(
                    "wait_for_reply", {"to": "+15551230001", "from": SENDER, "pattern": "(?=x)"}
                )
            assert caught.value.issues[0].key == "pattern"
            assert "RE2" in str(caught.value)
            with pytest.raises(InvalidInputError, match="from/messaging_service_sid"):
                await conn.call("wait_for_reply", {"to": "+15551230001"})

    asyncio.run(call())
    assert requests == []


def _settings(**inputs: Any) -> ReplySettings:
    clean = compile_action(WAIT).validate({"to": "+15551230001", "from": SENDER, **inputs})
    return ReplySettings.from_inputs("wait_for_reply", clean)


def test_settings_round_trip_as_json() -> None:
    """A wait's settings travel as JSON (Temporal) and come back the same."""
    settings = _settings(
        keywords=["A", "B"], pattern="x+", after="2026-05-01T12:00:00.700Z", timeout=60
    )
    assert ReplySettings.from_json(settings.to_json()) == settings
    assert settings.after == dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC).timestamp()


# -- one list for everyone -------------------------------------------------------------


@pytest.fixture
async def emulator(twilio_emulator: EmulatorServer) -> EmulatorServer:
    return twilio_emulator


@pytest.fixture
async def conn(emulator: EmulatorServer) -> AsyncIterator[Connection]:
    async with Connection(
        emulator.account_sid,
        emulator.auth_token,
        base_url=emulator.base_url,
        env={},
        rate_limit=False,
    ) as opened:
        yield opened


async def test_a_quiet_look_moves_the_cursor_by_twilios_clock_not_past_late_arrivals(
    emulator: EmulatorServer, conn: Connection
) -> None:
    """
    With no reply, a look still moves the cursor to LIST_SETTLE before Twilio's clock
    (the emulator's, through the Date header, not this machine's), so old messages are
    not paged again; a reply sent after that point is still found.
    """
    start = emulator.state.clock.now()
    assert conn.server_time is None  # no answer read yet
    page = await list_inbound(conn, WAIT, ours={SENDER}, cursor=InboxCursor(start))
    assert page.messages == () and page.cursor.at == InboxCursor(start).at
    assert conn.server_time == pytest.approx(start, abs=1)
    emulator.advance(LIST_SETTLE + 60)
    quiet = await list_inbound(conn, WAIT, ours={SENDER}, cursor=page.cursor)
    assert quiet.cursor.at == pytest.approx(start + 60, abs=1)
    await emulator.inbound(to=SENDER, from_="+15551230001", body="late but fine")
    found = await list_inbound(conn, WAIT, ours={SENDER}, cursor=quiet.cursor)
    assert [m.body for m in found.messages] == ["late but fine"]


async def test_one_list_serves_every_person_and_the_cursor_moves_on(
    emulator: EmulatorServer, conn: Connection
) -> None:
    """A look is one request whoever is waited for; a second look hands over only what is new."""
    start = emulator.state.clock.now()
    for n in range(50):
        await emulator.inbound(to=SENDER, from_=f"+155512300{n:02d}", body=f"answer {n}")
    await emulator.inbound(to="+15005550010", from_="+15551230001", body="to another number")
    before = emulator.stats()["requests"]
    page = await list_inbound(conn, WAIT, ours={SENDER}, cursor=InboxCursor(start))
    assert emulator.stats()["requests"] - before == 1
    assert [m.body for m in page.messages] == [f"answer {n}" for n in range(50)]
    assert page.messages[0].event["To"] == SENDER and page.messages[0].event["media"] == []
    # Everything came in one second: the next look skips what it has, not the second.
    again = await list_inbound(conn, WAIT, ours={SENDER}, cursor=page.cursor)
    assert again.messages == ()
    await emulator.inbound(to=SENDER, from_="+15551230001", body="one more")
    newer = await list_inbound(conn, WAIT, ours={SENDER}, cursor=again.cursor)
    assert [m.body for m in newer.messages] == ["one more"]
    earlier = await list_inbound(conn, WAIT, ours={SENDER}, cursor=page.cursor.rewound(start))
    assert len(earlier.messages) == 51


async def test_a_service_is_listened_to_on_any_of_its_numbers(
    emulator: EmulatorServer, conn: Connection
) -> None:
    """Replies to a Messaging Service's numbers are found (without a To filter)."""
    start = emulator.state.clock.now()
    emulator.state.receive(
        to="+15005550010", from_="+15551230001", body="hi", messaging_service_sid=SERVICE
    )
    emulator.state.receive(to="+15005550011", from_="+15551230002", body="not ours")
    page = await list_inbound(conn, WAIT, ours={SERVICE}, cursor=InboxCursor(start))
    assert [m.body for m in page.messages] == ["hi"]
    assert page.messages[0].service == SERVICE


async def test_a_limit_hands_over_the_oldest_and_says_more(
    emulator: EmulatorServer, conn: Connection
) -> None:
    """With a limit, the oldest messages come first and the rest at the next look."""
    start = emulator.state.clock.now()
    for n in range(5):
        await emulator.inbound(to=SENDER, from_="+15551230001", body=str(n))
        emulator.advance(1)
    page = await list_inbound(conn, WAIT, ours={SENDER}, cursor=InboxCursor(start), limit=3)
    assert [m.body for m in page.messages] == ["0", "1", "2"] and page.more
    rest = await list_inbound(conn, WAIT, ours={SENDER}, cursor=page.cursor, limit=3)
    assert [m.body for m in rest.messages] == ["3", "4"] and not rest.more


async def test_keywords_found_by_a_look_go_to_the_ledger(
    emulator: EmulatorServer, conn: Connection, tmp_path: Path
) -> None:
    """A STOP found by a look is recorded in the consent ledger, as the listener would."""
    start = emulator.state.clock.now()
    await emulator.inbound(to=SENDER, from_="+15551230001", body="STOP")
    with SQLiteLedger(tmp_path / "consent.sqlite3") as ledger:
        await list_inbound(conn, WAIT, ours={SENDER}, cursor=InboxCursor(start), ledger=ledger)
        assert await ledger.opted_out(SENDER, "+15551230001") is not None


# -- called on its own -------------------------------------------------------------------


def _fake_connection(fake: FakeTwilio, **options: Any) -> Connection:
    return Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        base_url="https://api.twilio.com",
        transport=fake.transport(),
        rate_limit=False,
        env={},
        **options,
    )


def test_called_alone_it_polls_for_one_person_until_the_answer() -> None:
    """conn.call('wait_for_reply') returns the typed Reply once the answer is listed."""

    async def scenario() -> None:
        fake = FakeTwilio()
        fake.inbound("+15551230001", SENDER, "maybe", CREATED_AT + 5)
        fake.inbound("+15551230009", SENDER, "B", CREATED_AT + 6)
        loop = asyncio.get_running_loop()
        async with _fake_connection(fake) as conn:
            task = asyncio.create_task(
                conn.call(
                    "wait_for_reply",
                    {
                        "to": "+15551230001",
                        "from": SENDER,
                        "after": "2023-08-24T05:01:45Z",
                        "keywords": ["A", "B"],
                        "poll_interval": 60,
                    },
                )
            )
            began = loop.time()
            await asyncio.sleep(150)  # the loop's virtual clock: three polls later
            fake.inbound("+15551230001", SENDER, "b", CREATED_AT + 7)
            reply = await task
        assert isinstance(reply, Reply)
        assert reply.status is ReplyStatus.REPLIED and reply.keyword == "B"
        assert reply.reply is not None and reply.reply.body == "b"
        assert reply.replied_at == dt.datetime.fromtimestamp(CREATED_AT + 7, dt.UTC)
        assert loop.time() - began == pytest.approx(180, abs=1)

    run_virtual(scenario())


def test_no_reply_times_out_or_fails_as_asked() -> None:
    """After the timeout the output is timed_out, or NoReplyError with on_timeout: fail."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with _fake_connection(FakeTwilio()) as conn:
            began = loop.time()
            inputs = {"to": "+15551230001", "from": SENDER, "timeout": 100, "poll_interval": 30}
            reply = await conn.call("wait_for_reply", inputs)
            assert reply.status is ReplyStatus.TIMED_OUT and reply.reply is None
            assert loop.time() - began == pytest.approx(100, abs=1)
            with pytest.raises(NoReplyError, match="no reply from \\+15551230001 within 100 s"):
                await conn.call("wait_for_reply", {**inputs, "on_timeout": "fail"})

    run_virtual(scenario())


def test_someone_who_opted_out_is_not_waited_for(tmp_path: Path) -> None:
    """A person the ledger says opted out cannot answer: opted_out after one look, not a day."""

    async def scenario() -> None:
        fake = FakeTwilio()
        loop = asyncio.get_running_loop()
        with SQLiteLedger(tmp_path / "consent.sqlite3") as ledger:
            await ledger.record(SENDER, "+15551230001", "opted_out", "STOP")
            async with _fake_connection(fake, ledger=ledger) as conn:
                began = loop.time()
                reply = await conn.call("wait_for_reply", {"to": "+15551230001", "from": SENDER})
                # No wait: the virtual clock moves only a tick per turn of the loop.
                assert loop.time() - began < 0.001
        assert reply.status is ReplyStatus.OPTED_OUT and reply.reply is None

    run_virtual(scenario())
