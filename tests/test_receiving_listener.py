"""The listener over HTTP: signatures, deduplication, journal-first acceptance, replies and bounded runs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector._connection import default_connector
from connector.receiving import Listener
from connector.receiving import _server as server_module
from connector.signature import compute_body_hash, compute_signature
from connector.workflow import Journal, RunResult, WorkflowError, load_workflow


TOKEN = "listener-test-token-0123456789ab"
PUBLIC = "https://hooks.example.com/twilio"

INBOUND = """
name: inbound
on:
  twilio/message_received:
    to: "+15005550006"
steps:
  - id: save
    uses: workflow/write_json
    with: {path: "out-${{ trigger.MessageSid }}.json", value: "${{ trigger }}"}
"""
REPLYING = """
name: replying
on:
  twilio/message_received:
    body_matches: "(?i)^hours"
    reply: "We open at 9 <sharp> & close at 5, ${{ trigger.From }}"
steps:
  - id: save
    uses: workflow/write_json
    with: {path: "reply-${{ trigger.MessageSid }}.json", value: "${{ trigger.Body }}"}
"""
STATUS = """
name: status
on:
  twilio/message_status_changed:
    status: [delivered, failed]
steps:
  - id: save
    uses: workflow/write_json
    with: {path: "status-${{ trigger.MessageSid }}-${{ trigger.MessageStatus }}.json", value: "${{ trigger }}"}
"""


def _inbound(sid: str = "SM" + "1" * 32, body: str = "hello", **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15551230001",
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        **extra,
    }


class Client:
    """Posts signed (or deliberately broken) webhooks to a listener."""

    def __init__(self, listener: Listener, session: aiohttp.ClientSession) -> None:
        self.listener = listener
        self.session = session

    async def post(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        sign_url: str | None = None,
        token: str = TOKEN,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        tamper: Callable[[dict[str, str]], None] | None = None,
    ) -> tuple[int, str]:
        url = sign_url or self.listener.public_url + path
        sent_headers = dict(headers or {})
        if signed:
            sent_headers["X-Twilio-Signature"] = compute_signature(url, params, token)
        body = dict(params)
        if tamper is not None:
            tamper(body)
        async with self.session.post(
            self.listener.url + path, data=body, headers=sent_headers
        ) as response:
            return response.status, await response.text()


Start = Callable[..., Any]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start listeners over workflow texts on one journal; all are stopped after the test."""
    listeners: list[Listener] = []
    journal = Journal(tmp_path / "runs.sqlite3")
    session = aiohttp.ClientSession()

    async def make(*texts: str, **kwargs: Any) -> tuple[Listener, Client]:
        workflows = []
        for i, text in enumerate(texts):
            path = tmp_path / f"wf{i}.yaml"
            path.write_text(text, encoding="utf-8")
            workflows.append(load_workflow(path))
        kwargs.setdefault("auth_token", TOKEN)
        listener = Listener(workflows, kwargs.pop("journal", journal), **kwargs)
        await listener.start()
        listeners.append(listener)
        return listener, Client(listener, session)

    try:
        yield make
    finally:
        for listener in listeners:
            await listener.stop()
        await session.close()
        journal.close()


async def test_a_signed_message_is_journaled_before_the_answer(start: Start) -> None:
    """A valid request is answered with empty TwiML only after its event and run are in the journal."""
    listener, client = await start(INBOUND)
    status, text = await client.post("/messages", _inbound())
    assert status == 200
    assert text.endswith("<Response/>")
    pending = listener.journal.pending_deliveries(10, workflows=list(listener.workflows))
    assert [(p.kind, p.payload["MessageSid"]) for p in pending] == [
        ("twilio/message_received", "SM" + "1" * 32)
    ]
    assert pending[0].payload["NumMedia"] == 0  # typed by the InboundMessage definition


