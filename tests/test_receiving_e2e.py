"""End-to-end: the emulator posts signed webhooks to a listener whose workflows act on them."""

from __future__ import annotations

import asyncio
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


TOKEN = "e2e-auth-token-0123456789abcdef"
NUMBER = "+15005550006"
SENDER = "+15551230001"

REPLY_WORKFLOW = """
name: auto-reply
env: [TWILIO_CONNECTOR_PUBLIC_URL]   # the listener sets it to its public URL
on:
  twilio/message_received:
    to: "+15005550006"
    body_matches: "(?i)hello"
    reply: "Got it: ${{ trigger.Body }}"
steps:
  - id: answer
    uses: twilio/send_text_message
    with:
      from: ${{ trigger.To }}
      to: ${{ trigger.From }}
      body: "Hi ${{ trigger.From }}, you said ${{ trigger.Body }}"
      StatusCallback: "${{ env.TWILIO_CONNECTOR_PUBLIC_URL }}/status"
outputs:
  reply_sid: ${{ steps.answer.outputs.sid }}
"""

STATUS_WORKFLOW = """
name: track-delivery
on:
  twilio/message_status_changed:
    status: [sent, delivered, undelivered, failed]
steps:
  - id: fetch
    uses: twilio/get_message
    with:
      MessageId: ${{ trigger.MessageSid }}
outputs:
  sid: ${{ trigger.MessageSid }}
  event_status: ${{ trigger.MessageStatus }}
  fetched_status: ${{ steps.fetch.outputs.status }}
"""

Setup = Callable[..., Awaitable[tuple[Listener, EmulatorServer, Connection]]]


@pytest.fixture
async def setup(tmp_path: Path, twilio_emulator_factory: EmulatorFactory) -> AsyncIterator[Setup]:
    """Start a listener over the given workflows, an emulator wired to it, and a connection."""
    started: list[tuple[Listener, Connection]] = []
    journal = Journal(tmp_path / "runs.sqlite3")

    async def start(*texts: str, **emulator: Any) -> tuple[Listener, EmulatorServer, Connection]:
        workflows = []
        for i, text in enumerate(texts):
            path = tmp_path / f"workflow{i}.yaml"
            path.write_text(text, encoding="utf-8")
            workflows.append(load_workflow(path))
        listener = Listener(workflows, journal, auth_token=TOKEN, max_runs=4)
        await listener.start()
        emulator.setdefault("incoming", {NUMBER: listener.public_url + MESSAGES_PATH})
        server = await twilio_emulator_factory(auth_token=TOKEN, **emulator)
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


async def test_an_injected_message_runs_the_workflow_whose_reply_lands_in_the_emulator(
    setup: Setup,
) -> None:
    """An inbound message starts the reply workflow, whose message appears in the emulator's store."""
    listener, emulator, conn = await setup(REPLY_WORKFLOW)
    await listener.begin(conn)
    await emulator.inbound(to=NUMBER, from_=SENDER, body="hello there")
    await emulator.drain_callbacks()
    await listener.drain()
    assert [r.status for r in listener.results] == ["succeeded"]
    replies = emulator.messages(to=SENDER, direction="outbound-api")
    assert [m["body"] for m in replies] == [f"Hi {SENDER}, you said hello there"]
    assert listener.results[0].outputs == {"reply_sid": replies[0]["sid"]}
    assert emulator.stats()["callbacks"]["delivered"] >= 1


async def test_a_status_workflow_sees_the_reply_go_from_queued_to_delivered(setup: Setup) -> None:
    """The reply's status callbacks reach the listener and start the status workflow up to delivered."""
    listener, emulator, conn = await setup(REPLY_WORKFLOW, STATUS_WORKFLOW)
    await listener.begin(conn)
    await emulator.inbound(to=NUMBER, from_=SENDER, body="hello")
    await emulator.drain_callbacks()
    await listener.drain()
    reply_sid = listener.results[0].outputs["reply_sid"]
    # The send answered "queued"; each later transition is a signed callback.
    assert listener.results[0].steps[0].outputs["status"] == "queued"
    await emulator.drain_callbacks()
    await listener.drain()
    seen = [r.outputs for r in list(listener.results)[1:]]
    assert {o["sid"] for o in seen} == {reply_sid}
    assert [o["event_status"] for o in seen] == ["sent", "delivered"]
    assert seen[-1]["fetched_status"] == "delivered"
    assert listener.refused == 0 and listener.duplicates == 0


