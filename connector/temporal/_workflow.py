# SPDX-License-Identifier: MIT
"""
The generic Temporal workflows that run a YAML workflow durably: thin drivers of the
one interpreter (:class:`connector.workflow.Interpreter`).

They are kept in their own module because Temporal's sandbox re-imports the module that
defines a workflow on every run. The connector's own modules are passed through the
sandbox: they are deterministic, and re-importing them (jsonschema, jmespath, the
manifest) for every run would cost far more than the run's own work.

What the driver gives the interpreter: each call is an activity named as the step's
``uses`` (``invoke_action`` for built-ins), whose history is what makes the run
durable; the clock is workflow time (``wait_until`` waits on durable timers);
``read_csv``/``read_json``/``read_lines`` read files that the submitter sent with the
run (:func:`connector.temporal.bundle_files`), or, for a large CSV file, put in the
store; a step's workers run under ``asyncio.gather``, because an ``ExceptionGroup``
from a task group would not fail a Temporal workflow (temporalio sdk-python#1020).

A run's history stays bounded whatever its size:

- A ``for_each`` step of more than ``batch_size`` items (1,000), or over a stored file,
  runs as a series of child workflows (:class:`BatchWorkflow`), each over one batch
  with a history of its own. Each child runs the same interpreter over its batch
  (:meth:`~connector.workflow.Interpreter.run_items`) and returns only counts. Its
  ``steps.<id>.outputs`` is then a list whose length can be read and whose items
  cannot (they are in the store: ``runs export``).
- Each call's activity keeps its item's record in the store (Redis) itself, so no list
  of results flows through any workflow; items the workflow settles itself (an
  unrenderable input, a ``wait_until`` that timed out) go there in one activity per
  step or batch.
- The run's workflow continues as new when Temporal suggests it, or past
  ``history_limit`` events: between steps, or between batches of a step, carrying the
  finished steps' summaries and the step's progress.
- The result is a summary: per step, its counts (calls, outcomes, message statuses,
  Twilio codes, the first failures); the items themselves only for steps small enough.

A step that waits for replies (``twilio/wait_for_reply``) holds no worker while it
waits: each item's call only begins its wait, the interpreter parks it, and the step
sleeps on durable timers, looking for replies once per interval with one activity for
all its items (``connector.look_for_replies``). The interval is widened so that one
wait makes at most ``MAX_LOOKS`` looks (a day's wait, one look every 86 s), which keeps
its history near 11 events a look. A batched wait step starts all its batches at once:
waiting costs no worker, and a batch waiting a day must not hold back the next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError


with workflow.unsafe.imports_passed_through():
    import attrs

    from .._replies import Inbound, InboxCursor
    from ..errors import ExpressionError
    from ..workflow import (
        BUILTIN_CONNECTOR,
        Call,
        CsvRow,
        Interpreter,
        ItemRecord,
        ItemResult,
        LazyList,
        Looked,
        Outcome,
        ReplyWait,
        RunResult,
        StepResult,
        StepSpec,
        Workflow,
        WorkflowFunctions,
        brief,
        csv_rows,
        item_record,
        load_workflow,
        read_paths,
    )
    from ._activities import (
        ACTIVITY_NAME,
        LOOK_FOR_REPLIES,
        READ_ROWS,
        STORE_ITEMS,
        ActionCall,
        LookForReplies,
        ReadRows,
        StoreItems,
    )
    from ._store import StoredFile, csv_row


__all__ = [
    "BATCH_SIZE",
    "BATCH_WORKFLOW_NAME",
    "WORKFLOW_NAME",
    "BatchRun",
    "BatchWorkflow",
    "ConnectorWorkflow",
    "WorkflowRun",
    "step_from_json",
    "step_json",
]

#: The workflow's registered name.
WORKFLOW_NAME = "TwilioConnectorWorkflow"
#: The registered name of the child workflow that runs one batch of a large step.
BATCH_WORKFLOW_NAME = "TwilioConnectorBatch"
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
#: Reading a batch of rows from the store, or keeping records there.
STORE_TIMEOUT = timedelta(minutes=1)
#: Items per child workflow, and the size above which a step runs in children. A
#: child's history is then about 3.3 events and 1 KB per item: some 3,300 events and
#: 1.2 MB for a batch, against Temporal's 51,200 events and 50 MB.
BATCH_SIZE = 1000
#: Children of one step running at once; the step's concurrency is split between them,
#: so one starts while the other finishes its last calls.
CHILD_WINDOW = 2
#: How long one workflow task of a batch may take. A worker busy with hundreds of
#: calls can take more than Temporal's default 10 s over a task; the task is then
#: taken from it and the batch replayed from its start (seconds for 1,000 items),
#: which a busier worker makes slower still. A task held by a dead worker waits this
#: long before another takes it.
BATCH_TASK_TIMEOUT = timedelta(seconds=30)
#: Continue as new past this many events of the run's own history (Temporal may
#: suggest it sooner), leaving room for the children in flight to report.
HISTORY_LIMIT = 10_000
#: The first failures of a step the result names (the rest are in the store).
FAILURES_KEPT = 100
#: The result's own bounds, under Temporal's 2 MiB for a payload: an output larger
#: than OUTPUT_BUDGET is left null (with why); past RESULT_BUDGET, the steps' item
#: lists are left out, largest first (their counts stay).
OUTPUT_BUDGET = 256 * 1024
RESULT_BUDGET = 1024 * 1024
#: Looks for replies one wait makes at most: its interval is widened to timeout /
#: MAX_LOOKS when shorter, so a wait of any length adds at most some 11,000 events
#: (a timer, an activity and their workflow tasks per look) to its workflow's history.
MAX_LOOKS = 1000


@dataclass(frozen=True)
class WorkflowRun:
    """
    What a run needs, all of it in the workflow's input.

    Attributes:
        file: The workflow file's name, for messages.
        text: The workflow's YAML.
        inputs: The resolved inputs.
        env: The environment variables its expressions read (only those).
        files: Files its ``read_*`` functions read: the name as written -> the text.
        base_dir: The workflow file's directory on the submitting machine (built-ins
            such as ``workflow/write_json`` write relative to it, on the worker).
        stored: Large CSV files read by ``for_each: ${{ read_csv(NAME) }}``, kept in
            the store instead: the name as written -> where.
        batch_size: Items per child workflow of a large step.
        history_limit: Continue as new past this many events.
        waiting: The steps that wait for replies (their batches all run at once).
        carried: What an earlier run of this workflow id finished, when it continued
            as new (internal).
    """

    file: str
    text: str
    inputs: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    base_dir: str = ""
    stored: dict[str, StoredFile] = field(default_factory=dict)
    batch_size: int = BATCH_SIZE
    history_limit: int = HISTORY_LIMIT
    waiting: list[str] = field(default_factory=list)
    carried: dict[str, Any] | None = None


@dataclass(frozen=True)
class BatchRun:
    """
    One batch of a large step, as the run's workflow hands it to a child.

    Attributes:
        run: The run (its files only if the step's inputs read files).
        run_id: The run's id (the parent's workflow id): calls keep their identity.
        step_id: The step.
        start: The index of the batch's first item.
        count: How many items.
        concurrency: Calls of the batch in flight at once.
        steps: What ``steps.<id>`` gives for the earlier steps the step reads.
        views: Earlier steps whose outputs are kept out of the workflow: their counts.
        items: The items, when the parent has them.
        csv: The items are rows of this CSV file (read as ``read_csv`` reads them).
        stored: The items are rows *start* to *start + count* of this stored file.
    """

    run: WorkflowRun
    run_id: str
    step_id: str
    start: int
    count: int
    concurrency: int
    steps: dict[str, Any] = field(default_factory=dict)
    views: dict[str, int] = field(default_factory=dict)
    items: list[Any] | None = None
    csv: str | None = None
    stored: StoredFile | None = None


class _CsvRows(Iterator[Any]):
    """
    The rows of a ``read_csv`` for_each, with the file they come from; a stored file's
    rows are read by child workflows only, never here.
    """

    def __init__(self, name: str, rows: Iterator[Any], stored: StoredFile | None = None) -> None:
        self.name = name
        self.stored = stored
        self._rows = rows

    def __next__(self) -> Any:
        if self.stored is not None:
            raise ValueError(f"{self.name} is kept in the store: only child workflows read it")
        return next(self._rows)


class _BundledFunctions(WorkflowFunctions):
    """The workflow functions, reading bundled files and workflow time."""

    def __init__(self, files: Mapping[str, str], stored: Mapping[str, StoredFile]) -> None:
        super().__init__(Path(), clock=workflow.now)
        self._files = files
        self._stored = stored

    def text(self, name: str) -> str:
        """The bundled text of *name* (files are read on the submitting machine)."""
        if name not in self._files:
            # An OSError becomes an ExpressionError naming the file.
            why = "too large: only for_each streams it" if name in self._stored else "not bundled"
            raise FileNotFoundError(2, f"{why} with the run", name)
        return self._files[name]

    def csv_stream(self, name: str) -> tuple[Iterator[CsvRow], int | None]:
        """The rows of a bundled CSV file, or a stored one's count (children read it)."""
        stored = self._stored.get(name)
        if stored is not None:
            return _CsvRows(name, iter(()), stored), stored.rows
        rows = csv_rows(self.text(name), name)
        return _CsvRows(name, iter(rows)), len(rows)


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


