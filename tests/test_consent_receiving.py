"""Incoming keywords recorded by the listener and the poller, before any run starts."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from connector import Connection
from connector.emulator import EmulatorServer
from connector.receiving import MESSAGES_PATH, Listener, MessagePoller
from connector.testing import EmulatorFactory
from connector.workflow import Journal, load_workflow


TOKEN = "consent-auth-token-0123456789abc"
NUMBER = "+15005550006"
PERSON = "+15551230001"

THANKS = """
name: thanks
on:
  twilio/message_received:
    to: "+15005550006"
    reply: "Got it"
steps:
  - id: thank
    uses: twilio/send_text_message
    with:
      from: ${{ trigger.To }}
      to: ${{ trigger.From }}
      body: "Thanks for: ${{ trigger.Body }}"
"""

Setup = Callable[..., Awaitable[tuple[Listener, EmulatorServer, Connection]]]


@pytest.fixture
async def setup(tmp_path: Path, twilio_emulator_factory: EmulatorFactory) -> AsyncIterator[Setup]:
    """A listener over THANKS, an emulator posting to it (whose own STOP handling is off), a connection."""
    started: list[tuple[Listener, Connection]] = []
    journal = Journal(tmp_path / "runs.sqlite3")
    path = tmp_path / "thanks.yaml"
    path.write_text(THANKS, encoding="utf-8")

    async def start(**emulator: Any) -> tuple[Listener, EmulatorServer, Connection]:
        listener = Listener([load_workflow(path)], journal, auth_token=TOKEN)
        await listener.start()
        emulator.setdefault("incoming", {NUMBER: listener.public_url + MESSAGES_PATH})
        # The emulator would refuse sends after STOP itself (21610): switched off, so
        # only the connector's ledger can be why nothing is sent.
        server = await twilio_emulator_factory(auth_token=TOKEN, opt_out_keywords=False, **emulator)
        conn = Connection(server.account_sid, server.auth_token, base_url=server.base_url, env={})
        await conn.__aenter__()
        started.append((listener, conn))
        return listener, server, conn

    try:
        yield start
    finally:
        for listener, conn in started:
            await listener.stop()
            await conn.__aexit__(None, None, None)
        journal.close()


def thanks_sent(emulator: EmulatorServer) -> list[str]:
    return [m["body"] for m in emulator.messages(to=PERSON, direction="outbound-api")]


async def test_a_stop_webhook_is_recorded_and_the_run_it_starts_sends_nothing(
    setup: Setup,
) -> None:
    """STOP is in the ledger before the run; the run's send to that person is skipped; START undoes it."""
    listener, emulator, conn = await setup()
    await listener.begin(conn, poll=False)
    await emulator.inbound(to=NUMBER, from_=PERSON, body="Stop")
    await emulator.drain_callbacks()
    assert await listener.consent.opted_out(NUMBER, PERSON) is not None
    await listener.drain()
    (run,) = listener.results
    assert run.ok
    (item,) = run.steps[0].items
    assert (item.status, item.error_code) == ("skipped", None)
    assert "texted STOP" in str(item.error)
    assert thanks_sent(emulator) == []
    # No TwiML reply goes with a keyword: Twilio answers STOP itself.
    (attempt,) = emulator.state.callbacks.log[emulator.messages(body="Stop")[0]["sid"]]
    assert attempt.delivered
    assert emulator.messages(direction="outbound-reply") == []

    await emulator.inbound(to=NUMBER, from_=PERSON, body="START")
    await emulator.drain_callbacks()
    await listener.drain()
    assert await listener.consent.opted_out(NUMBER, PERSON) is None
    assert thanks_sent(emulator) == ["Thanks for: START"]
    # Neither keyword got the workflow's TwiML reply; an ordinary message does.
    assert emulator.messages(direction="outbound-reply") == []
    await emulator.inbound(to=NUMBER, from_=PERSON, body="hello")
    await emulator.drain_callbacks()
    assert [m["body"] for m in emulator.messages(direction="outbound-reply")] == ["Got it"]


async def test_keywords_get_no_reply_and_help_records_nothing(setup: Setup) -> None:
    """The listener answers an empty Response to STOP, START and HELP, and HELP changes no consent."""
    listener, _, _ = await setup()
    for number, body in enumerate(("STOP", "HELP", "hello")):
        result = listener.ingest(
            "twilio/message_received",
            {"MessageSid": f"SM{number:032x}", "To": NUMBER, "From": PERSON, "Body": body},
        )
        assert ("<Message>" in result.response) is (body == "hello"), body
    await listener._record_consent({"To": NUMBER, "From": PERSON, "Body": "HELP"})
    assert [e async for e in listener.consent.entries()] == []


async def test_the_poller_records_keywords_with_their_message_time(setup: Setup) -> None:
    """A STOP found by polling is recorded at its date_sent, so finding it again changes nothing."""
    listener, emulator, conn = await setup(incoming={})
    await listener.begin(conn, poll=False)
    (workflow,) = listener.workflows.values()
    poller = MessagePoller(
        conn,
        listener.journal,
        workflow.trigger,  # type: ignore[arg-type]
        listener.ingest,
        since=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5),
        consent=listener.consent,
    )
    stop = await emulator.inbound(to=NUMBER, from_=PERSON, body="unsubscribe")
    assert await poller.poll_once() == 1
    entries = [e async for e in listener.consent.entries(PERSON)]
    assert {(e.sender, e.state, e.source) for e in entries} >= {
        (NUMBER, "opted_out", "UNSUBSCRIBE")
    }
    sent_at = dt.datetime.strptime(stop["date_sent"], "%a, %d %b %Y %H:%M:%S %z").timestamp()
    assert all(e.at == sent_at for e in entries)
    await poller.poll_once()
    assert [e async for e in listener.consent.entries(PERSON)] == entries
    await listener.drain()
    assert thanks_sent(emulator) == []
