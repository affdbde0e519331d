"""Running workflows in process against the emulator: outputs, failures, waits, paging, resume."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connector import (
    AiohttpTransport,
    Connection,
    HttpRequest,
    HttpResponse,
    RetryPolicy,
    default_connector,
)
from connector.emulator import Clock, EmulatorServer, FaultConfig
from connector.errors import ConnectError
from connector.testing import EmulatorFactory
from connector.workflow import (
    Journal,
    RunError,
    RunResult,
    WorkflowError,
    load_workflow,
    run_workflow,
)


DATA = Path(__file__).parent / "data" / "workflows"
SENDER = "+15005550006"


def workflow(text: str) -> Any:
    return load_workflow(DATA / "inline.yaml", text=text)


def connect(emulator: EmulatorServer, **options: Any) -> Connection:
    options.setdefault("rate_limit", False)
    return Connection(
        emulator.account_sid,
        emulator.auth_token,
        base_url=emulator.base_url,
        env={},
        **options,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    """A journal in a temporary file."""
    with Journal(tmp_path / "runs.sqlite3") as opened:
        yield opened  # type: ignore[misc]


@pytest.fixture
async def emulator(twilio_emulator_factory: EmulatorFactory) -> EmulatorServer:
    """An emulator on the real clock, delivering at once."""
    return await twilio_emulator_factory(clock=Clock())


@pytest.fixture
async def conn(emulator: EmulatorServer) -> AsyncIterator[Connection]:
    """A connection to the emulator without a rate limit."""
    async with connect(emulator) as opened:
        yield opened


BROADCAST = """
name: broadcast
inputs:
  recipients: {type: array, default: ["+15005550101", "+15005550102", "+15005550103"]}
  greeting: {type: string, default: Hello}
steps:
  - id: send
    uses: twilio/send_text_message
    for_each: ${{ inputs.recipients }}
    concurrency: 2
    with:
      from: "+15005550006"
      to: ${{ item }}
      body: "${{ inputs.greeting }} #${{ index }}"
  - id: after
    uses: twilio/get_message
    with: {MessageId: "${{ steps.send.outputs[0].sid }}"}
outputs:
  sids: ${{ steps.send.outputs[*].sid }}
  first_status: ${{ steps.after.outputs.status }}
"""


async def test_fan_out_sends_one_message_per_item(
    conn: Connection, journal: Journal, emulator: EmulatorServer
) -> None:
    """A for_each step sends one message per item, and later steps read its outputs."""
    result = await run_workflow(workflow(BROADCAST), {"greeting": "Hi"}, conn, journal)
    assert result.ok
    assert [s.status for s in result.steps] == ["succeeded", "succeeded"]
    assert len(result.outputs["sids"]) == 3
    assert result.outputs["first_status"] == "delivered"
    bodies = {m["to"]: m["body"] for m in emulator.messages()}
    assert bodies == {
        "+15005550101": "Hi #0",
        "+15005550102": "Hi #1",
        "+15005550103": "Hi #2",
    }
    record = journal.run(result.run_id)
    assert record is not None
    assert record.state == "succeeded"
    assert record.inputs == {
        "recipients": ["+15005550101", "+15005550102", "+15005550103"],
        "greeting": "Hi",
    }


async def test_a_failed_item_fails_the_step_and_stops_the_run(
    conn: Connection, journal: Journal
) -> None:
    """An invalid recipient fails its item with Twilio's code; the other items still run."""
    result = await run_workflow(
        workflow(BROADCAST),
        {"recipients": '["+15005550101", "+15005550001"]'},
        conn,
        journal,
    )
    assert result.status == "failed"
    (send,) = result.steps  # the step after the failure did not run
    assert send.status == "failed"
    assert [i.status for i in send.items] == ["succeeded", "failed"]
    assert send.items[1].error_code == 21211
    assert send.outputs[1] is None
    assert result.outputs["first_status"] is None


async def test_continue_on_error_and_if(conn: Connection, journal: Journal) -> None:
    """continue_on_error lets the run go on; a false if skips a step."""
    text = """
name: x
steps:
  - id: bad
    uses: twilio/send_text_message
    continue_on_error: true
    with: {from: "+15005550006", to: "+15005550001", body: hi}
  - id: skipped
    if: ${{ steps.bad.status == 'succeeded' }}
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550101", body: never}
  - id: ran
    if: steps.bad.status == 'failed'
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550101", body: fallback}
"""
    result = await run_workflow(workflow(text), {}, conn, journal)
    assert result.ok
    assert [s.status for s in result.steps] == ["failed", "skipped", "succeeded"]
    assert result.steps[0].items[0].error_code == 21211


