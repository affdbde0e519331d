"""The interpreter on its own: a fake call, a virtual clock, an in-memory recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest
from virtual_clock import SteppingClock

from connector.workflow import (
    Call,
    Interpreter,
    ItemResult,
    LazyList,
    Outcome,
    RunResult,
    StepResult,
    StepSpec,
    fan_out,
    load_workflow,
)


class Clock(SteppingClock):
    """Time that passes only when the interpreter sleeps."""


class Recorder:
    """Keeps everything in memory, and counts the asyncio tasks alive at each outcome."""

    def __init__(self) -> None:
        self.items: dict[str, dict[int, ItemResult]] = {}
        self.tasks_seen = 0

    def finished_step(self, step: StepSpec) -> StepResult | None:
        return None

    def step_started(self, step: StepSpec, total: int | None) -> None:
        self.items[step.id] = {}

    def item_finished(self, step: StepSpec, index: int, outcome: Outcome) -> None:
        self.items[step.id][index] = outcome.result(index)
        self.tasks_seen = max(self.tasks_seen, len(asyncio.all_tasks()))

    async def step_finished(
        self, step: StepSpec, status: Any, error: str | None, seconds: float
    ) -> StepResult:
        items = tuple(v for _, v in sorted(self.items.get(step.id, {}).items()))
        outputs = [i.output for i in items] if step.for_each is not None else None
        if step.for_each is None and items:
            outputs = items[0].output
        return StepResult(step.id, step.uses, status, outputs, items, error, seconds=seconds)

    async def run_finished(self, result: RunResult, error: str | None) -> None:
        pass


POLLS = """
name: polls
inputs:
  items: {type: array}
steps:
  - id: wait
    uses: twilio/get_message
    for_each: ${{ inputs.items }}
    concurrency: 4
    with: {MessageId: "${{ item }}"}
    wait_until: {condition: "${{ outputs.polls >= `3` }}", interval: 10, timeout: 1000}
outputs:
  done: ${{ length(steps.wait.outputs) }}
"""


def interpreter(
    text: str,
    call: Callable[[Call], Coroutine[Any, Any, Outcome]],
    clock: Clock,
    recorder: Recorder,
    tmp_path: Any,
) -> Interpreter:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    return Interpreter(
        load_workflow(path),
        run_id="r",
        call=call,
        clock=clock,
        recorder=recorder,
        fan_out=fan_out,
    )


async def test_waiting_items_hold_no_task_and_no_slot(tmp_path: Any) -> None:
    """300 items waiting on wait_until are parked: every first call happens before the first poll, on 4 tasks."""
    clock, recorder = Clock(), Recorder()
    polls: dict[int, int] = {}
    first_calls_at: list[float] = []

    async def call(request: Call) -> Outcome:
        index = request.index
        if not request.repeat:
            first_calls_at.append(clock.now())
        polls[index] = polls.get(index, 0) + 1
        await asyncio.sleep(0)
        return Outcome("succeeded", {"polls": polls[index]})

    run = interpreter(POLLS, call, clock, recorder, tmp_path)
    baseline = len(asyncio.all_tasks())
    result = await run.run({"items": list(range(300))}, {})
    assert result.ok and result.outputs["done"] == 300
    assert len(first_calls_at) == 300 and set(first_calls_at) == {0.0}
    assert all(count == 3 for count in polls.values())
    assert recorder.tasks_seen <= baseline + 4
    # Two polls after the first call, ten seconds apart: time moved 20 s, not 300 x 20.
    assert clock.now() == pytest.approx(20.0)


async def test_a_failing_item_fails_its_step_and_the_run(tmp_path: Any) -> None:
    """One failed item fails the for_each step, and the run stops there."""
    clock, recorder = Clock(), Recorder()

    async def call(request: Call) -> Outcome:
        if request.inputs["MessageId"] == "2":
            return Outcome("failed", error="no such message", error_code=20404)
        return Outcome("succeeded", {"sid": request.inputs["MessageId"]})

    text = """
name: f
steps:
  - id: get
    uses: twilio/get_message
    for_each: ["1", "2", "3"]
    with: {MessageId: "${{ item }}"}
  - id: never
    uses: twilio/get_message
    with: {MessageId: "4"}
"""
    result = await interpreter(text, call, clock, recorder, tmp_path).run({}, {})
    assert result.status == "failed"
    (step,) = result.steps
    assert step.error == "1 of 3 items failed"
    assert [i.status for i in step.items] == ["succeeded", "failed", "succeeded"]
    assert step.items[1].error_code == 20404


async def test_an_unexpected_error_in_one_worker_cancels_the_others(tmp_path: Any) -> None:
    """A bug in a call (not a failed outcome) propagates, and the step's other workers stop."""
    clock, recorder = Clock(), Recorder()
    cancelled: list[int] = []

    async def call(request: Call) -> Outcome:
        if request.index == 0:
            raise RuntimeError("bug")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(request.index)
            raise
        raise AssertionError("unreachable")

    text = """
name: f
steps:
  - id: get
    uses: twilio/get_message
    for_each: ["0", "1", "2"]
    concurrency: 3
    with: {MessageId: "${{ item }}"}
"""
    with pytest.raises(BaseExceptionGroup) as raised:
        await interpreter(text, call, clock, recorder, tmp_path).run({}, {})
    assert raised.group_contains(RuntimeError, match="bug")
    assert sorted(cancelled) == [1, 2]