class _Counts:
    """What a step's items came to, as the local runner's journal counts them."""

    def __init__(self) -> None:
        self.calls = self.succeeded = self.failed = self.reconciled = self.stored = 0
        self.statuses: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.failures: list[dict[str, Any]] = []

    def add(self, index: int, outcome: Outcome, stored: bool) -> None:
        self.calls += 1
        self.stored += stored
        self.reconciled += outcome.reconciled
        output = outcome.output
        code = outcome.error_code
        if isinstance(output, Mapping) and "sid" in output:
            if output.get("status") is not None:
                self.statuses[str(output["status"])] += 1
            if code is None and isinstance(output.get("error_code"), int):
                code = output["error_code"]
        if code is not None:
            self.codes[str(code)] += 1
        if outcome.status == "succeeded":
            self.succeeded += 1
            return
        self.failed += 1
        if len(self.failures) < FAILURES_KEPT:
            key = outcome.inputs.get("to") if isinstance(outcome.inputs, Mapping) else None
            self.failures.append(
                {"index": index, "key": key, "error": outcome.error, "code": outcome.error_code}
            )

    def merge(self, data: Mapping[str, Any]) -> None:
        for name in ("calls", "succeeded", "failed", "reconciled", "stored"):
            setattr(self, name, getattr(self, name) + data.get(name, 0))
        self.statuses.update(data.get("statuses", {}))
        self.codes.update(data.get("error_codes", {}))
        merged = sorted([*self.failures, *data.get("failures", ())], key=lambda f: f["index"])
        self.failures = merged[:FAILURES_KEPT]

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "reconciled": self.reconciled,
            "resumed": 0,
            "stored": self.stored,
            "statuses": dict(sorted(self.statuses.items())),
            "error_codes": dict(sorted(self.codes.items())),
            "failures": sorted(self.failures, key=lambda f: f["index"]),
        }