async def test_wait_until_polls_until_the_condition_holds(
    twilio_emulator_factory: EmulatorFactory, journal: Journal
) -> None:
    """wait_until repeats get_message until the status is final, here undelivered."""
    emulator = await twilio_emulator_factory(delivery_delay=3.0)
    text = """
name: wait
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005530003", body: hi}
  - id: wait
    uses: twilio/get_message
    with: {MessageId: "${{ steps.send.outputs.sid }}"}
    wait_until:
      condition: ${{ contains(['delivered', 'undelivered', 'failed'], outputs.status) }}
      interval: 0.01
      timeout: 10
"""
    async with connect(emulator) as conn:
        task = asyncio.create_task(run_workflow(workflow(text), {}, conn, journal))
        # Move the emulator's clock only once the runner is polling a queued message.
        for _ in range(2000):
            if emulator.stats()["requests"] >= 3:
                break
            await asyncio.sleep(0.005)
        for _ in range(10):
            emulator.advance(1.0)
            if emulator.messages()[0]["status"] == "undelivered":
                break
        result = await task
    assert result.ok
    final = result.steps[1].outputs
    assert (final["status"], final["error_code"]) == ("undelivered", 30003)


async def test_wait_until_times_out(
    twilio_emulator_factory: EmulatorFactory, journal: Journal
) -> None:
    """A condition that never holds fails the step once the timeout has passed."""
    emulator = await twilio_emulator_factory(delivery_delay=3.0)
    text = """
name: wait
steps:
  - id: send
    uses: twilio/send_text_message
    with: {from: "+15005550006", to: "+15005550101", body: hi}
  - id: wait
    uses: twilio/get_message
    with: {MessageId: "${{ steps.send.outputs.sid }}"}
    wait_until: {condition: "${{ outputs.status == 'delivered' }}", interval: 0.01, timeout: 0.05}
"""
    async with connect(emulator) as conn:
        result = await run_workflow(workflow(text), {}, conn, journal)
    assert result.status == "failed"
    assert "still false after 0.05s" in (result.steps[1].items[0].error or "")