async def test_the_fan_out_is_the_drivers_choice(tmp_path: Any) -> None:
    """The interpreter runs a step's workers through the driver's fan-out (here counted)."""
    clock, recorder = Clock(), Recorder()
    widths: list[int] = []

    async def counting(workers: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        widths.append(len(workers))
        await asyncio.gather(*(w() for w in workers))

    async def call(request: Call) -> Outcome:
        return Outcome("succeeded", {"sid": request.inputs["MessageId"]})

    path = tmp_path / "w.yaml"
    path.write_text(
        "name: f\nsteps:\n  - id: get\n    uses: twilio/get_message\n"
        "    for_each: ['1', '2', '3', '4', '5']\n    concurrency: 3\n"
        "    with: {MessageId: '${{ item }}'}\n"
        "  - id: one\n    uses: twilio/get_message\n    with: {MessageId: '9'}\n"
    )
    run = Interpreter(
        load_workflow(path), run_id="r", call=call, clock=clock, recorder=recorder, fan_out=counting
    )
    result = await run.run({}, {})
    assert result.ok and widths == [3, 1]


DELEGATED = """
name: d
inputs:
  greeting: {type: string, default: hi}
steps:
  - id: get
    uses: twilio/get_message
    for_each: ["a", "b", "c", "d", "e"]
    with: {MessageId: "${{ inputs.greeting }}-${{ item }}-${{ index }}"}
  - id: count
    uses: twilio/get_message
    with: {MessageId: "${{ length(steps.get.outputs) }}"}
outputs:
  counted: ${{ steps.count.outputs.sid }}
  all: ${{ steps.get.outputs[*].sid }}
"""


async def test_a_driver_can_run_a_step_in_batches_with_the_same_interpreter(
    tmp_path: Any,
) -> None:
    """A delegate takes a for_each step and runs its items a batch at a time through run_items."""
    clock, recorder = Clock(), Recorder()
    calls: list[tuple[int, str]] = []

    async def call(request: Call) -> Outcome:
        calls.append((request.index, request.inputs["MessageId"]))
        return Outcome("succeeded", {"sid": request.inputs["MessageId"]})

    path = tmp_path / "w.yaml"
    path.write_text(DELEGATED)
    workflow = load_workflow(path)
    run: Interpreter

    async def delegate(step: StepSpec, items: Any, total: int | None) -> StepResult | None:
        assert total == 5
        listed = list(items)
        done = 0
        for start in range(0, len(listed), 2):  # each batch through a fresh interpreter
            batch = Interpreter(
                workflow, run_id="r", call=call, clock=clock, recorder=Recorder(), fan_out=fan_out
            )
            part = await batch.run_items(
                step, run.context, enumerate(listed[start : start + 2], start), 2
            )
            done += len(part.items)
        view = LazyList("steps.get.outputs", lambda: done, lambda: iter(()), limit=0)
        return StepResult(step.id, step.uses, "succeeded", view)

    run = Interpreter(
        workflow,
        run_id="r",
        call=call,
        clock=clock,
        recorder=recorder,
        fan_out=fan_out,
        delegate=delegate,
    )
    result = await run.run({"greeting": "hey"}, {})
    assert sorted(calls[:5]) == [(i, f"hey-{x}-{i}") for i, x in enumerate("abcde")]
    assert result.ok and result.outputs["counted"] == 5
    # Only the length of a view is readable; reading its items is refused, with a hint.
    assert result.outputs["all"] is None
    assert "runs export" in run.output_errors["all"]


async def test_a_for_each_over_a_view_fails_its_step_with_a_hint(tmp_path: Any) -> None:
    """for_each over outputs kept elsewhere fails the step (nothing is called), naming runs export."""
    clock, recorder = Clock(), Recorder()

    async def call(request: Call) -> Outcome:
        raise AssertionError("nothing may be called")

    path = tmp_path / "w.yaml"
    path.write_text(
        "name: v\ninputs:\n  view: {type: array}\nsteps:\n"
        "  - id: get\n    uses: twilio/get_message\n    for_each: ${{ inputs.view }}\n"
        "    with: {MessageId: '${{ item }}'}\n"
    )
    workflow = load_workflow(path)
    run = Interpreter(
        workflow, run_id="r", call=call, clock=clock, recorder=recorder, fan_out=fan_out
    )
    view = LazyList("steps.send.outputs", lambda: 3, lambda: iter(()), limit=0)
    result = await run.run({"view": view}, {})
    (step,) = result.steps
    assert step.status == "failed" and step.error is not None
    assert "steps.send.outputs has 3 items, kept outside this run" in step.error
