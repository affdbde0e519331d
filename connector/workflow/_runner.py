# SPDX-License-Identifier: MIT
"""
The engine: runs a workflow's steps through one connection, journals every call, and
resumes a run without repeating finished work or resending a message.

Host engines reuse :func:`run_workflow` with their own connection, journal and
progress reporter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal, Protocol

import attrs

from .._connection import Connection
from .._convert import build_record, field_value, to_json
from .._manifest import ActionSpec, ConnectorSpec
from .._validation import compile_action
from ..errors import (
    ConnectorError,
    ExpressionError,
    MessageMayHaveBeenSentError,
    Problem,
    RunError,
    TwilioAPIError,
    WorkflowError,
)
from ._builtins import BUILTIN_CONNECTOR, BUILTINS
from ._checks import check_workflow
from ._expressions import Template, WorkflowFunctions
from ._journal import ItemRecord, Journal
from ._model import StepSpec, Workflow, input_type_ok


__all__ = [
    "ItemResult",
    "Progress",
    "RunError",
    "RunResult",
    "StepResult",
    "find_sent_message",
    "new_run_id",
    "resolve_inputs",
    "run_workflow",
    "trigger_payload",
]

StepStatus = Literal["succeeded", "failed", "skipped"]

#: How many sends of one item may end with an unknown outcome before the runner gives
#: up on it (leaving it to be reconciled by a later resume).
MAX_UNKNOWN_ATTEMPTS = 3
#: Clock skew allowed between this machine and Twilio when matching a message found
#: by reconciliation to the attempt that sent it.
RECONCILE_SKEW = dt.timedelta(minutes=5)
#: How many recent messages to a recipient reconciliation looks through.
RECONCILE_LIMIT = 200
#: Seconds to wait before a second look when the first finds nothing right after a send
#: of unknown outcome: a request Twilio was still processing, or a list not yet showing
#: a new message, must not lead to a resend.
RECONCILE_SETTLE = 2.0


class Progress(Protocol):
    """Receives progress reports; the CLI draws bars or prints lines."""

    def step_started(self, step_id: str, total: int | None) -> None:
        """A step starts; *total* is its number of calls, or ``None`` when paging."""

    def advance(self, step_id: str, count: int = 1) -> None:
        """*count* more calls (or paged items) are done."""

    def step_finished(self, step_id: str, status: str) -> None:
        """A step ended with *status*."""


@attrs.frozen
class ItemResult:
    """
    The outcome of one call of a step.

    Attributes:
        index: The item's position (0 for steps without ``for_each``).
        status: ``succeeded`` or ``failed``.
        output: The output in JSON form (``None`` when it failed).
        error: The error, in words.
        error_code: Twilio's error code, when there is one.
        reconciled: Whether a send's unknown outcome was resolved by finding the message.
        resumed: Whether the result comes from the journal of an earlier attempt.
    """

    index: int
    status: Literal["succeeded", "failed"]
    output: Any = None
    error: str | None = None
    error_code: int | None = None
    reconciled: bool = False
    resumed: bool = False


@attrs.frozen
class StepResult:
    """
    The outcome of one step.

    Attributes:
        id: The step id.
        uses: The action it ran.
        status: ``succeeded``, ``failed`` or ``skipped`` (its ``if`` was false).
        outputs: What ``steps.<id>.outputs`` reads: the action's output, or for
            ``for_each`` a list with one entry per item (``None`` for failed items).
        items: Each call's outcome.
        error: Why the step failed, when not because of its items.
        resumed: Whether the whole step was finished in an earlier attempt.
        seconds: How long the step took in this attempt.
    """

    id: str
    uses: str
    status: StepStatus
    outputs: Any = None
    items: tuple[ItemResult, ...] = ()
    error: str | None = None
    resumed: bool = False
    seconds: float = 0.0


@attrs.frozen
class RunResult:
    """
    The outcome of a run.

    Attributes:
        run_id: The id to resume it with.
        status: ``succeeded`` or ``failed``.
        outputs: The workflow's outputs.
        steps: Each step that ran or was skipped, in order.
    """

    run_id: str
    status: Literal["succeeded", "failed"]
    outputs: Mapping[str, Any]
    steps: tuple[StepResult, ...]

    @property
    def ok(self) -> bool:
        """Whether every step succeeded (or failed with ``continue_on_error``)."""
        return self.status == "succeeded"


def new_run_id() -> str:
    """A new, sortable run id: ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC)."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _coerce_input(kind: str, value: Any) -> Any:
    from .._types import coerce_workflow_input

    return coerce_workflow_input(kind, value)


