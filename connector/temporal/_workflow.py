# SPDX-License-Identifier: MIT
"""
The generic Temporal workflow that runs a YAML workflow durably.

It is kept in its own module because Temporal's sandbox re-imports the module that
defines a workflow on every run. The connector's own modules are passed through the
sandbox: they are deterministic, and re-importing them (jsonschema, jmespath, the
manifest) for every run would cost far more than the run's own work.

The interpretation mirrors :mod:`connector.workflow._runner`: ``if``, ``for_each`` with
bounded concurrency, ``with`` rendered per item, ``wait_until`` and ``outputs``, with
the same JMESPath templates evaluated here, in the workflow, because they are pure.
What is not pure is replaced: ``now()``/``today()``/``days_ago()`` read workflow time,
and ``read_csv``/``read_json``/``read_lines`` read files that the submitter bundled
with the run (see :func:`connector.temporal._client.bundle_files`). Every call of an
action is one ``invoke_action`` activity; its history is what makes the run durable.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError


with workflow.unsafe.imports_passed_through():
    import jmespath.functions

    from ..errors import ExpressionError
    from ..workflow._builtins import BUILTIN_CONNECTOR
    from ..workflow._expressions import Template, WorkflowFunctions
    from ..workflow._model import StepSpec, Workflow, load_workflow
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

    def _text(self, name: str) -> str:
        if name not in self._files:
            # An OSError becomes an ExpressionError naming the file.
            raise FileNotFoundError(2, "not bundled with the run", name)
        return self._files[name]

    @jmespath.functions.signature({"types": ["string"]})
    def _func_read_csv(self, name: str) -> list[dict[str, str]]:
        return [dict(row) for row in csv.DictReader(io.StringIO(self._text(name), newline=""))]

    @jmespath.functions.signature({"types": ["string"]})
    def _func_read_json(self, name: str) -> Any:
        return json.loads(self._text(name))

    @jmespath.functions.signature({"types": ["string"]})
    def _func_read_lines(self, name: str) -> list[str]:
        return [line.strip() for line in self._text(name).splitlines() if line.strip()]


def _truthy(value: Any) -> bool:
    # JMESPath's notion of truth, as in the local runner.
    return value not in (None, False, "", [], {})


def _brief(output: Any) -> Any:
    """What the result keeps of a call's output: enough for the run's summary."""
    if isinstance(output, Mapping) and "sid" in output:
        return {k: output.get(k) for k in ("sid", "status", "error_code")}
    return None


@workflow.defn(name=WORKFLOW_NAME)
class ConnectorWorkflow:
    """
    Runs one YAML workflow; each action call is an ``invoke_action`` activity.

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
            self._spec = load_workflow(run.file, text=run.text)
        self._run = run
        self._functions = _BundledFunctions(run.files)
        self._context: dict[str, Any] = {
            "inputs": dict(run.inputs),
            "env": dict(run.env),
            "steps": {},
        }
        steps: list[dict[str, Any]] = []
        failed = False
        for step in self._spec.steps:
            result, outputs = await self._step(step)
            steps.append(result)
            self._context["steps"][step.id] = {"outputs": outputs, "status": result["status"]}
            if result["status"] == "failed" and not step.continue_on_error:
                failed = True
                break
        return {
            "run_id": workflow.info().workflow_id,
            "status": "failed" if failed else "succeeded",
            "outputs": self._outputs(self._spec),
            "steps": steps,
        }

    def _outputs(self, spec: Workflow) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for name, value in spec.outputs.items():
            try:
                outputs[name] = self._render(value, ("outputs", name), self._context)
            except ExpressionError:
                outputs[name] = None  # it read a step that did not run
        return outputs

    def _render(self, value: Any, path: tuple[str | int, ...], context: Mapping[str, Any]) -> Any:
        template = self._spec.templates.get(path)
        if template is not None:
            return template.render(context, self._functions)
        if isinstance(value, Mapping):
            return {k: self._render(v, (*path, str(k)), context) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, (*path, i), context) for i, v in enumerate(value)]
        return value

    async def _step(self, step: StepSpec) -> tuple[dict[str, Any], Any]:
        began = workflow.now()
        entry: dict[str, Any] = {"id": step.id, "uses": step.uses, "error": None, "items": []}
        try:
            if step.if_ is not None and not _truthy(
                step.if_.render(self._context, self._functions)
            ):
                return {**entry, "status": "skipped", "seconds": 0.0}, None
            items: Any = [None]
            if isinstance(step.for_each, Template):
                items = step.for_each.render(self._context, self._functions)
            elif step.for_each is not None:
                items = self._render(step.for_each, (*step.path, "for_each"), self._context)
            if not isinstance(items, list):
                raise ExpressionError(
                    "for_each", f"for_each needs a list, got {type(items).__name__}"
                )
        except ExpressionError as exc:
            return {**entry, "status": "failed", "error": str(exc), "seconds": 0.0}, None
        progress = self._progress[step.id] = {"total": len(items), "done": 0}
        results: list[dict[str, Any]] = [{}] * len(items)
        outputs: list[Any] = [None] * len(items)
        # Like the local runner: a fixed number of coroutines share one iterator, so
        # at most `concurrency` calls are in flight and the history grows item by item.
        work: Iterator[tuple[int, Any]] = enumerate(items)

        async def worker() -> None:
            for index, item in work:
                results[index], outputs[index] = await self._item(step, index, item)
                progress["done"] += 1

        width = step.concurrency if step.for_each is not None else 1
        await asyncio.gather(*(worker() for _ in range(max(1, min(width, len(items))))))
        failures = [r for r in results if r["status"] == "failed"]
        if failures:
            entry["error"] = (
                f"{len(failures)} of {len(results)} items failed"
                if step.for_each is not None
                else failures[0]["error"]
            )
        entry.update(
            status="failed" if failures else "succeeded",
            items=results,
            seconds=(workflow.now() - began).total_seconds(),
        )
        return entry, (outputs if step.for_each is not None else outputs[0])

    async def _item(self, step: StepSpec, index: int, item: Any) -> tuple[dict[str, Any], Any]:
        context = self._context
        if step.for_each is not None:
            context = {**context, "item": item, "index": index}
        try:
            inputs = self._render(step.with_, (*step.path, "with"), context)
            outcome = await self._call(step, index, inputs)
            wait = step.wait_until
            if wait is not None and outcome["status"] == "succeeded":
                deadline = workflow.now() + timedelta(seconds=wait.timeout)
                while not _truthy(
                    wait.condition.render(
                        {**context, "outputs": outcome["output"]}, self._functions
                    )
                ):
                    if workflow.now() + timedelta(seconds=wait.interval) > deadline:
                        output = outcome["output"]
                        status = output.get("status") if isinstance(output, Mapping) else output
                        return self._failed(
                            index,
                            f"wait_until: {wait.condition.text} still false after "
                            f"{wait.timeout:g}s (last output: status={status!r})",
                        )
                    # A durable timer: a worker restart does not restart the wait.
                    await workflow.sleep(wait.interval)
                    outcome = await self._call(step, index, inputs)
                    if outcome["status"] != "succeeded":
                        break
        except ExpressionError as exc:
            return self._failed(index, str(exc))
        except ActivityError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return self._failed(index, f"gave up after retries: {cause}")
        result = {
            "index": index,
            "status": outcome["status"],
            "output": _brief(outcome["output"]),
            "error": outcome["error"],
            "error_code": outcome["error_code"],
            "reconciled": outcome["reconciled"],
        }
        return result, outcome["output"]

    async def _call(self, step: StepSpec, index: int, inputs: Any) -> dict[str, Any]:
        call = ActionCall(
            uses=step.uses,
            inputs=inputs if isinstance(inputs, dict) else {},
            workflow_id=workflow.info().workflow_id,
            step_id=step.id,
            index=index,
            scheduled_at=workflow.now().timestamp(),
            paginate=step.paginate,
            max_items=step.max_items,
            base_dir=self._run.base_dir,
        )
        # Actions run as the activity of the same name; built-ins through the generic one.
        name = ACTIVITY_NAME if step.connector_id == BUILTIN_CONNECTOR else step.uses
        outcome: dict[str, Any] = await workflow.execute_activity(
            name,
            call,
            result_type=dict,
            start_to_close_timeout=CALL_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=CALL_RETRY,
            summary=f"{step.id}[{index}] {step.uses}",
        )
        return outcome

    @staticmethod
    def _failed(index: int, error: str) -> tuple[dict[str, Any], Any]:
        result = {
            "index": index,
            "status": "failed",
            "output": None,
            "error": error,
            "error_code": None,
            "reconciled": False,
        }
        return result, None
