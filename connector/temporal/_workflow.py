# SPDX-License-Identifier: MIT
"""
The generic Temporal workflow that runs a YAML workflow durably: a thin driver of the
one interpreter (:class:`connector.workflow.Interpreter`).

It is kept in its own module because Temporal's sandbox re-imports the module that
defines a workflow on every run. The connector's own modules are passed through the
sandbox: they are deterministic, and re-importing them (jsonschema, jmespath, the
manifest) for every run would cost far more than the run's own work.

What the driver gives the interpreter: each call is an activity named as the step's
``uses`` (``invoke_action`` for built-ins), whose history is what makes the run
durable; the clock is workflow time (``wait_until`` waits on durable timers); results
are kept in the workflow; ``read_csv``/``read_json``/``read_lines`` read files that the
submitter bundled with the run (:func:`connector.temporal.bundle_files`); a step's
workers run under ``asyncio.gather``, because an ``ExceptionGroup`` from a task group
would not fail a Temporal workflow (temporalio sdk-python#1020).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError


with workflow.unsafe.imports_passed_through():
    from ..workflow import (
        BUILTIN_CONNECTOR,
        Call,
        CsvRow,
        Interpreter,
        ItemResult,
        Outcome,
        RunResult,
        StepResult,
        StepSpec,
        WorkflowFunctions,
        brief,
        csv_rows,
        load_workflow,
    )
    from ._activities import ACTIVITY_NAME, ActionCall


__all__ = ["WORKFLOW_NAME", "ConnectorWorkflow", "WorkflowRun"]

#: The workflow's registered name.
WORKFLOW_NAME = "TwilioConnectorWorkflow"
#: One attempt of a call may take this long, waiting for the rate limiter included.
CALL_TIMEOUT = timedelta(minutes=10)
#: A call whose worker stopped heartbeating this long ago is retried elsewhere.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
#: Retries cover crashed workers and unknown send outcomes (Twilio's refusals are
#: outcomes, not errors, and the connection already retries 429s and 5xx itself).
CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


@dataclass(frozen=True)
class WorkflowRun:
    """
    What a run needs, all of it in the workflow's history.

    Attributes:
        file: The workflow file's name, for messages.
        text: The workflow's YAML.
        inputs: The resolved inputs.
        env: The environment variables its expressions read (only those).
        files: Files its ``read_*`` functions read: the name as written -> the text.
        base_dir: The workflow file's directory on the submitting machine (built-ins
            such as ``workflow/write_json`` write relative to it, on the worker).
    """

    file: str
    text: str
    inputs: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    base_dir: str = ""


class _BundledFunctions(WorkflowFunctions):
    """The workflow functions, reading bundled files and workflow time."""

    def __init__(self, files: Mapping[str, str]) -> None:
        super().__init__(Path(), clock=workflow.now)
        self._files = files

    def text(self, name: str) -> str:
        """The bundled text of *name* (files are read on the submitting machine)."""
        if name not in self._files:
            # An OSError becomes an ExpressionError naming the file.
            raise FileNotFoundError(2, "not bundled with the run", name)
        return self._files[name]

    def csv_stream(self, name: str) -> tuple[Iterator[CsvRow], int | None]:
        """The rows of a bundled CSV file (already in the run's input)."""
        rows = csv_rows(self.text(name), name)
        return iter(rows), len(rows)


def _brief(output: Any) -> Any:
    """What the result keeps of a call's output: enough for the run's summary."""
    if isinstance(output, Mapping) and "sid" in output:
        return {k: output.get(k) for k in ("sid", "status", "error_code")}
    return None


class _WorkflowClock:
    """Workflow time: deterministic on replay; sleeps are durable timers."""

    def now(self) -> float:
        return workflow.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        await workflow.sleep(seconds)


async def _gather(workers: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
    await asyncio.gather(*(worker() for worker in workers))


class _MemoryRecorder:
    """Keeps the run's results in the workflow (its history is the journal)."""

    def __init__(self, progress: dict[str, dict[str, int]]) -> None:
        self._progress = progress
        self._results: dict[str, dict[int, ItemResult]] = {}

    def finished_step(self, step: StepSpec) -> StepResult | None:
        return None  # a replay re-runs the workflow code; the history answers the calls

    def step_started(self, step: StepSpec, total: int | None) -> None:
        self._progress[step.id] = {"total": total or 0, "done": 0}
        self._results[step.id] = {}

    def item_finished(self, step: StepSpec, index: int, outcome: Outcome) -> None:
        self._results[step.id][index] = outcome.result(index)
        self._progress[step.id]["done"] += 1

    async def step_finished(
        self, step: StepSpec, status: Any, error: str | None, seconds: float
    ) -> StepResult:
        by_index = self._results.pop(step.id, {})
        items = tuple(by_index[i] for i in sorted(by_index))
        outputs: Any = None
        if step.for_each is not None:
            # As in a local run: a fan-out keeps each message's brief fields.
            outputs = [brief(item.output) for item in items]
        elif items:
            outputs = items[0].output
        return StepResult(step.id, step.uses, status, outputs, items, error, seconds=seconds)

    async def run_finished(self, result: RunResult, error: str | None) -> None:
        pass


@workflow.defn(name=WORKFLOW_NAME)
class ConnectorWorkflow:
    """
    Runs one YAML workflow; each action call is an activity named as its ``uses``.

    The result is JSON: ``{"run_id", "status", "outputs", "steps": [{"id", "uses",
    "status", "error", "seconds", "items": [{"index", "status", "output", "error",
    "error_code", "reconciled"}]}]}``, where an item's ``output`` keeps only a message's
    ``sid``, ``status`` and ``error_code`` (the full outputs stay in the history).
    """

    def __init__(self) -> None:
        self._progress: dict[str, dict[str, int]] = {}

    @workflow.query
    def progress(self) -> dict[str, dict[str, int]]:
        """Calls done and planned per step so far."""
        return self._progress

    @workflow.run
    async def run(self, run: WorkflowRun) -> dict[str, Any]:
        """Run the workflow and return its result (see the class docstring)."""
        # Loading reads the package's JSON Schema: deterministic, but file access is
        # outside what the sandbox allows by default.
        with workflow.unsafe.sandbox_unrestricted():
            spec = load_workflow(run.file, text=run.text)
        self._run = run
        interpreter = Interpreter(
            spec,
            run_id=workflow.info().workflow_id,
            call=self._call,
            clock=_WorkflowClock(),
            recorder=_MemoryRecorder(self._progress),
            fan_out=_gather,
            functions=_BundledFunctions(run.files),
        )
        result = await interpreter.run(run.inputs, run.env)
        return {
            "run_id": result.run_id,
            "status": result.status,
            "outputs": dict(result.outputs),
            "steps": [
                {
                    "id": step.id,
                    "uses": step.uses,
                    "status": step.status,
                    "error": step.error,
                    "seconds": step.seconds,
                    "items": [
                        {
                            "index": item.index,
                            "status": item.status,
                            "output": _brief(item.output),
                            "error": item.error,
                            "error_code": item.error_code,
                            "reconciled": item.reconciled,
                        }
                        for item in step.items
                    ],
                }
                for step in result.steps
            ],
        }

    async def _call(self, call: Call) -> Outcome:
        step = call.step
        action_call = ActionCall(
            uses=step.uses,
            inputs=call.inputs if isinstance(call.inputs, dict) else {},
            workflow_id=workflow.info().workflow_id,
            step_id=step.id,
            index=call.index,
            scheduled_at=workflow.now().timestamp(),
            paginate=step.paginate,
            max_items=step.max_items,
            base_dir=self._run.base_dir,
            confine_paths=call.confine_paths,
        )
        # Actions run as the activity of the same name; built-ins through the generic one.
        name = ACTIVITY_NAME if step.connector_id == BUILTIN_CONNECTOR else step.uses
        try:
            outcome: dict[str, Any] = await workflow.execute_activity(
                name,
                action_call,
                result_type=dict,
                start_to_close_timeout=CALL_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=CALL_RETRY,
                summary=f"{step.id}[{call.index}] {step.uses}",
            )
        except ActivityError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return Outcome("failed", error=f"gave up after retries: {cause}")
        return Outcome(
            outcome["status"],
            outcome["output"],
            outcome["error"],
            outcome["error_code"],
            outcome["reconciled"],
            fatal=bool(outcome.get("fatal")),
        )