def resolve_inputs(workflow: Workflow, given: Mapping[str, Any]) -> dict[str, Any]:
    """
    Check and type a run's inputs: strings (from ``--input K=V``) are converted to the
    declared type (arrays and objects as JSON), defaults are applied.

    Raises:
        WorkflowError: An input is unknown, missing, or of the wrong type.
    """
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name, raw in given.items():
        spec = workflow.inputs.get(name)
        if spec is None:
            known = ", ".join(workflow.inputs) or "none"
            problems.append(
                Problem(
                    workflow.file, None, None, f"inputs.{name}", f"unknown input (inputs: {known})"
                )
            )
            continue
        try:
            value = _coerce_input(spec.type, raw)
        except ValueError:
            value = raw
        if not input_type_ok(spec.type, value):
            problems.append(
                Problem(
                    workflow.file,
                    None,
                    None,
                    f"inputs.{name}",
                    f"must be of type {spec.type} (got {raw!r})",
                )
            )
            continue
        values[name] = value
    for name, spec in workflow.inputs.items():
        if name in values:
            continue
        if spec.default is not None:
            values[name] = spec.default
        elif spec.required:
            problems.append(Problem(workflow.file, None, None, f"inputs.{name}", "is required"))
        else:
            values[name] = None
    if problems:
        raise WorkflowError(problems)
    return values