class _Driver:
    """Calls as activities, for the run's workflow and its children alike."""

    def __init__(self, run: WorkflowRun, run_id: str) -> None:
        self.run = run
        self.run_id = run_id
        # Items whose activity kept their final record in the store.
        self.stored: set[tuple[str, int]] = set()
        # Whether the workers have a store, as the latest activity said.
        self.store: bool | None = None
        # The fields of the messages a step's waits read (absent ones come back null).
        self._fields: dict[str, tuple[str, ...]] = {}

    async def call(self, call: Call) -> Outcome:
        step = call.step
        # A call's own outcome is its item's final one unless the workflow looks at it
        # again (wait_until) or it pages (its record keeps a count, not the pages).
        final = step.wait_until is None and not step.paginate
        action_call = ActionCall(
            uses=step.uses,
            inputs=call.inputs if isinstance(call.inputs, dict) else {},
            workflow_id=self.run_id,
            step_id=step.id,
            index=call.index,
            scheduled_at=workflow.now().timestamp(),
            paginate=step.paginate,
            max_items=step.max_items,
            base_dir=self.run.base_dir,
            confine_paths=call.confine_paths,
            record=final,
            brief=final and step.for_each is not None,
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
        if outcome.get("stored"):
            self.stored.add((step.id, call.index))
        if "store" in outcome:
            self.store = bool(outcome["store"])
        key = outcome.get("key")
        wait = None
        if outcome.get("wait") is not None:
            wait = ReplyWait.from_json(outcome["wait"])
            settings = wait.settings
            interval = max(settings.interval, settings.timeout / MAX_LOOKS)
            wait = attrs.evolve(wait, settings=attrs.evolve(settings, interval=interval))
            self._fields[step.id] = wait.fields
        return Outcome(
            outcome["status"],
            outcome["output"],
            outcome["error"],
            outcome["error_code"],
            outcome["reconciled"],
            fatal=bool(outcome.get("fatal")),
            # What the workflow keeps of the inputs: what the item is known by.
            inputs={"to": key} if key is not None else None,
            wait=wait,
        )

    async def look(self, step: StepSpec, ours: frozenset[str], cursor: InboxCursor) -> Looked:
        """One look for replies for every item the step has waiting: one activity."""
        try:
            found: dict[str, Any] = await workflow.execute_activity(
                LOOK_FOR_REPLIES,
                LookForReplies(step.uses, sorted(ours), cursor.to_json()),
                result_type=dict,
                start_to_close_timeout=CALL_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=CALL_RETRY,
                summary=f"{step.id}: replies since {cursor.at:.0f}",
            )
        except ActivityError as exc:
            cause = exc.cause if exc.cause is not None else exc
            error = f"looking for replies gave up after retries: {cause}"
            return Looked(cursor=cursor, error=error)
        fields = self._fields.get(step.id, ())
        return Looked(
            [Inbound.from_json(m, fields) for m in found["messages"]],
            InboxCursor.from_json(found["cursor"]),
            found["more"],
            found["error"],
            found["fatal"],
        )

    async def store_items(self, step_id: str, records: Sequence[ItemRecord]) -> int:
        """Keep records the workflow settled itself; how many were kept (0: no store)."""
        if self.store is False:
            return 0
        kept = 0
        for start in range(0, len(records), BATCH_SIZE):
            chunk = [r.to_json() for r in records[start : start + BATCH_SIZE]]
            kept += await workflow.execute_activity(
                STORE_ITEMS,
                StoreItems(self.run_id, step_id, chunk),
                result_type=int,
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=CALL_RETRY,
            )
        return kept


class _Recorder:
    """
    Counts each step's items and keeps the records the activities did not; the run's
    workflow also keeps the items of small steps (its children keep none).
    """

    def __init__(
        self, driver: _Driver, progress: dict[str, dict[str, int]], *, keep_items: bool
    ) -> None:
        self.driver = driver
        self.progress = progress
        self.keep_items = keep_items
        self.fatal: str | None = None
        self._counts: dict[str, _Counts] = {}
        self._items: dict[str, dict[int, ItemResult]] = {}
        self._settled: dict[str, list[ItemRecord]] = {}

    def finished_step(self, step: StepSpec) -> StepResult | None:
        return None  # a replay re-runs the workflow code; the history answers the calls

    def step_started(self, step: StepSpec, total: int | None) -> None:
        self.progress[step.id] = {"total": total or 0, "done": 0}
        self._counts[step.id] = _Counts()
        self._items[step.id] = {}
        self._settled[step.id] = []

    def item_finished(self, step: StepSpec, index: int, outcome: Outcome) -> None:
        stored = (step.id, index) in self.driver.stored
        self.driver.stored.discard((step.id, index))
        self._counts[step.id].add(index, outcome, stored)
        self.progress[step.id]["done"] += 1
        if outcome.fatal and self.fatal is None:
            self.fatal = outcome.error
        if self.keep_items:
            self._items[step.id][index] = outcome.result(index)
        if not stored:
            output = outcome.output
            if step.paginate and isinstance(output, list):
                output = {"count": len(output)}  # as the journal keeps a paging call
            self._settled[step.id].append(
                item_record(
                    index,
                    outcome.status,
                    inputs=outcome.inputs,
                    output=output,
                    error=outcome.error,
                    error_code=outcome.error_code,
                    reconciled=outcome.reconciled,
                    finished=workflow.now().timestamp(),
                )
            )

    async def step_finished(
        self, step: StepSpec, status: Any, error: str | None, seconds: float
    ) -> StepResult:
        counts = self._counts.pop(step.id, None) or _Counts()
        settled = self._settled.pop(step.id, [])
        if settled:
            counts.stored += await self.driver.store_items(step.id, settled)
        by_index = self._items.pop(step.id, {})
        items = tuple(by_index[i] for i in sorted(by_index))
        outputs: Any = None
        if step.for_each is not None:
            # As in a local run: a fan-out keeps each message's brief fields.
            outputs = [brief(item.output) for item in items]
        elif items:
            outputs = items[0].output
        return StepResult(
            step.id,
            step.uses,
            status,
            outputs,
            items,
            error,
            seconds=seconds,
            counts=None if status == "skipped" else counts.to_json(),
        )

    async def run_finished(self, result: RunResult, error: str | None) -> None:
        pass


def _view(step_id: str, count: int) -> LazyList:
    """``steps.<id>.outputs`` of a step run in batches: its length, not its items."""
    return LazyList(f"steps.{step_id}.outputs", lambda: count, lambda: iter(()), limit=0)


def _encode_steps(
    steps: Mapping[str, Any], wanted: Sequence[str] | None = None
) -> tuple[dict[str, Any], dict[str, int]]:
    """``steps`` of a context as JSON, and the steps whose outputs are views (counts)."""
    plain: dict[str, Any] = {}
    views: dict[str, int] = {}
    for step_id, entry in steps.items():
        if wanted is not None and step_id not in wanted:
            continue
        outputs = entry["outputs"]
        if isinstance(outputs, LazyList):
            views[step_id] = len(outputs)
            plain[step_id] = {"outputs": None, "status": entry["status"]}
        else:
            plain[step_id] = {"outputs": outputs, "status": entry["status"]}
    return plain, views


def _decode_steps(plain: Mapping[str, Any], views: Mapping[str, int]) -> dict[str, Any]:
    steps = {step_id: dict(entry) for step_id, entry in plain.items()}
    for step_id, count in views.items():
        steps[step_id]["outputs"] = _view(step_id, count)
    return steps


def _reads(spec: Workflow, step: StepSpec) -> tuple[list[str] | None, bool]:
    """
    Which earlier steps the step's inputs and condition read (``None``: cannot tell,
    so all), and whether they read files.
    """
    steps: set[str] = set()
    files = False
    for path, template in spec.templates.items():
        if path[:2] != step.path or path[2:3] in (("for_each",), ("if",)):
            continue
        files = files or any(f"{reader}(" in template.text for reader in _FILE_READERS)
        for expression in template.expressions:
            found = {p[1] for p in read_paths(expression) if p[:1] == ("steps",) and len(p) > 1}
            if not found and "steps" in expression.expression:
                return None, True  # read in a way read_paths cannot follow
            steps |= found
    return sorted(steps), files


_FILE_READERS = ("read_csv", "read_json", "read_lines")


def step_json(step: StepResult) -> dict[str, Any]:
    """A step's result as the run's JSON result gives it."""
    data: dict[str, Any] = {
        "id": step.id,
        "uses": step.uses,
        "status": step.status,
        "error": step.error,
        "seconds": step.seconds,
        "counts": dict(step.counts) if step.counts is not None else None,
    }
    if step.items:
        data["items"] = [
            {
                "index": item.index,
                "status": item.status,
                "output": _brief(item.output),
                "error": item.error,
                "error_code": item.error_code,
                "reconciled": item.reconciled,
            }
            for item in step.items
        ]
    return data


def step_from_json(data: Mapping[str, Any], outputs: Any = None) -> StepResult:
    """A :class:`~connector.workflow.StepResult` from :func:`step_json`."""
    items = tuple(
        ItemResult(
            index=item["index"],
            status=item["status"],
            output=item["output"],
            error=item["error"],
            error_code=item["error_code"],
            reconciled=item["reconciled"],
        )
        for item in data.get("items", ())
    )
    return StepResult(
        id=data["id"],
        uses=data["uses"],
        status=data["status"],
        outputs=outputs,
        items=items,
        error=data["error"],
        seconds=data["seconds"],
        counts=data.get("counts"),
    )


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def _fit(data: dict[str, Any]) -> dict[str, Any]:
    """*data* with its steps' item lists left out, the largest first, until it fits."""
    for step in sorted(data["steps"], key=lambda s: -len(s.get("items", ()))):
        if _size(data) <= RESULT_BUDGET:
            break
        step.pop("items", None)
    return data


def _load(run: WorkflowRun) -> Workflow:
    # Loading reads the package's JSON Schema: deterministic, but file access is
    # outside what the sandbox allows by default.
    with workflow.unsafe.sandbox_unrestricted():
        return load_workflow(run.file, text=run.text)


@workflow.defn(name=WORKFLOW_NAME)
class ConnectorWorkflow:
    """
    Runs one YAML workflow; each action call is an activity named as its ``uses``, and
    each batch of a large step a child workflow (:class:`BatchWorkflow`).

    The result is a bounded summary in JSON: ``{"run_id", "status", "outputs",
    "output_errors", "steps": [{"id", "uses", "status", "error", "seconds", "counts",
    "items"}]}``. A step's ``counts`` are ``calls``, ``succeeded``, ``failed``,
    ``reconciled``, ``stored`` (records kept in the store: read them with ``runs
    export``), message ``statuses``, Twilio ``error_codes`` and the first
    ``failures``; ``items`` (each with ``index``, ``status``, a message's ``sid``,
    ``status`` and ``error_code`` as ``output``, ``error``, ``error_code`` and
    ``reconciled``) are there for steps run in this workflow, while the result stays
    small.
    """

    def __init__(self) -> None:
        self._progress: dict[str, dict[str, int]] = {}

    @workflow.query
    def progress(self) -> dict[str, dict[str, int]]:
        """Calls done and planned per step so far (in this run of the workflow id)."""
        return self._progress

    @workflow.run
    async def run(self, run: WorkflowRun) -> dict[str, Any]:
        """Run the workflow and return its summary (see the class docstring)."""
        spec = _load(run)
        self._run = run
        self._spec = spec
        self._run_id = workflow.info().workflow_id
        self._driver = _Driver(run, self._run_id)
        self._carried = run.carried or {}
        self._done: list[StepResult] = []
        self._progressed = False  # a step or a batch finished in this execution
        recorder = _RunRecorder(self)
        self._interpreter = Interpreter(
            spec,
            run_id=self._run_id,
            call=self._driver.call,
            clock=_WorkflowClock(),
            recorder=recorder,
            fan_out=_gather,
            functions=_BundledFunctions(run.files, run.stored),
            delegate=self._batches,
            inbox=self._driver,
        )
        result = await self._interpreter.run(run.inputs, run.env)
        return self._summary(result, dict(getattr(self._interpreter, "output_errors", {})))

    def _summary(self, result: RunResult, output_errors: dict[str, str]) -> dict[str, Any]:
        outputs = dict(result.outputs)
        for name, value in outputs.items():
            size = _size(value)
            if size > OUTPUT_BUDGET:
                outputs[name] = None
                output_errors[name] = (
                    f"output {name} is {size:,} bytes; a Temporal run's result keeps at most "
                    f"{OUTPUT_BUDGET:,} of each (read the items with `twilio-connector runs "
                    "export RUN_ID --redis URL`)"
                )
        summary = {
            "run_id": result.run_id,
            "status": result.status,
            "outputs": outputs,
            "output_errors": output_errors,
            "steps": [step_json(step) for step in result.steps],
        }
        return _fit(summary)

    # -- continuing as new --------------------------------------------------------

    def _history_full(self) -> bool:
        # Only once this execution did something: a new one that starts full (a large
        # carried input) must go on, not continue as new again and again.
        if not self._progressed:
            return False
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self._run.history_limit
        )

    def _continue(self, current: dict[str, Any] | None) -> None:
        """Continue as new, carrying the finished steps (and the step under way)."""
        plain, views = _encode_steps(self._interpreter.context["steps"])
        carried = _fit(
            {
                "steps": [step_json(step) for step in self._done],
                "context": plain,
                "views": views,
                "current": current,
            }
        )
        workflow.continue_as_new(dataclasses.replace(self._run, carried=carried))

    def finished_step(self, step: StepSpec) -> StepResult | None:
        """What an earlier run of this workflow id finished, before it continued as new."""
        for data in self._carried.get("steps", ()):
            if data["id"] == step.id:
                entry = _decode_steps(self._carried["context"], self._carried["views"])[step.id]
                result = step_from_json(data, entry["outputs"])
                self._done.append(result)
                return result
        if self._history_full():
            self._continue(None)
        return None

    # -- large steps in batches ---------------------------------------------------

    async def _batches(
        self, step: StepSpec, items: Iterator[Any], total: int | None
    ) -> StepResult | None:
        """Run a large step (or one over a stored file) as child workflows, one per batch."""
        source = items if isinstance(items, _CsvRows) else None
        stored = source.stored if source is not None else None
        size = self._run.batch_size
        if stored is None and (total is None or total <= size):
            return None
        current = self._carried.get("current") or {}
        resuming = current.get("step") == step.id
        counts = _Counts()
        if resuming:
            counts.merge(current["counts"])
        cursor = current["next"] if resuming else 0
        earlier = current["seconds"] if resuming else 0.0
        began = workflow.now()
        if stored is None and cursor:
            items = itertools.islice(items, cursor, None)
        self._progress[step.id] = {"total": total or 0, "done": counts.calls}
        window = max(1, min(CHILD_WINDOW, step.concurrency))
        if step.id in self._run.waiting:
            # Waiting costs no worker: every batch waits at once, not a day after another.
            rows = stored.rows if stored is not None else (total or 0)
            window = max(1, -(-(rows - cursor) // size))
        wanted, reads_files = _reads(self._spec, step)
        plain, views = _encode_steps(self._interpreter.context["steps"], wanted)
        run = dataclasses.replace(
            self._run, files=self._run.files if reads_files else {}, stored={}, carried=None
        )
        problems: list[str] = []
        full = False

        def next_batch() -> BatchRun | None:
            nonlocal cursor, full
            if problems or (full := full or self._history_full()):
                return None
            batch = BatchRun(
                run,
                self._run_id,
                step.id,
                cursor,
                0,
                -(-step.concurrency // window),
                plain,
                views,
                csv=source.name if source is not None else None,
                stored=stored,
            )
            if stored is not None:
                count = min(size, stored.rows - cursor)
                if count <= 0:
                    return None
                batch = dataclasses.replace(batch, count=count)
            else:
                try:
                    chunk = list(itertools.islice(items, size))
                except (OSError, ValueError) as exc:
                    text = getattr(step.for_each, "text", "for_each")
                    problems.append(str(ExpressionError(text, str(exc))))
                    return None
                if not chunk:
                    return None
                chunk = [dict(i) if isinstance(i, CsvRow) else i for i in chunk]
                batch = dataclasses.replace(batch, count=len(chunk), items=chunk)
            cursor += batch.count
            return batch

        async def worker() -> None:
            while (batch := next_batch()) is not None:
                last = batch.start + batch.count - 1
                try:
                    out: dict[str, Any] = await workflow.execute_child_workflow(
                        BatchWorkflow.run,
                        batch,
                        id=f"{self._run_id}/{step.id}/{batch.start}",
                        task_timeout=BATCH_TASK_TIMEOUT,
                        static_summary=f"{step.id}[{batch.start}..{last}] {step.uses}",
                    )
                except ChildWorkflowError as exc:
                    cause = exc.cause if exc.cause is not None else exc
                    problems.append(f"items {batch.start} to {last} did not run: {cause}")
                    continue
                counts.merge(out["counts"])
                self._progress[step.id]["done"] = counts.calls
                self._progressed = True
                if out.get("fatal"):
                    problems.append(out["fatal"])

        await asyncio.gather(*(worker() for _ in range(window)))
        seconds = earlier + (workflow.now() - began).total_seconds()
        if full and not problems:
            # Every child started has reported: carry on from the next batch.
            self._continue(
                {"step": step.id, "next": cursor, "counts": counts.to_json(), "seconds": seconds}
            )
        status: Any = "failed" if counts.failed or problems else "succeeded"
        error = problems[0] if problems else None
        if error is None and counts.failed:
            error = f"{counts.failed} of {counts.calls} items failed"
        result = StepResult(
            step.id,
            step.uses,
            status,
            _view(step.id, counts.calls),
            error=error,
            seconds=seconds,
            counts=counts.to_json(),
        )
        self._done.append(result)
        return result


class _RunRecorder(_Recorder):
    """The run's recorder: it also hands over what an earlier run finished."""

    def __init__(self, owner: ConnectorWorkflow) -> None:
        super().__init__(owner._driver, owner._progress, keep_items=True)
        self._owner = owner

    def finished_step(self, step: StepSpec) -> StepResult | None:
        return self._owner.finished_step(step)

    async def step_finished(
        self, step: StepSpec, status: Any, error: str | None, seconds: float
    ) -> StepResult:
        result = await super().step_finished(step, status, error, seconds)
        self._owner._done.append(result)
        self._owner._progressed = True
        return result


@workflow.defn(name=BATCH_WORKFLOW_NAME)
class BatchWorkflow:
    """
    Runs one batch of a large ``for_each`` step through the interpreter: the items'
    records go to the store, and the result is the batch's counts (``{"status",
    "error", "fatal", "seconds", "counts"}``).
    """

    @workflow.run
    async def run(self, batch: BatchRun) -> dict[str, Any]:
        """Run the batch's items and return what they came to."""
        spec = _load(batch.run)
        step = next(s for s in spec.steps if s.id == batch.step_id)
        step = attrs.evolve(step, concurrency=batch.concurrency)
        items: list[Any]
        if batch.stored is not None:
            rows: dict[str, Any] = await workflow.execute_activity(
                READ_ROWS,
                ReadRows(batch.stored.key, batch.start, batch.count),
                result_type=dict,
                start_to_close_timeout=STORE_TIMEOUT,
                retry_policy=CALL_RETRY,
            )
            header = rows["header"]
            items = [
                CsvRow(cast(Any, csv_row(header, values)), batch.csv or "")
                for values in rows["rows"]
            ]
        elif batch.csv is not None:
            items = [CsvRow(row, batch.csv) for row in batch.items or ()]
        else:
            items = list(batch.items or ())
        driver = _Driver(batch.run, batch.run_id)
        recorder = _Recorder(driver, {}, keep_items=False)
        interpreter = Interpreter(
            spec,
            run_id=batch.run_id,
            call=driver.call,
            clock=_WorkflowClock(),
            recorder=recorder,
            fan_out=_gather,
            functions=_BundledFunctions(batch.run.files, {}),
            inbox=driver,
        )
        context = {
            "inputs": dict(batch.run.inputs),
            "env": spec.visible_env(batch.run.env),
            "steps": _decode_steps(batch.steps, batch.views),
        }
        result = await interpreter.run_items(
            step, context, enumerate(items, batch.start), len(items)
        )
        return {
            "status": result.status,
            "error": result.error,
            "fatal": recorder.fatal,
            "seconds": result.seconds,
            "counts": dict(result.counts or {}),
        }
