"""
Workflows that wait for replies (``twilio/wait_for_reply``): waiting items parked with
no task and no slot, one look per interval for the whole step, timeouts on the run's
clock, resume, the listener's webhooks, and the static checks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from handsets import Handsets
from virtual_clock import SteppingClock

from connector import Connection, default_connector
from connector._replies import Inbound, InboxCursor, ReplySettings
from connector._validation import compile_action
from connector.emulator import EmulatorServer
from connector.receiving import Listener
from connector.workflow import (
    Call,
    Interpreter,
    Journal,
    Looked,
    Outcome,
    ReplyWait,
    RunResult,
    StepSpec,
    check_workflow,
    fan_out,
    load_workflow,
    run_workflow,
)


SENDER = "+15005550006"
SERVICE = "MG" + "1" * 32
WAIT = compile_action(default_connector().actions["wait_for_reply"])


def people(count: int) -> list[str]:
    return [f"+1555123{n:04d}" for n in range(count)]


# -- the interpreter on its own ------------------------------------------------------


class Recorder:
    """Keeps outcomes in memory; counts the asyncio tasks alive whenever an item ends."""

    def __init__(self) -> None:
        self.items: dict[int, Outcome] = {}
        self.tasks_seen = 0

    def finished_step(self, step: StepSpec) -> None:
        return None

    def step_started(self, step: StepSpec, total: int | None) -> None:
        pass

    def item_finished(self, step: StepSpec, index: int, outcome: Outcome) -> None:
        self.items[index] = outcome
        self.tasks_seen = max(self.tasks_seen, len(asyncio.all_tasks()))

    async def step_finished(self, step: StepSpec, status: Any, error: Any, seconds: float) -> Any:
        from connector.workflow import StepResult

        outputs = [self.items[i].output for i in sorted(self.items)]
        return StepResult(step.id, step.uses, status, outputs, error=error, seconds=seconds)

    async def run_finished(self, result: RunResult, error: str | None) -> None:
        pass


class Inbox:
    """Incoming messages by the time they were sent; every look is counted."""

    def __init__(self, clock: SteppingClock) -> None:
        self.clock = clock
        self.messages: list[Inbound] = []
        self.looks: list[tuple[float, float]] = []

    def text(self, at: float, from_: str, body: str, to: str = SENDER) -> None:
        sid = f"SM{len(self.messages):032x}"
        event = {"MessageSid": sid, "From": from_, "To": to, "Body": body}
        self.messages.append(Inbound(at, event))

    async def look(self, step: StepSpec, ours: frozenset[str], cursor: InboxCursor) -> Looked:
        now = self.clock.now()
        self.looks.append((now, cursor.at))
        found = [
            m
            for m in self.messages
            if cursor.at <= m.at <= now and m.event["To"] in ours and m.sid not in cursor.seen
        ]
        found.sort(key=lambda m: m.at)
        return Looked(found, InboxCursor(now, frozenset(m.sid for m in found if m.at == now)))


WAITS = """
name: waits
inputs:
  people: {type: array}
steps:
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{ inputs.people }}
    concurrency: 4
    with:
      from: "+15005550006"
      to: ${{ item }}
      keywords: [A, B]
      timeout: 3600
      poll_interval: 60
outputs:
  statuses: ${{ steps.wait.outputs[*].status }}