def trigger_payload(connector: ConnectorSpec, uses: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """
    Convert an event to the JSON form of its trigger's payload definition: every field
    present (``null`` when absent), counts as integers, enums as their values.

    Args:
        connector: The connector that defines the trigger.
        uses: ``connector/trigger``.
        data: The event, with the definition's field paths (``From``, ``NumMedia``...).

    Returns:
        What a run reads as ``trigger``.

    Raises:
        KeyError: The connector has no such trigger.
    """
    spec = connector.triggers[uses.partition("/")[2]]
    record = build_record(connector.definitions, spec.payload, data)
    return dict(record.to_json())


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _NoProgress:
    def step_started(self, step_id: str, total: int | None) -> None:
        pass

    def advance(self, step_id: str, count: int = 1) -> None:
        pass

    def step_finished(self, step_id: str, status: str) -> None:
        pass


async def run_workflow(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    connection: Connection,
    journal: Journal,
    *,
    run_id: str | None = None,
    progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
    trigger: Mapping[str, Any] | None = None,
) -> RunResult:
    """
    Run a workflow, or resume a run.

    The workflow is checked first (as ``twilio-connector validate`` does). Every step
    shares *connection*, so every call is paced by its one rate limiter. Each call is
    journaled; a send is journaled as started, durably, before it goes out.

    Args:
        workflow: The loaded workflow.
        inputs: Input values (strings are converted to the declared types). On resume,
            the journaled inputs are used; any given here must match them.
        connection: An open connection.
        journal: Where the run is recorded.
        run_id: Resume this run if the journal has it, else start a run with this id.
        progress: Receives progress reports.
        env: What ``env`` reads in expressions; empty unless given.
        trigger: For a workflow with ``on:``, the event that starts the run, read as
            ``trigger`` (converted to the trigger's payload definition). On resume, the
            journaled event is used.

    Returns:
        The run's outcome.

    Raises:
        WorkflowError: The workflow or the inputs are invalid; nothing ran.
        RunError: The run is active in another process, or its workflow changed.
    """
    problems = check_workflow(workflow, connection.connector)
    if problems:
        raise WorkflowError(problems)
    if workflow.trigger is None and trigger is not None:
        raise RunError(f"{workflow.file} has no trigger (on:), so a run cannot take one")
    fingerprint = _fingerprint(workflow.text)
    record = journal.run(run_id) if run_id is not None else None
    if record is not None:
        if journal.is_active_elsewhere(record):
            raise RunError(f"run {record.run_id} is running in process {record.pid}")
        if record.fingerprint != fingerprint:
            raise RunError(
                f"{workflow.file} changed since run {record.run_id} started; "
                "start a new run instead of resuming this one"
            )
        values = dict(record.inputs)
        if inputs:
            given = resolve_inputs(workflow, inputs)
            changed = sorted(k for k in inputs if given.get(k) != values.get(k))
            if changed:
                raise RunError(
                    f"run {record.run_id} started with other values for {', '.join(changed)}; "
                    "a resumed run keeps its inputs"
                )
        journal.claim_run(record.run_id)
        run_id = record.run_id
        event = record.trigger
    else:
        values = resolve_inputs(workflow, inputs)
        event = None
        if workflow.trigger is not None:
            if trigger is None:
                raise RunError(
                    f"{workflow.file} starts on {workflow.trigger.uses}: run it with "
                    "`twilio-connector listen`, or give the event with --trigger-json"
                )
            event = trigger_payload(connection.connector, workflow.trigger.uses, trigger)
        run_id = run_id or new_run_id()
        journal.create_run(run_id, workflow.file, workflow.name, fingerprint, values, event)
    runner = _Runner(
        workflow, values, connection, journal, run_id, progress or _NoProgress(), env or {}
    )
    if workflow.trigger is not None:
        runner.context["trigger"] = dict(event or {})
    # If cancelled or killed, the run stays "running" in the journal: `runs` shows it as
    # interrupted once this process is gone, and a resume picks it up.
    return await runner.run()


class _Runner:
    def __init__(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        connection: Connection,
        journal: Journal,
        run_id: str,
        progress: Progress,
        env: Mapping[str, str],
    ) -> None:
        self.workflow = workflow
        self.connection = connection
        self.journal = journal
        self.run_id = run_id
        self.progress = progress
        self.functions = WorkflowFunctions(workflow.base_dir)
        self.context: dict[str, Any] = {"inputs": dict(inputs), "env": dict(env), "steps": {}}

    async def run(self) -> RunResult:
        results: list[StepResult] = []
        failed = False
        for step in self.workflow.steps:
            result = await self._step(step)
            results.append(result)
            self.context["steps"][step.id] = {"outputs": result.outputs, "status": result.status}
            if result.status == "failed" and not step.continue_on_error:
                failed = True
                break
        outputs = self._outputs()
        status: Literal["succeeded", "failed"] = "failed" if failed else "succeeded"
        error = None
        if failed:
            last = results[-1]
            error = last.error or f"step {last.id} failed"
        self.journal.finish_run(self.run_id, status, outputs, error)
        return RunResult(self.run_id, status, outputs, tuple(results))

    def _outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for name, value in self.workflow.outputs.items():
            try:
                outputs[name] = self._render(value, ("outputs", name), self.context)
            except ExpressionError:
                # An output may read a step that did not run; it is then null.
                outputs[name] = None
        return outputs

    def _render(self, value: Any, path: tuple[str | int, ...], context: Mapping[str, Any]) -> Any:
        template = self.workflow.templates.get(path)
        if template is not None:
            return template.render(context, self.functions)
        if isinstance(value, Mapping):
            return {k: self._render(v, (*path, str(k)), context) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, (*path, i), context) for i, v in enumerate(value)]
        return value

    # -- steps ----------------------------------------------------------------------

    async def _step(self, step: StepSpec) -> StepResult:
        done = self.journal.step(self.run_id, step.id)
        if done is not None and done.state in ("succeeded", "skipped"):
            return StepResult(step.id, step.uses, done.state, done.outputs, resumed=True)  # type: ignore[arg-type]
        try:
            if step.if_ is not None and not _truthy(step.if_.render(self.context, self.functions)):
                self.journal.finish_step(self.run_id, step.id, "skipped", None, None)
                self.progress.step_finished(step.id, "skipped")
                return StepResult(step.id, step.uses, "skipped")
            items: list[Any] = [None]
            if step.for_each is not None:
                if isinstance(step.for_each, Template):
                    items = step.for_each.render(self.context, self.functions)
                else:
                    items = self._render(step.for_each, (*step.path, "for_each"), self.context)
                if not isinstance(items, list):
                    raise ExpressionError(
                        getattr(step.for_each, "text", "for_each"),
                        f"for_each needs a list, got {type(items).__name__}",
                    )
        except ExpressionError as exc:
            return self._fail_step(step, str(exc))
        executor = _StepExecutor(self, step, self.journal.items(self.run_id, step.id))
        self.progress.step_started(step.id, None if step.paginate else len(items))
        began = time.monotonic()
        item_results = await executor.run(items)
        seconds = time.monotonic() - began
        failed = [r for r in item_results if r.status == "failed"]
        status: StepStatus = "failed" if failed else "succeeded"
        if step.for_each is not None:
            outputs: Any = [r.output for r in item_results]
        else:
            outputs = item_results[0].output
        error = None
        if failed:
            error = (
                f"{len(failed)} of {len(item_results)} items failed"
                if step.for_each is not None
                else failed[0].error
            )
        self.journal.finish_step(self.run_id, step.id, status, outputs, error)
        self.progress.step_finished(step.id, status)
        return StepResult(
            step.id, step.uses, status, outputs, tuple(item_results), error, seconds=seconds
        )

    def _fail_step(self, step: StepSpec, error: str) -> StepResult:
        self.journal.finish_step(self.run_id, step.id, "failed", None, error)
        self.progress.step_finished(step.id, "failed")
        return StepResult(step.id, step.uses, "failed", error=error)


