"""Senders in workflows: declaring rates, pools in `from`, their checks, runs and lookups."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import ACCOUNT_SID, AUTH_TOKEN
from virtual_clock import run_virtual

from connector import Connection, HttpRequest, HttpResponse, MockTransport, default_connector
from connector.workflow import Journal, WorkflowError, check_workflow, load_workflow, run_workflow
from connector.workflow._calls import find_sent_message


POOL = ["+15005550006", "+15005550010", "+18005550100"]

BROADCAST = """
name: pooled
inputs:
  recipients: {type: array, default: []}
connection:
  senders:
    "+18005550100": {rate: 3/s, kind: toll_free}
  pacing:
    horizon: 10s
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ inputs.recipients }}
    concurrency: 50
    with:
      from: ["+15005550006", "+15005550010", "+18005550100"]
      to: ${{ item }}
      body: "Hello #${{ index }}"
"""


def load(text: str) -> Any:
    return load_workflow("pooled.yaml", text=text)


def problems(text: str) -> list[str]:
    return [str(p) for p in check_workflow(load(text), default_connector())]


def test_the_connection_block_declares_senders_and_pacing() -> None:
    """connection.senders and connection.pacing become the connection's pacing."""
    pacing = load(BROADCAST).connection.pacing
    assert pacing.horizon == 10
    assert pacing.profile("+18005550100").rate == 3.0
    assert pacing.profile("+15005550006").rate == 1.0
    assert problems(BROADCAST) == []
    off = load(
        BROADCAST.replace("pacing:\n    horizon: 10s", "pacing: false").replace(
            '  senders:\n    "+18005550100": {rate: 3/s, kind: toll_free}\n', ""
        )
    )
    assert off.connection.pacing is False
    plugin_block = load(
        BROADCAST.replace(
            'connection:\n  senders:\n    "+18005550100": {rate: 3/s, kind: toll_free}\n'
            "  pacing:\n    horizon: 10s\n",
            "connections:\n  twilio:\n    pacing:\n      horizon: 10s\n",
        )
    )
    assert plugin_block.connection_for("twilio").pacing.horizon == 10  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('"+18005550100": {rate: 3/s, kind: toll_free}', '"+18005550100": {rate: fast}'),
        ('"+18005550100": {rate: 3/s, kind: toll_free}', '"+18005550100": {kind: landline}'),
        ("horizon: 10s", "horizon: 11h"),
    ],
)
def test_bad_declarations_are_located(change: str, message: str) -> None:
    """An unquoted number, a bad rate or kind, or too long a horizon is a located problem."""
    with pytest.raises(WorkflowError) as caught:
        load(BROADCAST.replace(change, message))
    assert caught.value.problems[0].line is not None


def test_an_unquoted_number_says_to_quote_it() -> None:
    """YAML reads +15005550006 as a number; the problem says to write it in quotes."""
    with pytest.raises(WorkflowError, match="in quotes"):
        load(BROADCAST.replace('"+18005550100": {rate', "+18005550100: {rate"))


def test_pools_are_checked_sender_by_sender() -> None:
    """Each sender of a literal pool is checked; a pool needs pacing; an expression may give a list."""
    assert problems(BROADCAST.replace('"+18005550100"]', '"+1 not a number"]')) != []
    no_pacing = BROADCAST.replace("pacing:\n    horizon: 10s", "pacing: false").replace(
        '  senders:\n    "+18005550100": {rate: 3/s, kind: toll_free}\n', ""
    )
    assert any("needs sender pacing" in p for p in problems(no_pacing))
    by_input = BROADCAST.replace(
        'from: ["+15005550006", "+15005550010", "+18005550100"]', "from: ${{ inputs.pool }}"
    ).replace("inputs:\n", "inputs:\n  pool: {type: array, default: []}\n")
    assert problems(by_input) == []


class Twilio:
    """A mock Messages API recording (loop time, From, To) of every send."""

    def __init__(self) -> None:
        self.sends: list[tuple[float, str, str]] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        form = dict(parse_qsl((request.body or b"").decode()))
        self.sends.append((asyncio.get_running_loop().time(), form["From"], form["To"]))
        message = {
            "sid": f"SM{len(self.sends):032x}",
            "from": form["From"],
            "to": form["To"],
            "body": form["Body"],
            "status": "queued",
        }
        return HttpResponse(201, json.dumps(message).encode())


def test_a_run_spreads_a_broadcast_over_the_pool(tmp_path: Path) -> None:
    """The run journals the pool, each output names its sender, and the senders share by rate."""
    run_virtual(_test_a_run_spreads_a_broadcast_over_the_pool(tmp_path), threads=True)


async def _test_a_run_spreads_a_broadcast_over_the_pool(tmp_path: Path) -> None:
    workflow = load(BROADCAST)
    recipients = [f"+1555{i:07d}" for i in range(100)]
    twilio = Twilio()
    conn = Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        transport=MockTransport(twilio),
        rate_limit=False,
        pacing=workflow.connection.pacing,
        env={},
    )
    with Journal(tmp_path / "runs.sqlite3") as journal:
        async with conn:
            result = await run_workflow(
                workflow, {"recipients": recipients}, conn, journal, run_id="pool"
            )
        kept = [item.output["from"] for item in journal.items("pool", "send").values()]
    assert result.ok
    senders = [out["from"] for out in result.steps[0].outputs]
    assert kept == senders  # the journal keeps each item's sender
    assert {s: senders.count(s) for s in POOL} == {POOL[0]: 20, POOL[1]: 20, POOL[2]: 60}
    # 100 segments at 5/s: 20 s of work per sender, 10 s of it queued at once, so the
    # last send leaves at 10 s.
    assert max(at for at, *_ in twilio.sends) == pytest.approx(10, abs=0.5)