"""


def interpreter(
    tmp_path: Path,
    clock: SteppingClock,
    recorder: Recorder,
    inbox: Inbox | None,
    text: str = WAITS,
    slow: frozenset[int] = frozenset(),
) -> Interpreter:
    async def call(request: Call) -> Outcome:
        # What a driver does: validate, note when the wait began, hand it over.
        settings = ReplySettings.from_inputs("wait_for_reply", WAIT.validate(request.inputs))
        await asyncio.sleep(0)
        if request.index in slow:
            await clock.sleep(100)  # a call that takes its time: this wait begins late
        return Outcome("succeeded", inputs=request.inputs, wait=ReplyWait(settings, clock.now()))

    path = tmp_path / "waits.yaml"
    path.write_text(text)
    return Interpreter(
        load_workflow(path),
        run_id="r",
        call=call,
        clock=clock,
        recorder=recorder,
        fan_out=fan_out,
        inbox=inbox,
    )


async def test_a_thousand_waiting_people_hold_no_task_and_share_each_look(
    tmp_path: Path,
) -> None:
    """1,000 waits: all begin at once on 4 slots, no task each, one look per minute for all."""
    clock, recorder = SteppingClock(1_000_000.0), Recorder()
    inbox = Inbox(clock)
    everyone = people(1000)
    for n, person in enumerate(everyone[:900]):
        inbox.text(1_000_000.0 + 1 + n * 3, person, "b" if n % 2 else "A")  # over 45 minutes
    run = interpreter(tmp_path, clock, recorder, inbox)
    baseline = len(asyncio.all_tasks())
    result = await run.run({"people": everyone}, {})
    assert result.ok
    statuses = result.outputs["statuses"]
    assert statuses.count("replied") == 900 and statuses.count("timed_out") == 100
    assert recorder.tasks_seen <= baseline + 4
    assert [recorder.items[n].output["keyword"] for n in (0, 1)] == ["A", "B"]
    # One look at once, then one a minute until the last deadline: 61 in an hour.
    assert len(inbox.looks) == 61
    assert clock.now() == pytest.approx(1_000_000.0 + 3600)


async def test_a_wait_that_begins_late_sees_what_came_before(tmp_path: Path) -> None:
    """The step's one cursor goes back for a wait that counts from earlier: nothing is missed."""
    clock, recorder = SteppingClock(1_000_000.0), Recorder()
    inbox = Inbox(clock)
    inbox.text(999_995.0, "+15551230001", "A")  # sent after the ask, before any wait began
    text = WAITS.replace("to: ${{ item }}", "to: ${{ item }}\n      after: '1970-01-12T13:46:30Z'")
    run = interpreter(tmp_path, clock, recorder, inbox, text, slow=frozenset({1}))
    result = await run.run({"people": ["+15551230000", "+15551230001"]}, {})
    assert result.outputs["statuses"] == ["timed_out", "replied"]
    # The first looks (for the first wait) moved the cursor past the answer; the first
    # one after the second wait began, 100 s late, went back to its `after`.
    assert inbox.looks[:3] == [
        (1_000_000.0, 999_990.0),
        (1_000_060.0, 1_000_000.0),
        (1_000_120.0, 999_990.0),
    ]


async def test_a_failed_look_times_nobody_out(tmp_path: Path) -> None:
    """While looks fail, no wait times out: the answer may be there; the next look finds it."""
    clock, recorder = SteppingClock(1_000_000.0), Recorder()
    inbox = Inbox(clock)
    inbox.text(1_000_010.0, "+15551230001", "B")
    failing = {"left": 70}

    class Flaky(Inbox):
        async def look(self, step: StepSpec, ours: frozenset[str], cursor: InboxCursor) -> Looked:
            if failing["left"]:
                failing["left"] -= 1
                return Looked(cursor=cursor, error="HTTP 503")
            return await super().look(step, ours, cursor)

    flaky = Flaky(clock)
    flaky.messages = inbox.messages
    run = interpreter(tmp_path, clock, recorder, flaky)
    result = await run.run({"people": ["+15551230001"]}, {})
    assert result.outputs["statuses"] == ["replied"]
    # Found by the 71st look, 70 minutes in: past the timeout, found all the same.
    assert len(flaky.looks) == 1 and clock.now() == 1_000_000.0 + 70 * 60


async def test_without_an_inbox_a_wait_fails_its_item(tmp_path: Path) -> None:
    """A driver that cannot look for replies fails the item, saying so."""
    clock, recorder = SteppingClock(0.0), Recorder()
    run = interpreter(tmp_path, clock, recorder, None)
    result = await run.run({"people": ["+15551230001"]}, {})
    assert result.status == "failed"
    assert recorder.items[0].error == "this driver cannot wait for replies"


# -- the local runner against the emulator -------------------------------------------