def _truthy(value: Any) -> bool:
    # JMESPath's notion of truth: false, null, "", [] and {} are false.
    return value not in (None, False, "", [], {})


async def find_sent_message(
    connection: Connection,
    inputs: Mapping[str, Any],
    started: float,
    *,
    claim: Callable[[str], Awaitable[bool]],
    settle: float = RECONCILE_SETTLE,
) -> Any:
    """
    Look for the message a send attempt may have sent, so that it is never sent twice.

    A match has the same To, From and body as *inputs* and was created no earlier than
    the attempt (less :data:`RECONCILE_SKEW` of clock skew). It is looked up with
    ``list_messages_v2``: first filtered on the day the attempt started (``DateSent``,
    UTC), then without a date, because a message still queued has no ``date_sent`` yet
    and one sent just after midnight has the next day's.

    Args:
        connection: An open connection.
        inputs: The send's validated inputs (``to``, ``from``, ``body``).
        started: When the attempt started (a POSIX timestamp); for an attempt whose
            start is unknown, any earlier moment (more messages are then looked at).
        claim: Called with the SID of each candidate; it returns whether the message may
            be credited to this send (``False`` when another send already took it, as
            when a list names a number twice) and records the claim.
        settle: When nothing is found, wait this long and look once more (0: look once,
            for an attempt that ended long ago).

    Returns:
        The message as JSON, or ``None`` when no unclaimed match exists.
    """
    since = dt.datetime.fromtimestamp(started, dt.UTC) - RECONCILE_SKEW
    query: dict[str, Any] = {"To": inputs["to"]}
    if inputs.get("from"):
        query["From"] = inputs["from"]
    day = dt.datetime.fromtimestamp(started, dt.UTC).date().isoformat()
    for look in range(2 if settle > 0 else 1):
        if look:
            await asyncio.sleep(settle)
        for filters in ({**query, "DateSent": day}, query):
            async for message in connection.paginate(
                "list_messages_v2", filters, max_items=RECONCILE_LIMIT
            ):
                created = field_value(message, "date_created")
                if created is not None and created < since:
                    break  # newest first: everything further is older than the attempt
                sid = field_value(message, "sid")
                if field_value(message, "body") == inputs.get("body") and await claim(sid):
                    return to_json(message)
    return None