async def test_the_poller_delivers_each_message_once(setup: Setup) -> None:
    """Polling finds an inbound message the webhook never delivered, once, and the cursor persists."""
    text = REPLY_WORKFLOW.replace('to: "+15005550006"', 'to: "+15005550006"\n    poll_interval: 30')
    listener, emulator, conn = await setup(text, incoming={})
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    await listener.begin(conn, poll=False)
    poller = MessagePoller(
        conn, listener.journal, listener_trigger(listener), listener.ingest, since=since
    )
    await emulator.inbound(to=NUMBER, from_=SENDER, body="hello by poll")
    assert await poller.poll_once() == 1
    await listener.drain()
    assert [r.status for r in listener.results] == ["succeeded"]
    # Polling again (same day, so the same messages are listed) starts nothing new.
    await poller.poll_once()
    await listener.drain()
    assert len(listener.results) == 1 and listener.duplicates == 1
    assert listener.journal.cursor(f"poll:twilio/message_received:{NUMBER}") is not None
    replies = emulator.messages(to=SENDER, direction="outbound-api")
    assert [m["body"] for m in replies] == [f"Hi {SENDER}, you said hello by poll"]


async def test_polling_and_the_webhook_together_still_deliver_once(setup: Setup) -> None:
    """A message delivered by the webhook and then found by polling runs the workflow once."""
    listener, emulator, conn = await setup(REPLY_WORKFLOW)
    await listener.begin(conn, poll=False)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    poller = MessagePoller(
        conn, listener.journal, listener_trigger(listener), listener.ingest, since=since
    )
    await emulator.inbound(to=NUMBER, from_=SENDER, body="hello twice")
    await emulator.drain_callbacks()
    await poller.poll_once()
    await listener.drain()
    assert len(listener.results) == 1 and listener.duplicates == 1


def listener_trigger(listener: Listener) -> Any:
    """The trigger of the listener's only workflow."""
    (workflow,) = listener.workflows.values()
    return workflow.trigger


SIGNUP_WORKFLOW = """
name: signup
on:
  twilio/message_received:
    to: "+15005550006"
    body_matches: "(?i)^\\\\s*join\\\\s*$"
steps:
  - id: ask
    uses: twilio/send_text_message
    with: {from: "${{ trigger.To }}", to: "${{ trigger.From }}", body: "Welcome! A for news, B for offers?"}
  - id: answer
    uses: twilio/wait_for_reply
    with:
      from: ${{ trigger.To }}
      to: ${{ trigger.From }}
      after: ${{ steps.ask.outputs.date_created }}
      keywords: [A, B]
      timeout: 60
      poll_interval: 1
  - id: confirm
    if: ${{ steps.answer.outputs.status == 'replied' }}
    uses: twilio/send_text_message
    with:
      from: ${{ trigger.To }}
      to: ${{ trigger.From }}
      body: "You chose ${{ steps.answer.outputs.keyword }}."
outputs:
  choice: ${{ steps.answer.outputs.keyword }}
"""


async def test_a_run_the_listener_started_waits_for_the_reply_the_listener_receives(
    setup: Setup,
) -> None:
    """JOIN starts a run that asks and waits; the answer's webhook (journaled) ends the wait."""
    listener, emulator, conn = await setup(SIGNUP_WORKFLOW)
    await listener.begin(conn)
    await emulator.inbound(to=NUMBER, from_=SENDER, body="join")
    await emulator.drain_callbacks()
    for _ in range(2000):  # until the run has asked (its own progress, not time)
        if emulator.messages(to=SENDER, direction="outbound-api"):
            break
        await asyncio.sleep(0.005)
    await emulator.inbound(to=NUMBER, from_=SENDER, body="b")
    await emulator.drain_callbacks()
    await listener.drain()
    (result,) = listener.results  # the answer started no run of its own
    assert result.outputs == {"choice": "B"}
    sent = [m["body"] for m in emulator.messages(to=SENDER, direction="outbound-api")]
    assert sent == ["You chose B.", "Welcome! A for news, B for offers?"]