async def test_paging_into_a_json_lines_file(
    conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """A paginate step follows every next link, and write_jsonl writes one line per item."""
    for n in range(5):
        await conn.call(
            "send_text_message", {"from": SENDER, "to": "+15005550101", "body": f"m{n}"}
        )
    out = tmp_path / "export.jsonl"
    text = f"""
name: export
steps:
  - id: page
    uses: twilio/list_messages_v2
    paginate: true
    with: {{PageSize: 2, DateSentAfter: "${{{{ days_ago(`1`) }}}}"}}
  - id: write
    uses: workflow/write_jsonl
    with: {{path: "{out}", items: "${{{{ steps.page.outputs }}}}"}}
outputs:
  count: ${{{{ steps.write.outputs.count }}}}
"""
    result = await run_workflow(workflow(text), {}, conn, journal)
    assert result.ok, result
    assert result.outputs["count"] == 5
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(m["body"] for m in lines) == ["m0", "m1", "m2", "m3", "m4"]


async def test_resume_skips_finished_items(
    conn: Connection, journal: Journal, emulator: EmulatorServer
) -> None:
    """Resuming a failed run does not resend the items that succeeded."""
    wf = workflow(BROADCAST)
    given = {"recipients": '["+15005550101", "+15005550001", "+15005550102"]'}
    first = await run_workflow(wf, given, conn, journal, run_id="r1")
    assert first.status == "failed"
    assert len(emulator.messages()) == 2
    again = await run_workflow(wf, {}, conn, journal, run_id="r1")
    items = again.steps[0].items
    assert [(i.status, i.resumed) for i in items] == [
        ("succeeded", True),
        ("failed", False),
        ("succeeded", True),
    ]
    assert len(emulator.messages()) == 2
    assert [i.output["sid"] for i in items if i.output] == [
        i.output["sid"] for i in first.steps[0].items if i.output
    ]


def _forget_outcomes(journal: Journal, run_id: str) -> None:
    """Make the journal look as if the process died after starting every send."""
    db = sqlite3.connect(journal.path)
    with db:
        db.execute(
            "UPDATE item_rows SET state = 0, sid = NULL, status = NULL, output = NULL"
            " WHERE step_key IN (SELECT key FROM step_keys WHERE run_id = ?)",
            (run_id,),
        )
        db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
        db.execute("UPDATE runs SET state = 'running', pid = NULL WHERE run_id = ?", (run_id,))
    db.close()


async def test_unknown_outcomes_are_reconciled_not_resent(
    conn: Connection, journal: Journal, emulator: EmulatorServer
) -> None:
    """On resume, a send left 'started' is found through the list action instead of resent."""
    wf = workflow(BROADCAST)
    first = await run_workflow(wf, {}, conn, journal, run_id="r2")
    assert first.ok
    sids = [i.output["sid"] for i in first.steps[0].items]
    _forget_outcomes(journal, "r2")
    # One message really was lost: that one alone must be sent again.
    await conn.call("delete_message", {"MessageId": sids[1]})
    again = await run_workflow(wf, {}, conn, journal, run_id="r2")
    assert again.ok
    items = again.steps[0].items
    assert [i.reconciled for i in items] == [True, False, True]
    assert [items[0].output["sid"], items[2].output["sid"]] == [sids[0], sids[2]]
    recipients = sorted(m["to"] for m in emulator.messages())
    assert recipients == ["+15005550101", "+15005550102", "+15005550103"]


async def test_same_recipient_twice_is_not_reconciled_to_one_message(
    conn: Connection, journal: Journal, emulator: EmulatorServer
) -> None:
    """Two items with the same recipient and body are matched to two different messages."""
    text = BROADCAST.replace('body: "${{ inputs.greeting }} #${{ index }}"', "body: same")
    wf = workflow(text)
    given = {"recipients": '["+15005550101", "+15005550101"]'}
    first = await run_workflow(wf, given, conn, journal, run_id="r3")
    _forget_outcomes(journal, "r3")
    again = await run_workflow(wf, {}, conn, journal, run_id="r3")
    assert [i.reconciled for i in again.steps[0].items] == [True, True]
    assert {i.output["sid"] for i in again.steps[0].items} == {
        i.output["sid"] for i in first.steps[0].items
    }
    assert len(emulator.messages()) == 2


async def test_dropped_responses_never_duplicate_a_send(
    twilio_emulator_factory: EmulatorFactory, journal: Journal
) -> None:
    """When responses to sends are lost, each recipient still gets exactly one message."""
    emulator = await twilio_emulator_factory(
        clock=Clock(), faults=FaultConfig(seed=7, drop_rate=0.3)
    )
    recipients = [f"+1500555{n:04d}" for n in range(200, 230)]
    async with connect(emulator, retry=RetryPolicy(backoff=0.0, attempts=8)) as conn:
        result = await run_workflow(workflow(BROADCAST), {"recipients": recipients}, conn, journal)
    assert result.ok, [i.error for i in result.steps[0].items if i.error]
    assert any(i.reconciled for i in result.steps[0].items)
    sent = sorted(m["to"] for m in emulator.messages())
    assert sent == recipients


class CountingTransport:
    """An aiohttp transport that records the most requests in flight at once."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.active = 0
        self.most = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            return await self.inner.send(request)
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_fan_out_respects_the_concurrency(emulator: EmulatorServer, journal: Journal) -> None:
    """No more than the step's concurrency calls are in flight at once."""
    transport = CountingTransport()
    recipients = [f"+1500555{n:04d}" for n in range(300, 340)]
    async with connect(emulator, transport=transport) as conn:
        result = await run_workflow(workflow(BROADCAST), {"recipients": recipients}, conn, journal)
    assert result.ok
    assert transport.most == 2


async def test_inputs_are_typed_and_checked(conn: Connection, journal: Journal) -> None:
    """Unknown, missing and mistyped inputs are refused before anything runs."""
    text = """
name: x
inputs:
  n: {type: integer, required: true}
  flag: {type: boolean, default: false}
steps:
  - {id: a, uses: twilio/list_messages_v2, with: {PageSize: "${{ inputs.n }}"}}
outputs:
  n: ${{ inputs.n }}
  flag: ${{ inputs.flag }}
"""
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(workflow(text), {"m": "1", "flag": "maybe"}, conn, journal)
    messages = sorted(str(p) for p in caught.value.problems)
    assert any("inputs.m: unknown input" in m for m in messages)
    assert any("inputs.flag: must be of type boolean" in m for m in messages)
    assert any("inputs.n: is required" in m for m in messages)
    result = await run_workflow(workflow(text), {"n": "7", "flag": "yes"}, conn, journal)
    assert dict(result.outputs) == {"n": 7, "flag": True}


async def test_resume_refuses_changed_inputs_or_workflow(
    conn: Connection, journal: Journal
) -> None:
    """A resumed run keeps its inputs and its workflow; changing either is refused."""
    wf = workflow(BROADCAST)
    await run_workflow(wf, {"greeting": "Hi"}, conn, journal, run_id="r4")
    with pytest.raises(RunError, match="greeting"):
        await run_workflow(wf, {"greeting": "Yo"}, conn, journal, run_id="r4")
    changed = workflow(BROADCAST.replace("concurrency: 2", "concurrency: 3"))
    with pytest.raises(RunError, match="changed"):
        await run_workflow(changed, {}, conn, journal, run_id="r4")
    result: RunResult = await run_workflow(wf, {"greeting": "Hi"}, conn, journal, run_id="r4")
    assert all(step.resumed for step in result.steps)


async def test_invalid_workflow_is_refused_before_any_call(
    conn: Connection, journal: Journal, emulator: EmulatorServer
) -> None:
    """run_workflow performs the static checks first and sends nothing when they fail."""
    text = BROADCAST.replace("outputs[0].sid", "outputs[0].sidd")
    with pytest.raises(WorkflowError, match="did you mean 'sid'"):
        await run_workflow(workflow(text), {}, conn, journal)
    assert emulator.messages() == []
    assert journal.runs() == []


def test_bar_progress_draws_each_step() -> None:
    """The terminal progress reporter shows each step with its count and final status."""
    import io

    from connector.cli._progress import BarProgress

    stream = io.StringIO()
    with BarProgress(stream) as bars:
        bars.step_started("send", 4)
        bars.advance("send", 4)
        bars.step_finished("send", "succeeded")
        bars.step_finished("skipped", "skipped")
    text = stream.getvalue()
    assert "send (succeeded)" in text
    assert "4/4" in text
    assert "skipped (skipped)" in text


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_line_progress_shows_rate_failures_and_time_left() -> None:
    """Progress lines carry the rate, the failures so far and the time left; failures are named by their item."""
    import io

    from connector.cli._progress import LineProgress

    clock = FakeClock()
    stream = io.StringIO()
    lines = LineProgress(stream, clock=clock)
    lines.step_started("send", 100)
    clock.now += 5.0
    lines.item_failed("send", 3, "+15005550001", "HTTP 400, Twilio error 21211")
    lines.item_failed("get", 0, None, "not found")
    lines.advance("send", 10)
    clock.now += 5.0
    lines.eta("send", 90.0)
    lines.advance("send", 10)
    clock.now += 10.0
    lines.step_finished("send", "failed")
    said = [line.removeprefix("twilio-connector run: ") for line in stream.getvalue().splitlines()]
    assert said == [
        "step send: started (100 calls)",
        "send +15005550001 failed: HTTP 400, Twilio error 21211",
        "get[0] failed: not found",
        "step send: 10/100, 2.0/s, 1 failed, ~0:00:45 left",
        "step send: 20/100, 2.0/s, 1 failed, ~0:01:30 left",
        "step send: failed (20 done, 1 failed, in 0:00:20)",
    ]


def test_bar_progress_counts_and_names_failures() -> None:
    """The bars count failures and show the pacing layer's time left; failed items are named above them."""
    import io

    from connector.cli._progress import BarProgress

    stream = io.StringIO()
    with BarProgress(stream) as bars:
        bars.step_started("send", 4)
        bars.item_failed("send", 1, "+15005550001", "HTTP 400")
        bars.eta("send", 3725.0)
        bars.advance("send", 2)
    text = stream.getvalue()
    assert "send +15005550001 failed: HTTP 400" in text
    assert "1 failed" in text
    assert "~1:02:0" in text  # 1:02:05 less the moments the test took


def test_failed_items_are_named_by_their_recipient() -> None:
    """A send's label is its to input; other actions' items have none (their index names them)."""
    from connector.workflow import item_label

    actions = default_connector().actions
    assert item_label(actions["send_text_message"], {"to": "+15551234567", "body": "x"}) == (
        "+15551234567"
    )
    assert item_label(actions["get_message"], {"MessageId": "SM1"}) is None
    assert item_label(actions["send_text_message"], None) is None
    assert item_label(None, {"to": "+1"}) is None


class ListFailsTransport:
    """An aiohttp transport on which every message lookup (GET of the list) cannot connect."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()

    async def send(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET" and request.url.split("?")[0].endswith("/Messages.json"):
            raise ConnectError("lookup refused", method=request.method, url=request.url)
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_failed_lookup_fails_the_item_and_keeps_it_for_the_next_resume(
    conn: Connection, journal: Journal, emulator: EmulatorServer
) -> None:
    """When reconciliation cannot look messages up, the run ends failed (no crash, no resend) and a later resume reconciles."""
    wf = workflow(BROADCAST)
    first = await run_workflow(wf, {}, conn, journal, run_id="r4")
    assert first.ok
    _forget_outcomes(journal, "r4")
    async with connect(
        emulator, transport=ListFailsTransport(), retry=RetryPolicy.never()
    ) as broken:
        again = await run_workflow(wf, {}, broken, journal, run_id="r4")
    assert again.status == "failed"
    items = again.steps[0].items
    assert [i.status for i in items] == ["failed"] * 3
    assert all("lookup refused" in (i.error or "") for i in items)
    assert len(emulator.messages()) == 3  # nothing was resent
    assert {r.state for r in journal.items("r4", "send").values()} == {"started"}
    third = await run_workflow(wf, {}, conn, journal, run_id="r4")
    assert third.ok
    assert [i.reconciled for i in third.steps[0].items] == [True, True, True]
    assert len(emulator.messages()) == 3