class _StepExecutor:
    """Runs the calls of one step: a bounded pool of workers over its items."""

    def __init__(self, runner: _Runner, step: StepSpec, journaled: dict[int, ItemRecord]) -> None:
        self.runner = runner
        self.step = step
        self.journaled = journaled
        self.connection = runner.connection
        self.action: ActionSpec | None = None
        if step.connector_id != BUILTIN_CONNECTOR:
            self.action = self.connection.action(step.uses)
            self.compiled = compile_action(self.action)
        # Messages already matched to an item of this step, so that reconciliation
        # never credits one message to two items (a list may name a number twice).
        self.claimed: set[str] = {
            sid
            for record in journaled.values()
            if record.state == "succeeded"
            and isinstance(record.output, Mapping)
            and isinstance(sid := record.output.get("sid"), str)
        }

    async def run(self, items: list[Any]) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(items)
        # A shared iterator feeds a fixed number of workers: memory stays bounded by
        # the concurrency however many items there are, and the connection's limiter
        # paces the requests.
        work: Iterator[tuple[int, Any]] = enumerate(items)

        async def worker() -> None:
            for index, item in work:
                results[index] = await self._item(index, item)
                if not self.step.paginate:
                    self.runner.progress.advance(self.step.id)

        workers = max(
            1, min(self.step.concurrency if self.step.for_each is not None else 1, len(items))
        )
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
        return [r for r in results if r is not None]

    def _context(self, index: int, item: Any) -> Mapping[str, Any]:
        if self.step.for_each is None:
            return self.runner.context
        return {**self.runner.context, "item": item, "index": index}

    async def _item(self, index: int, item: Any) -> ItemResult:
        step = self.step
        context = self._context(index, item)
        prior = self.journaled.get(index)
        try:
            inputs = self.runner._render(step.with_, (*step.path, "with"), context)
        except ExpressionError as exc:
            return self._failed(index, {}, str(exc))
        if step.connector_id == BUILTIN_CONNECTOR:
            return self._builtin(index, inputs)
        try:
            clean = self.compiled.validate(inputs)
        except ConnectorError as exc:
            return self._failed(index, _json_inputs(inputs), str(exc))
        shown = to_json(self.compiled.masked(clean))
        if prior is not None and prior.state == "succeeded":
            if prior.inputs != shown:
                return self._failed(
                    index, shown, "this item's inputs changed since the run started; not resent"
                )
            return ItemResult(
                index, "succeeded", prior.output, reconciled=prior.reconciled, resumed=True
            )
        assert self.action is not None
        if self.action.sends_message:
            return await self._send(index, clean, shown, prior)
        try:
            output = await self._call(clean, context)
        except ConnectorError as exc:
            return self._failed(index, shown, str(exc), _code(exc))
        except ExpressionError as exc:
            return self._failed(index, shown, str(exc))
        except TimeoutError as exc:
            return self._failed(index, shown, str(exc))
        self.runner.journal.item_finished(
            self.runner.run_id, step.id, index, "succeeded", inputs=shown, output=output
        )
        return ItemResult(index, "succeeded", output)

    def _builtin(self, index: int, inputs: Mapping[str, Any]) -> ItemResult:
        builtin = BUILTINS[self.step.action_id]
        shown = _json_inputs(inputs)
        problems = builtin.check(inputs)
        if problems:
            return self._failed(index, shown, "; ".join(problems))
        try:
            output = builtin.run(inputs, self.runner.workflow.base_dir)
        except (OSError, TypeError, ValueError) as exc:
            return self._failed(index, shown, str(exc))
        # Inputs of built-ins can be large (a whole export); the journal keeps a summary.
        summary = {k: (f"<{len(v)} items>" if isinstance(v, list) else v) for k, v in shown.items()}
        self.runner.journal.item_finished(
            self.runner.run_id, self.step.id, index, "succeeded", inputs=summary, output=output
        )
        return ItemResult(index, "succeeded", output)

    async def _call(self, clean: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        step = self.step
        if step.paginate:
            collected = []
            async for entry in self.connection.paginate(step.uses, clean, max_items=step.max_items):
                collected.append(to_json(entry))
                self.runner.progress.advance(step.id)
            return collected
        output = to_json(await self.connection.call(step.uses, clean))
        wait = step.wait_until
        if wait is None:
            return output
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.timeout
        while not _truthy(
            wait.condition.render({**context, "outputs": output}, self.runner.functions)
        ):
            if loop.time() + wait.interval > deadline:
                raise TimeoutError(
                    f"wait_until: {wait.condition.text} still false after {wait.timeout:g}s "
                    f"(last output: status={output.get('status') if isinstance(output, Mapping) else output!r})"
                )
            # Polling Twilio at the step's interval is the point of wait_until.
            await asyncio.sleep(wait.interval)
            output = to_json(await self.connection.call(step.uses, clean))
        return output

    async def _send(
        self,
        index: int,
        clean: Mapping[str, Any],
        shown: Mapping[str, Any],
        prior: ItemRecord | None,
    ) -> ItemResult:
        run_id, step_id, journal = self.runner.run_id, self.step.id, self.runner.journal
        if prior is not None and prior.state == "started":
            # An earlier process started this send and never learnt its outcome.
            if prior.inputs != shown:
                return self._failed(
                    index, shown, "this item's inputs changed since its send started; not resent"
                )
            try:
                found = await self._reconcile(clean, prior.started or time.time(), settle=0.0)
            except ConnectorError as exc:
                return _lookup_failed(index, exc)
            if found is not None:
                journal.item_finished(
                    run_id, step_id, index, "succeeded", inputs=shown, output=found, reconciled=True
                )
                return ItemResult(index, "succeeded", found, reconciled=True)
        for _ in range(MAX_UNKNOWN_ATTEMPTS):
            started = time.time()
            journal.item_started(run_id, step_id, index, shown, started)
            try:
                output = to_json(await self.connection.call(self.step.uses, clean))
            except MessageMayHaveBeenSentError:
                try:
                    found = await self._reconcile(clean, started)
                except ConnectorError as exc:
                    return _lookup_failed(index, exc)
                if found is None:
                    continue  # not sent: trying again cannot duplicate it
                journal.item_finished(
                    run_id, step_id, index, "succeeded", inputs=shown, output=found, reconciled=True
                )
                return ItemResult(index, "succeeded", found, reconciled=True)
            except ConnectorError as exc:
                # Twilio refused it, or it never left: nothing was sent.
                journal.item_finished(
                    run_id,
                    step_id,
                    index,
                    "failed",
                    inputs=shown,
                    error=str(exc),
                    error_code=_code(exc),
                )
                return ItemResult(index, "failed", error=str(exc), error_code=_code(exc))
            if isinstance(output, Mapping) and isinstance(output.get("sid"), str):
                self.claimed.add(output["sid"])
            journal.item_finished(run_id, step_id, index, "succeeded", inputs=shown, output=output)
            return ItemResult(index, "succeeded", output)
        # Left "started" in the journal: a resume reconciles it again before any resend.
        return ItemResult(
            index,
            "failed",
            error=f"the outcome of the send stayed unknown after {MAX_UNKNOWN_ATTEMPTS} attempts",
        )

    async def _reconcile(
        self, clean: Mapping[str, Any], started: float, *, settle: float = RECONCILE_SETTLE
    ) -> Any:
        """
        Look for the message an attempt may have sent (see :func:`find_sent_message`),
        never crediting one message to two items of this step.
        """

        async def claim(sid: str) -> bool:
            if sid in self.claimed:
                return False
            self.claimed.add(sid)
            return True

        return await find_sent_message(self.connection, clean, started, claim=claim, settle=settle)

    def _failed(
        self, index: int, shown: Mapping[str, Any], error: str, code: int | None = None
    ) -> ItemResult:
        self.runner.journal.item_finished(
            self.runner.run_id,
            self.step.id,
            index,
            "failed",
            inputs=shown,
            error=error,
            error_code=code,
        )
        return ItemResult(index, "failed", error=error, error_code=code)


def _lookup_failed(index: int, exc: ConnectorError) -> ItemResult:
    # The item stays "started" in the journal, so a resume looks the message up again
    # before any resend; nothing is sent while its outcome is unknown.
    return ItemResult(
        index,
        "failed",
        error=f"the outcome of the send is unknown and looking it up failed: {exc}",
        error_code=_code(exc),
    )


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, TwilioAPIError):
        return exc.code
    return None


def _json_inputs(inputs: Any) -> Any:
    try:
        return to_json(inputs)
    except TypeError:
        return {"unprintable": repr(inputs)[:200]}