def test_a_lookup_for_a_pooled_send_accepts_any_of_its_senders() -> None:
    """Reconciling a pooled send matches a message from any sender of the pool, and no other."""
    run_virtual(_test_a_lookup_for_a_pooled_send_accepts_any_of_its_senders())


async def _test_a_lookup_for_a_pooled_send_accepts_any_of_its_senders() -> None:
    now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    stored = [
        {"sid": "SM" + "1" * 32, "from": "+15005550099", "to": "+15551230001", "body": "hi"},
        {"sid": "SM" + "2" * 32, "from": POOL[1], "to": "+15551230001", "body": "hi"},
    ]
    queries: list[dict[str, str]] = []

    def handler(request: HttpRequest) -> HttpResponse:
        queries.append(dict(parse_qsl(urlsplit(request.url).query)))
        page = [{**m, "date_created": now} for m in stored]
        return HttpResponse(200, json.dumps({"messages": page, "next_page_uri": None}).encode())

    async def claim(sid: str) -> bool:
        return True

    conn = Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(handler), rate_limit=False, env={}
    )
    sent = {"to": "+15551230001", "from": POOL, "body": "hi"}
    async with conn:
        found = await find_sent_message(conn, sent, time.time() - 5, claim=claim, settle=0)
    assert found["sid"] == "SM" + "2" * 32
    assert all("From" not in query for query in queries)


def test_throughput_failures_fail_the_item_with_the_reason() -> None:
    """A message failed in Twilio's queue (30001), or a reply-loop refusal (14107), fails its item and says why."""
    run_virtual(_test_throughput_failures_fail_the_item_with_the_reason())


async def _test_throughput_failures_fail_the_item_with_the_reason() -> None:
    from connector.workflow import ActionRunner, CallRequest

    sid = "SM" + "3" * 32

    def handler(request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            failed = {"sid": sid, "status": "failed", "error_code": 30001, "to": "+15551230001"}
            return HttpResponse(200, json.dumps(failed).encode())
        refusal = {"code": 14107, "message": "SMS send rate limit exceeded", "status": 400}
        return HttpResponse(400, json.dumps(refusal).encode())

    conn = Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(handler), rate_limit=False, env={}
    )
    async with conn:
        runner = ActionRunner(conn)
        fetched = await runner.run(CallRequest("twilio/get_message", {"MessageId": sid}, "r/s/0"))
        sent = await runner.run(
            CallRequest(
                "twilio/send_text_message",
                {"from": POOL, "to": "+15551230001", "body": "hi"},
                "r/s/1",
            )
        )
    assert (fetched.status, fetched.error_code) == ("failed", 30001)
    assert "queue overflow" in (fetched.error or "")
    assert (sent.status, sent.error_code) == ("failed", 14107)
    assert "reply loops" in (sent.error or "")
    assert sent.inputs["from"] == POOL


def test_a_paced_run_reports_its_expected_finish(tmp_path: Path) -> None:
    """The runner hands the pacing layer's finish time to the progress, by segments."""
    run_virtual(_test_a_paced_run_reports_its_expected_finish(tmp_path), threads=True)


async def _test_a_paced_run_reports_its_expected_finish(tmp_path: Path) -> None:
    import io

    from connector.cli._progress import LineProgress

    workflow = load(BROADCAST.replace("horizon: 10s", "horizon: 1h"))
    recipients = [f"+1555{i:07d}" for i in range(20)]
    estimates: list[tuple[str, float]] = []

    class Watching(LineProgress):
        def eta(self, step_id: str, seconds: float) -> None:
            estimates.append((step_id, seconds))
            super().eta(step_id, seconds)

    stream = io.StringIO()
    conn = Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        transport=MockTransport(Twilio()),
        rate_limit=False,
        pacing=workflow.connection.pacing,
        env={},
    )
    with Journal(tmp_path / "runs.sqlite3") as journal:
        async with conn:
            result = await run_workflow(
                workflow,
                {"recipients": recipients},
                conn,
                journal,
                run_id="eta",
                progress=Watching(stream, clock=lambda: 0.0),
            )
    assert result.ok
    # One estimate per send (20 calls: fewer than 200), each the queue's drain time:
    # 20 one-segment messages over 1 + 1 + 3 per second all queued at once drain in 4 s.
    assert len(estimates) == 20
    assert {step for step, _ in estimates} == {"send"}
    assert estimates[-1][1] == pytest.approx(4.0, abs=0.1)
    assert "left" in stream.getvalue()


def test_a_host_passes_its_pacing_settings_through_the_plugin() -> None:
    """Plugin.connect takes the mapping a host keeps (an Airflow extra, a Prefect block field)."""
    from connector.plugin import installed

    plugin = installed().get("twilio")
    values = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}
    conn = plugin.connect(values, pacing={"senders": {"+18005550100": "5/s"}, "horizon": "15m"})
    assert conn.pacing and conn.pacing.horizon == 900
    assert conn.pacing.profile("+18005550100").rate == 5.0
    assert plugin.connect(values, pacing=False).pacing is False
    assert plugin.connect(values).pacing == conn.pacing.__class__()
    with pytest.raises(ValueError, match="unknown pacing settings"):
        plugin.connect(values, pacing={"rate": "1/s"})