SURVEY = """
name: ask-and-wait
inputs:
  people: {type: array}
steps:
  - id: ask
    uses: twilio/send_text_message
    for_each: ${{ inputs.people }}
    with: {from: "+15005550006", to: "${{ item }}", body: "A or B?"}
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{ steps.ask.outputs }}
    concurrency: 2
    with:
      from: "+15005550006"
      to: ${{ item.to }}
      after: ${{ item.date_created }}
      keywords: [A, B]
      timeout: 600
      poll_interval: 30
outputs:
  statuses: ${{ steps.wait.outputs[*].status }}
  answers: ${{ steps.wait.outputs[*].keyword }}
"""


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    with Journal(tmp_path / "runs.sqlite3") as opened:
        yield opened


def workflow(tmp_path: Path, text: str = SURVEY) -> Any:
    path = tmp_path / "survey.yaml"
    path.write_text(text)
    return load_workflow(path)


async def test_answers_stops_and_silence_on_the_emulator(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """Replies posted as the handsets: keywords, a non-answer then an answer, STOP, silence."""
    handsets = Handsets(twilio_emulator)
    handsets.text(40, "+15551230000", SENDER, "a.")
    handsets.text(10, "+15551230001", SENDER, "what?")
    handsets.text(95, "+15551230001", SENDER, "B")
    handsets.text(70, "+15551230002", SENDER, "STOP")
    handsets.text(20, "+15551230003", "+15005550010", "A")  # to another number of ours
    result = await run_workflow(
        workflow(tmp_path), {"people": people(4)}, conn, journal, clock=handsets
    )
    assert result.ok, result.steps
    assert result.outputs["statuses"] == ["replied", "replied", "opted_out", "timed_out"]
    assert result.outputs["answers"] == ["A", "B"]
    wait = result.steps[1]
    first = wait.outputs[0]
    assert first["reply"]["Body"] == "a." and first["reply"]["From"] == "+15551230000"
    # Replies counted from when the question was made, as its date_created says.
    assert first["after"] == result.steps[0].outputs[0]["date_created"] is not None
    assert first["replied_at"] > first["after"]
    assert wait.outputs[2]["reply"]["Body"] == "STOP"
    # The STOP went to the consent ledger: the next send to them is skipped.
    assert await journal.consent.opted_out(SENDER, "+15551230002") is not None
    # The timeout follows the run's clock: 600 s after the wait began, not more.
    assert handsets.now() - handsets.start == pytest.approx(600, abs=1)


async def test_one_list_per_look_whatever_the_number_of_people(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """200 people waiting 600 s with a look every 30 s: about 21 lists, not 200 per look."""
    handsets = Handsets(twilio_emulator)
    crowd = people(200)
    for n, person in enumerate(crowd[:150]):
        handsets.text(5 + n, person, SENDER, "B")
    before = twilio_emulator.stats()["requests"]
    result = await run_workflow(
        workflow(tmp_path), {"people": crowd}, conn, journal, clock=handsets
    )
    assert result.ok
    assert result.outputs["statuses"].count("replied") == 150
    made = twilio_emulator.stats()["requests"] - before - 200  # less the 200 sends
    assert made <= 600 / 30 + 3, made


async def test_a_resumed_run_keeps_its_replies_and_finds_those_sent_meanwhile(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """Stopped mid-wait and resumed: a finished wait is not waited again; a reply sent while down is found."""
    handsets = Handsets(twilio_emulator)
    handsets.text(10, "+15551230000", SENDER, "A")
    handsets.stop_at = 45
    # One worker: the only sleeper is the one that looks, so the stop comes between looks.
    spec = workflow(tmp_path, SURVEY.replace("concurrency: 2", "concurrency: 1"))
    task = asyncio.create_task(
        run_workflow(spec, {"people": people(3)}, conn, journal, run_id="r1", clock=handsets)
    )
    await handsets.stopped.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await journal.flush()
    assert journal.item("r1", "wait", 0).state == "succeeded"
    waiting = journal.item("r1", "wait", 1)
    assert waiting.state == "started"  # still waiting when the run stopped
    # While the runner is down, person 1 answers; person 2 answers after the resume.
    handsets.advance(60)
    await handsets.send("+15551230001", SENDER, "b")
    handsets.advance(60)
    handsets.text(handsets.now() - handsets.start + 30, "+15551230002", SENDER, "A")
    result = await run_workflow(spec, {}, conn, journal, run_id="r1", clock=handsets)
    assert result.outputs["statuses"] == ["replied", "replied", "replied"]
    assert result.outputs["answers"] == ["A", "B", "A"]
    assert [i.resumed for i in result.steps[1].items] == [True, False, False]
    # The wait kept the moment it began: the timeout did not start again.
    assert journal.item("r1", "wait", 1).started == waiting.started


async def test_an_answer_after_the_deadline_does_not_count_though_found_later(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """A 60 s wait whose shared last look comes 900 s in: the answer at 800 s is late."""
    handsets = Handsets(twilio_emulator)
    handsets.text(800, "+15551230000", SENDER, "A")
    spec = workflow(
        tmp_path,
        SURVEY.replace("timeout: 600", "timeout: 60").replace(
            "poll_interval: 30", "poll_interval: 3600"
        ),
    )
    result = await run_workflow(spec, {"people": people(1)}, conn, journal, clock=handsets)
    assert handsets.now() - handsets.start > 800  # the look came after the answer
    assert result.outputs["statuses"] == ["timed_out"]


async def test_a_run_resumed_after_the_deadline_times_out_what_came_late(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """Down from 45 s to 745 s of a 600 s wait: an answer at 730 s is no answer."""
    handsets = Handsets(twilio_emulator)
    handsets.stop_at = 45
    spec = workflow(tmp_path, SURVEY.replace("concurrency: 2", "concurrency: 1"))
    task = asyncio.create_task(
        run_workflow(spec, {"people": people(1)}, conn, journal, run_id="r1", clock=handsets)
    )
    await handsets.stopped.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await journal.flush()
    handsets.advance(685)
    await handsets.send("+15551230000", SENDER, "A")
    handsets.advance(15)
    result = await run_workflow(spec, {}, conn, journal, run_id="r1", clock=handsets)
    assert result.outputs["statuses"] == ["timed_out"]


async def test_the_message_that_started_the_run_is_not_its_answer(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """'JOIN' starts the run, which asks and waits in the same second: JOIN is no answer."""
    joined = await twilio_emulator.inbound(to=SENDER, from_="+15551230000", body="JOIN")
    trigger = {"MessageSid": joined["sid"], "From": "+15551230000", "To": SENDER}
    text = """
name: signup
on:
  twilio/message_received: {to: "+15005550006"}
steps:
  - id: ask
    uses: twilio/send_text_message
    with: {from: "${{ trigger.To }}", to: "${{ trigger.From }}", body: "Your name?"}
  - id: answer
    uses: twilio/wait_for_reply
    with:
      from: ${{ trigger.To }}
      to: ${{ trigger.From }}
      after: ${{ steps.ask.outputs.date_created }}
      timeout: 600
      poll_interval: 30
outputs:
  status: ${{ steps.answer.outputs.status }}
  name: ${{ steps.answer.outputs.reply.Body }}
"""
    handsets = Handsets(twilio_emulator)
    handsets.text(100, "+15551230000", SENDER, "Ada")
    result = await run_workflow(
        workflow(tmp_path, text), {}, conn, journal, trigger=trigger, clock=handsets
    )
    assert result.outputs == {"status": "replied", "name": "Ada"}


async def test_replies_a_listener_journaled_are_seen(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """A webhook the listener journaled answers a waiting run, even before Twilio lists it."""
    listener = Listener([], journal, auth_token="token")
    handsets = Handsets(twilio_emulator)
    handsets.stop_at = 20  # the run waits; the test delivers the webhook meanwhile
    task = asyncio.create_task(
        run_workflow(workflow(tmp_path), {"people": people(1)}, conn, journal, clock=handsets)
    )
    await handsets.stopped.wait()
    # Received by `listen` (signature checked, journaled) but not in Twilio's list yet.
    listener.ingest(
        "twilio/message_received",
        {"MessageSid": "SM" + "a" * 32, "From": "+15551230000", "To": SENDER, "Body": "B"},
    )
    handsets.stopped.clear()
    result = await _resumed(task, handsets)
    assert result.outputs["statuses"] == ["replied"]
    assert result.steps[1].outputs[0]["reply"]["MessageSid"] == "SM" + "a" * 32


async def _resumed(task: asyncio.Task[RunResult], handsets: Handsets) -> RunResult:
    """Let the stopped sleep of *task* end (time moves on), and return its result."""
    handsets.release()
    return await task


async def test_a_messaging_service_is_answered_on_any_of_its_numbers(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """Waiting on a Messaging Service counts a reply to any of its numbers."""
    handsets = Handsets(twilio_emulator)
    handsets.text(15, "+15551230000", "+15005550010", "A", service=SERVICE)
    handsets.text(25, "+15551230001", "+15005550011", "A")  # not the service's
    text = f"""
name: service
inputs:
  people: {{type: array}}
steps:
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{{{ inputs.people }}}}
    with: {{messaging_service_sid: "{SERVICE}", to: "${{{{ item }}}}", timeout: 120}}
outputs:
  statuses: ${{{{ steps.wait.outputs[*].status }}}}
"""
    result = await run_workflow(
        workflow(tmp_path, text), {"people": people(2)}, conn, journal, clock=handsets
    )
    assert result.outputs["statuses"] == ["replied", "timed_out"]


SERVICE_SURVEY = f"""
name: service
inputs:
  people: {{type: array}}
steps:
  - id: ask
    uses: twilio/send_text_message
    for_each: ${{{{ inputs.people }}}}
    concurrency: 20
    with: {{from: "{SENDER}", to: "${{{{ item }}}}", body: "A or B?"}}
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{{{ steps.ask.outputs }}}}
    concurrency: 10
    with:
      messaging_service_sid: "{SERVICE}"
      to: ${{{{ item.to }}}}
      after: ${{{{ item.date_created }}}}
      keywords: [A, B]
      timeout: 600
      poll_interval: 30
outputs:
  statuses: ${{{{ steps.wait.outputs[*].status }}}}
"""


async def test_a_messaging_service_wait_does_not_page_the_account_again_each_look(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """
    Waiting on a Messaging Service lists every message (no ``To`` filter): 1,000
    questions, replies late in a 600 s wait, a look every 30 s. Once the questions are
    LIST_SETTLE old on Twilio's clock (the answers' Date), a look pages only what is new:
    75 lists in all, not 184 (eleven pages of questions at every look).
    """
    handsets = Handsets(twilio_emulator)
    handsets.text(500, "+15551230000", "+15005550010", "A", service=SERVICE)
    handsets.text(590, "+15551230001", "+15005550011", "B", service=SERVICE)
    before = twilio_emulator.stats()["requests"]
    result = await run_workflow(
        workflow(tmp_path, SERVICE_SURVEY), {"people": people(1000)}, conn, journal, clock=handsets
    )
    statuses = result.outputs["statuses"]
    assert statuses[:2] == ["replied", "replied"] and statuses.count("timed_out") == 998
    made = twilio_emulator.stats()["requests"] - before - 1000  # less the 1,000 sends
    # The six looks within LIST_SETTLE of the questions page through them (11 lists
    # each); the other 15 list one page.
    assert made <= 6 * 11 + 15, made


async def test_on_timeout_fail_fails_the_item_with_the_reason(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """on_timeout: fail makes silence a failed item (and a failed step), saying who and how long."""
    handsets = Handsets(twilio_emulator)
    text = SURVEY.replace("poll_interval: 30", "poll_interval: 30\n      on_timeout: fail")
    result = await run_workflow(
        workflow(tmp_path, text), {"people": people(1)}, conn, journal, clock=handsets
    )
    assert result.status == "failed"
    assert result.steps[1].items[0].error == "no reply from +15551230000 within 600 s"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("      poll_interval: 30\n", "      poll_interval: 30\n    wait_until: {condition: '${{ true }}'}\n"),
            "waits by itself (timeout, poll_interval); remove wait_until",
        ),
        (("keywords: [A, B]", "pattern: 'yes(?!terday)'"), "not a pattern RE2 can run"),
        (("keywords: [A, B]", "keywords: []"), "keywords: must have at least 1 item"),
        (("timeout: 600", "timeout: 0"), "timeout: must be between 1 and 2592000"),
        (
            ("  answers: ${{ steps.wait.outputs[*].keyword }}", "  body: ${{ steps.wait.outputs[0].reply.Bodyy }}"),
            "has no field 'Bodyy'; did you mean 'Body'?",
        ),
        (
            ("  answers: ${{ steps.wait.outputs[*].keyword }}", "  x: ${{ steps.wait.outputs[0].keywrd }}"),
            "did you mean 'keyword'?",
        ),
    ],
)  # fmt: skip
def test_static_checks_know_the_step(tmp_path: Path, change: tuple[str, str], problem: str) -> None:
    """validate reports misuse and misread outputs of wait_for_reply before anything runs."""
    problems = check_workflow(workflow(tmp_path, SURVEY.replace(*change)), default_connector())
    assert any(problem in str(p) for p in problems), problems
    assert check_workflow(workflow(tmp_path, SURVEY), default_connector()) == []


OPTED_OUT = """
name: opted-out
inputs:
  people: {type: array}
  after: {type: string}
steps:
  - id: wait
    uses: twilio/wait_for_reply
    for_each: ${{ inputs.people }}
    with: {from: "+15005550006", to: "${{ item }}", after: "${{ inputs.after }}"}
outputs:
  statuses: ${{ steps.wait.outputs[*].status }}
"""


async def test_people_who_opted_out_end_at_the_first_look(
    twilio_emulator: EmulatorServer, conn: Connection, journal: Journal, tmp_path: Path
) -> None:
    """The ledger says they opted out: no day's wait; a STOP sent after the question is the reply."""
    handsets = Handsets(twilio_emulator)
    await journal.consent.record(SENDER, "+15551230000", "opted_out", "import")
    # Person 1 texted STOP after the question, before the wait began (a listener or a
    # poller recorded it): the wait shows that message.
    await handsets.send("+15551230001", SENDER, "STOP")
    await journal.consent.record(SENDER, "+15551230001", "opted_out", "STOP")
    after = dt.datetime.fromtimestamp(handsets.start - 5, dt.UTC).isoformat()
    result = await run_workflow(
        workflow(tmp_path, OPTED_OUT),
        {"people": people(2), "after": after},
        conn,
        journal,
        clock=handsets,
    )
    assert result.outputs["statuses"] == ["opted_out", "opted_out"]
    outputs = result.steps[0].outputs
    assert outputs[0]["reply"] is None and outputs[1]["reply"]["Body"] == "STOP"
    assert handsets.now() - handsets.start < 1


def test_a_host_without_an_interpreter_gets_the_reply_itself() -> None:
    """A task or an operator running the call through ActionRunner waits for the answer (no parked wait)."""
    from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, CREATED_AT, FakeTwilio
    from virtual_clock import run_virtual

    from connector.workflow import ActionRunner, CallRequest

    async def scenario() -> None:
        fake = FakeTwilio()
        fake.inbound("+15551230001", SENDER, "B", CREATED_AT + 30)
        inputs = {"to": "+15551230001", "from": SENDER, "after": "2023-08-24T05:00:00Z"}
        async with Connection(
            ACCOUNT_SID, AUTH_TOKEN, transport=fake.transport(), rate_limit=False, env={}
        ) as conn:
            runner = ActionRunner(conn)
            outcome = await runner.run(CallRequest("twilio/wait_for_reply", inputs, "task"))
            assert outcome.wait is None and outcome.status == "succeeded"
            assert outcome.output["status"] == "replied"
            assert outcome.output["reply"]["Body"] == "B"
            failing = {**inputs, "to": "+15551230002", "timeout": 60, "on_timeout": "fail"}
            failed = await runner.run(CallRequest("twilio/wait_for_reply", failing, "task"))
            assert failed.status == "failed"
            assert failed.error == "no reply from +15551230002 within 60 s"
            parked = await runner.run(
                CallRequest("twilio/wait_for_reply", inputs, "run/wait/0", park=True)
            )
            assert parked.wait is not None and parked.output is None

    run_virtual(scenario())