@pytest.mark.parametrize(
    "case",
    ["unsigned", "forged", "altered", "added", "wrong_path", "wrong_host", "other_route"],
)
async def test_bad_requests_are_refused_and_start_nothing(
    start: Start, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Unsigned, forged, altered and wrong-URL requests get 403, a log line, and no event."""
    listener, client = await start(INBOUND)
    params = _inbound()
    cases: dict[str, dict[str, Any]] = {
        "unsigned": {"signed": False},
        "forged": {"token": "guessed-token"},
        "altered": {"tamper": lambda body: body.update(Body="send me money")},
        "added": {"tamper": lambda body: body.update(MediaUrl0="https://evil.example/x")},
        "wrong_path": {"sign_url": listener.public_url + "/status"},
        "wrong_host": {"sign_url": "https://evil.example/messages"},
        "other_route": {},
    }
    kwargs = cases[case]
    path = "/status" if case == "other_route" else "/messages"
    with caplog.at_level(logging.WARNING, logger="connector.receiving"):
        if case == "other_route":
            # Signed for /messages but posted to /status.
            signature = compute_signature(listener.public_url + "/messages", params, TOKEN)
            async with client.session.post(
                listener.url + path, data=params, headers={"X-Twilio-Signature": signature}
            ) as response:
                status = response.status
        else:
            status, _ = await client.post(path, params, **kwargs)
    assert status == 403
    assert listener.refused == 1
    assert any("refused POST" in r.getMessage() for r in caplog.records)
    assert listener.journal.pending_deliveries(10, workflows=list(listener.workflows)) == []


async def test_the_public_url_is_what_is_signed_behind_a_proxy(start: Start) -> None:
    """Behind a proxy the public URL (with or without :443) is checked, not the bound address."""
    listener, client = await start(INBOUND, public_url=PUBLIC + "/")
    assert listener.public_url == PUBLIC
    ok, _ = await client.post("/messages", _inbound("SM" + "2" * 32))
    with_port, _ = await client.post(
        "/messages",
        _inbound("SM" + "3" * 32),
        sign_url="https://hooks.example.com:443/twilio/messages",
    )
    local, _ = await client.post(
        "/messages", _inbound("SM" + "4" * 32), sign_url=listener.url + "/messages"
    )
    assert (ok, with_port, local) == (200, 200, 403)


async def test_a_replayed_request_never_starts_a_second_run(start: Start) -> None:
    """The same signed request sent again (a retry or a replay) is answered but starts nothing."""
    listener, client = await start(INBOUND)
    first = await client.post("/messages", _inbound())
    again = await client.post("/messages", _inbound())
    assert first == again and first[0] == 200
    assert listener.duplicates == 1
    assert len(listener.journal.pending_deliveries(10, workflows=list(listener.workflows))) == 1


async def test_the_idempotency_token_deduplicates(start: Start) -> None:
    """Two deliveries with the same I-Twilio-Idempotency-Token start one run."""
    listener, client = await start(INBOUND)
    headers = {"I-Twilio-Idempotency-Token": "token-1"}
    await client.post("/messages", _inbound("SM" + "5" * 32), headers=headers)
    await client.post("/messages", _inbound("SM" + "6" * 32), headers=headers)
    assert listener.duplicates == 1
    assert len(listener.journal.pending_deliveries(10, workflows=list(listener.workflows))) == 1


async def test_status_callbacks_deduplicate_on_sid_and_status(start: Start) -> None:
    """A status callback is one event per MessageSid and status; unmatched statuses start nothing."""
    listener, client = await start(STATUS)
    sid = "SM" + "7" * 32

    def callback(status: str) -> dict[str, str]:
        return {"MessageSid": sid, "MessageStatus": status, "To": "+15551230001"}

    for status in ("sent", "delivered", "delivered"):
        code, text = await client.post("/status", callback(status))
        assert code == 200 and text.endswith("<Response/>")
    assert listener.duplicates == 1
    pending = listener.journal.pending_deliveries(10, workflows=list(listener.workflows))
    assert [p.payload["MessageStatus"] for p in pending] == ["delivered"]


async def test_a_reply_is_answered_as_twiml(start: Start) -> None:
    """A workflow's reply: is rendered from the trigger and answered as an escaped <Message>."""
    _, client = await start(REPLYING)
    status, text = await client.post("/messages", _inbound(body="Hours?"))
    assert status == 200
    assert text.endswith(
        "<Response><Message>We open at 9 &lt;sharp&gt; &amp; close at 5, +15551230001"
        "</Message></Response>"
    )
    # A retry gets the same answer, and the body filter keeps other messages out.
    assert (await client.post("/messages", _inbound(body="Hours?")))[1] == text
    _, other = await client.post("/messages", _inbound("SM" + "8" * 32, body="hi"))
    assert other.endswith("<Response/>")


async def test_hmac_sha256_and_json_bodies_are_accepted(start: Start) -> None:
    """A SHA256-signed form and a bodySHA256-signed JSON body are both accepted."""
    listener, client = await start(INBOUND)
    params = _inbound("SM" + "9" * 32)
    url = listener.public_url + "/messages"
    signature = compute_signature(url, params, TOKEN, algorithm="HMAC-SHA256")
    headers = {
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_SHA256",
    }
    async with client.session.post(url, data=params, headers=headers) as response:
        assert response.status == 200
    body = b'{"MessageSid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "To": "+15005550006"}'
    json_url = f"{url}?bodySHA256={compute_body_hash(body)}"
    headers = {
        "X-Twilio-Signature": compute_signature(json_url, None, TOKEN),
        "Content-Type": "application/json",
    }
    async with client.session.post(json_url, data=body, headers=headers) as response:
        assert response.status == 200
    pending = listener.journal.pending_deliveries(10, workflows=list(listener.workflows))
    assert [p.payload["MessageSid"] for p in pending] == ["SM" + "9" * 32, "SM" + "a" * 32]


async def test_accepted_events_run_after_a_restart(start: Start) -> None:
    """Events accepted by a listener that never ran them are run by the next one on the same journal."""
    first, client = await start(INBOUND)
    for i in range(3):
        assert (await client.post("/messages", _inbound(f"SM{i:032d}")))[0] == 200
    await first.stop()  # as if the process died after answering

    second, _ = await start(INBOUND)
    await second.begin(_NoConnection(), poll=False)
    await second.drain()
    assert [r.status for r in second.results] == ["succeeded"] * 3
    assert sorted(Path(r.steps[0].outputs["path"]).name for r in second.results) == [
        f"out-SM{i:032d}.json" for i in range(3)
    ]
    assert second.journal.pending_deliveries(10, workflows=list(second.workflows)) == []


class _NoConnection:
    """Stands in for a connection in runs that call only built-in actions."""

    connector = default_connector()
    pacer = None
    ledger = None


async def test_runs_are_bounded_and_the_rest_wait_in_the_journal(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With max_runs=2, two runs execute at once and the others stay pending until a slot frees."""
    gate = asyncio.Event()
    running: list[str] = []
    peak = 0

    async def fake_run(*args: Any, run_id: str, **kwargs: Any) -> RunResult:
        nonlocal peak
        running.append(run_id)
        peak = max(peak, len(running))
        await gate.wait()
        running.remove(run_id)
        return RunResult(run_id, "succeeded", {}, ())

    monkeypatch.setattr(server_module, "run_workflow", fake_run)
    listener, client = await start(INBOUND, max_runs=2)
    for i in range(5):
        await client.post("/messages", _inbound(f"SM{i:032d}"))
    await listener.begin(_NoConnection(), poll=False)
    for _ in range(1000):
        if len(running) == 2:
            break
        await asyncio.sleep(0)
    assert len(running) == 2
    waiting = listener.journal.pending_deliveries(10, workflows=list(listener.workflows))
    assert len(waiting) == 5  # all still pending: two running, three waiting
    gate.set()
    await listener.drain()
    assert peak == 2 and len(listener.results) == 5


async def test_a_listener_needs_an_auth_token_and_triggers(tmp_path: Path) -> None:
    """There is no unsigned mode, and a workflow without on: is refused."""
    path = tmp_path / "wf.yaml"
    path.write_text(INBOUND, encoding="utf-8")
    with Journal(tmp_path / "j.sqlite3") as journal:
        with pytest.raises(ValueError, match="auth token"):
            Listener([load_workflow(path)], journal, auth_token="")
        plain = tmp_path / "plain.yaml"
        plain.write_text(
            "name: plain\nsteps:\n  - {id: a, uses: workflow/write_json,"
            " with: {path: x.json, value: 1}}\n",
            encoding="utf-8",
        )
        with pytest.raises(WorkflowError, match="has no trigger"):
            Listener([load_workflow(plain)], journal, auth_token=TOKEN)


async def test_signed_but_malformed_requests_get_400(start: Start) -> None:
    """A signed request without MessageSid, or with a count that is not a number, is a 400."""
    listener, client = await start(INBOUND)
    no_sid = {k: v for k, v in _inbound().items() if k != "MessageSid"}
    assert (await client.post("/messages", no_sid))[0] == 400
    assert (await client.post("/messages", _inbound(NumMedia="many")))[0] == 400
    assert listener.journal.pending_deliveries(10, workflows=list(listener.workflows)) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"MessageSid": "../../../tmp/x"},
        {"SmsSid": "SM1/../../x"},
        {"AccountSid": "AC../x"},
        {"MessagingServiceSid": "MG/etc/passwd"},
        {"From": "+1555/../x"},
        {"To": "../x"},
        {"MediaUrl0": "file:///etc/passwd", "NumMedia": "1"},
    ],
)
async def test_signed_events_with_malformed_fields_are_refused(
    start: Start, caplog: pytest.LogCaptureFixture, fields: dict[str, str]
) -> None:
    """A correctly signed event whose SIDs, numbers or URLs break their formats is a logged 400."""
    listener, client = await start(INBOUND)
    with caplog.at_level(logging.WARNING, logger="connector.receiving"):
        status, text = await client.post("/messages", {**_inbound(), **fields})
    assert status == 400 and "must" in text
    assert "malformed" in caplog.text
    assert listener.journal.pending_deliveries(10, workflows=list(listener.workflows)) == []


async def test_results_keep_only_the_most_recent_runs(start: Start) -> None:
    """A long-running listener keeps at most keep_results finished runs in memory, the newest ones."""
    listener, client = await start(INBOUND, keep_results=2, max_runs=1)
    sids = [f"SM{i:032d}" for i in range(4)]
    for sid in sids:
        assert (await client.post("/messages", _inbound(sid)))[0] == 200
    await listener.begin(_NoConnection(), poll=False)
    await listener.drain()
    assert len(listener.results) == 2
    kept = sorted(Path(r.steps[0].outputs["path"]).name for r in listener.results)
    assert kept == [f"out-{sid}.json" for sid in sids[2:]]
    journal = listener.journal
    assert journal.pending_deliveries(10, workflows=list(listener.workflows)) == []
    with pytest.raises(ValueError, match="keep_results"):
        Listener(list(listener.workflows.values()), journal, auth_token=TOKEN, keep_results=0)


async def test_two_listeners_on_one_journal_never_run_an_event_twice(
    start: Start, tmp_path: Path
) -> None:
    """Deliveries are claimed in SQL: two listeners sharing a journal run each event once."""
    first, client = await start(INBOUND)
    second, _ = await start(INBOUND, journal=Journal(tmp_path / "runs.sqlite3"))
    for i in range(8):
        assert (await client.post("/messages", _inbound(f"SM{i:032d}")))[0] == 200
    await asyncio.gather(
        first.begin(_NoConnection(), poll=False), second.begin(_NoConnection(), poll=False)
    )
    await asyncio.gather(first.drain(), second.drain())
    runs = [r.run_id for r in (*first.results, *second.results)]
    assert len(runs) == 8 and len(set(runs)) == 8
    second.journal.close()


async def test_a_dead_listeners_claims_are_taken_over_without_a_restart(
    start: Start, tmp_path: Path
) -> None:
    """A delivery claimed by a process that is gone, or whose lease lapsed, is run by a live listener."""
    listener, client = await start(INBOUND, lease=0.3)
    for i in range(2):
        assert (await client.post("/messages", _inbound(f"SM{i:032d}")))[0] == 200
    pending = listener.journal.pending_deliveries(10, workflows=list(listener.workflows))
    dead_here = f"{socket.gethostname()}:{2**22 + 7}:gone"  # no such process
    lapsed_elsewhere = "other-host:123:gone"
    with sqlite3.connect(tmp_path / "runs.sqlite3") as db:
        db.execute(
            "UPDATE deliveries SET owner = ?, claimed = ? WHERE run_id = ?",
            (dead_here, time.time(), pending[0].run_id),
        )
        db.execute(
            "UPDATE deliveries SET owner = ?, claimed = ? WHERE run_id = ?",
            (lapsed_elsewhere, time.time() - 60, pending[1].run_id),
        )
    await listener.begin(_NoConnection(), poll=False)
    await listener.drain()
    assert sorted(r.run_id for r in listener.results) == sorted(d.run_id for d in pending)


def test_a_live_claim_elsewhere_is_respected(tmp_path: Path) -> None:
    """Another machine's claim holds until its lease lapses; this machine's live process's holds."""
    with Journal(tmp_path / "j.sqlite3") as journal:
        journal.record_event("inbound:x", None, "twilio/message_received", {}, {"w.yaml": "r1"})
        with sqlite3.connect(tmp_path / "j.sqlite3") as db:
            db.execute(
                "UPDATE deliveries SET owner = 'other-host:1:t', claimed = ? WHERE run_id = 'r1'",
                (time.time(),),
            )
        assert not journal.claim_delivery("r1")
        assert journal.pending_deliveries(5, workflows=["w.yaml"]) == []
        with sqlite3.connect(tmp_path / "j.sqlite3") as db:
            db.execute(
                "UPDATE deliveries SET owner = ?, claimed = ? WHERE run_id = 'r1'",
                (f"{socket.gethostname()}:{os.getppid()}:t", time.time() - 3600),
            )
        assert not journal.claim_delivery("r1")  # that process (our parent) lives
        with sqlite3.connect(tmp_path / "j.sqlite3") as db:
            db.execute("UPDATE deliveries SET owner = NULL WHERE run_id = 'r1'")
        assert journal.claim_delivery("r1")
        with Journal(tmp_path / "j.sqlite3") as other:
            assert not other.claim_delivery("r1")  # now held by the first journal object
