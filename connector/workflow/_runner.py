# SPDX-License-Identifier: MIT
"""
The local driver of the interpreter: runs a workflow in this process through one
connection, journals every call, and resumes a run without repeating finished work or
resending a message.

Host engines reuse :func:`run_workflow` with their own connection, journal and
progress reporter.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import anyio
import attrs

from .._clock import LoopClock
from .._connection import Connection
from .._convert import build_record
from .._manifest import ActionSpec, ConnectorSpec, DefinitionSpec
from .._replies import Inbound, InboxCursor
from .._types import FORMATS, anchored
from ..errors import Problem, RunError, WorkflowError
from ._calls import ActionRunner, CallRequest, Prior
from ._checks import check_workflow
from ._expressions import LazyList
from ._interpreter import (
    Call,
    Clock,
    Interpreter,
    ItemResult,
    Outcome,
    RunResult,
    StepResult,
    StepStatus,
)
from ._journal import ItemRecord, Journal
from ._model import StepSpec, Workflow, input_type_ok
from ._replies import Looked


if TYPE_CHECKING:
    from .._pacing import Pacer


__all__ = [
    "LoopClock",
    "Progress",
    "item_label",
    "new_run_id",
    "report_eta",
    "resolve_inputs",
    "run_workflow",
    "trigger_payload",
]


class Progress(Protocol):
    """
    Receives progress reports; the CLI draws bars or prints lines.

    A reporter may also define these methods, which are called only when it has them
    (a reporter of the three below keeps working):

    - ``item_failed(step_id: str, index: int, label: str | None, error: str) -> None``:
      an item failed, as soon as it is known; *label* names the item (a send's
      recipient, its ``to``), ``None`` when only its *index* does.
    - ``eta(step_id: str, seconds: float) -> None``: an estimate, from the pacing layer,
      of the seconds until the step finishes (by message segments); it replaces the
      estimate a reporter makes from the rate so far. See :func:`report_eta`.
    """

    def step_started(self, step_id: str, total: int | None) -> None:
        """A step starts; *total* is its number of calls, or ``None`` when paging."""

    def advance(self, step_id: str, count: int = 1) -> None:
        """*count* more calls (or paged items) are done."""

    def step_finished(self, step_id: str, status: str) -> None:
        """A step ended with *status*."""


def report_eta(progress: Progress | None, step_id: str, seconds: float) -> None:
    """
    Tell *progress* when step *step_id* should finish, if it takes such estimates.

    Args:
        progress: The run's reporter (nothing happens for ``None``).
        step_id: The step.
        seconds: From now until the step's last call, as the pacing layer sees it.
    """
    hook = getattr(progress, "eta", None)
    if hook is not None:
        hook(step_id, seconds)


def item_label(action: ActionSpec | None, inputs: Any) -> str | None:
    """
    The name of an item in progress reports and summaries: a send's recipient (its
    ``to`` input), or ``None`` when the item is best named by its index.

    Args:
        action: The step's action (``None`` for built-ins and unknown actions).
        inputs: The item's inputs, as the journal keeps them (secrets masked).
    """
    if action is None or not action.sends_message or not isinstance(inputs, Mapping):
        return None
    for param in action.parameters:
        if param.key.lower() == "to":
            for name in param.names:
                value = inputs.get(name)
                if isinstance(value, str) and value:
                    return value
    return None


async def fan_out(workers: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
    """Run *workers* in one anyio task group: if one fails, the others are cancelled."""
    async with anyio.create_task_group() as group:
        for worker in workers:
            group.start_soon(worker)


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
        rule = ""
        try:
            value = _coerce_input(spec.type, raw)
        except ValueError as exc:
            value = raw
            rule = f": {exc}" if spec.type == "string" else ""  # text that cannot be sent
        if not input_type_ok(spec.type, value):
            problems.append(
                Problem(
                    workflow.file,
                    None,
                    None,
                    f"inputs.{name}",
                    f"must be of type {spec.type}{rule} (got {raw!r})",
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

    Every string field is checked against its definition's ``format`` and ``pattern``
    first: a correctly signed event is still data from outside, and a ``MessageSid`` of
    ``../../tmp/x`` must not reach a path a step builds from it.

    Returns:
        What a run reads as ``trigger``.

    Raises:
        KeyError: The connector has no such trigger.
        ValueError: A field breaks its format or pattern, or a count is not a number.
    """
    spec = connector.triggers[uses.partition("/")[2]]
    _check_fields(connector.definitions, spec.payload, data, "")
    record = build_record(connector.definitions, spec.payload, data)
    return dict(record.to_json_data())


@functools.lru_cache(maxsize=64)
def _search(pattern: str) -> Callable[[str], re.Match[str] | None]:
    return re.compile(anchored(pattern)).search


def _check_fields(
    definitions: Mapping[str, DefinitionSpec], name: str, data: Mapping[str, Any], prefix: str
) -> None:
    for field in definitions[name].fields:
        value = data.get(field.path)
        if field.items_ref is not None and isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    _check_fields(definitions, field.items_ref, item, f"{field.path}[{index}].")
            continue
        if field.ref is not None and isinstance(value, Mapping):
            _check_fields(definitions, field.ref, value, f"{field.path}.")
            continue
        if field.type != "string" or not isinstance(value, str) or not value:
            continue
        fmt = FORMATS.get(field.format) if field.format is not None else None
        if fmt is not None and fmt.regex is not None and not _search(fmt.regex)(value):
            raise ValueError(f"{prefix}{field.path} {fmt.rule} (got {value!r})")
        if field.pattern is not None and not _search(field.pattern)(value):
            raise ValueError(f"{prefix}{field.path} must match {field.pattern} (got {value!r})")


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
    clock: Clock | None = None,
    connections: Mapping[str, Connection] | None = None,
) -> RunResult:
    """
    Run a workflow, or resume a run.

    The workflow is checked first (as ``twilio-connector validate`` does). Every step
    shares *connection*, so every call is paced by its one rate limiter. Each call is
    journaled; a send is journaled as started, durably, before it goes out.

    Sends are checked against the connection's consent ledger; a connection without one
    is given the journal's (:attr:`Journal.consent`), and keeps it. A send to an
    opted-out recipient is a *skipped* item, which does not fail its step.

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
        clock: The run's time (for simulations and tests); the event loop's otherwise.
        connections: Open connections of other connectors the steps use, by connector
            id (``acme/...`` steps call through ``connections["acme"]``).

    Returns:
        The run's outcome.

    Raises:
        WorkflowError: The workflow or the inputs are invalid; nothing ran.
        RunError: The run is active in another process, or its workflow changed.
    """
    others = dict(connections or {})
    specs = {c.connector.id: c.connector for c in [*others.values(), connection]}
    problems = check_workflow(workflow, specs)
    if problems:
        raise WorkflowError(problems)
    for name, value in workflow.visible_env(env or {}).items():
        # Whatever variable it came from, a secret never reaches an expression.
        if any(c.holds_secret(value) for c in [connection, *others.values()]):
            raise RunError(
                f"env {name} holds a secret connection value; expressions never see "
                "secrets (remove it from the workflow's env:)"
            )
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
            try:
                event = trigger_payload(connection.connector, workflow.trigger.uses, trigger)
            except ValueError as exc:
                raise WorkflowError(
                    [Problem(workflow.file, None, None, "trigger", f"refused event: {exc}")]
                ) from None
        run_id = run_id or new_run_id()
        journal.create_run(run_id, workflow.file, workflow.name, fingerprint, values, event)
    if workflow.trigger is not None:
        event = dict(event or {})
    if connection.ledger is None:
        connection.ledger = journal.consent
    recorder = _JournalRecorder(journal, run_id, progress or _NoProgress(), specs, connection.pacer)
    actions = ActionRunner(connection, claims=recorder.claims, connections=others)
    base_dir = workflow.base_dir  # resolving it costs a stat per path part: once
    clock = clock or LoopClock()

    async def call(request: Call) -> Outcome:
        step, index = request.step, request.index

        async def started(shown: Any, at: float) -> None:
            await journal.item_started(run_id, step.id, index, shown, at)

        def paged(items: Sequence[Any]) -> None:
            recorder.add_pages(step, items)

        return await actions.run(
            CallRequest(
                step.uses,
                request.inputs,
                identity=f"{run_id}/{step.id}/{index}",
                paginate=step.paginate,
                max_items=step.max_items,
                base_dir=base_dir,
                repeat=request.repeat,
                confine_paths=request.confine_paths,
                now=clock.now(),
                park=True,
            ),
            prior=recorder.prior(step, index),
            on_send=started,
            on_page=paged,
        )

    interpreter = Interpreter(
        workflow,
        run_id=run_id,
        call=call,
        clock=clock,
        recorder=recorder,
        fan_out=fan_out,
        inbox=_JournalInbox(actions, journal),
    )
    # If cancelled or killed, the run stays "running" in the journal: `runs` shows it as
    # interrupted once this process is gone, and a resume picks it up.
    result = await interpreter.run(values, env or {}, event)
    if interpreter.output_errors:
        result = attrs.evolve(result, output_errors=interpreter.output_errors)
    return result


#: The trigger whose events, journaled by a listener, a waiting run reads as replies.
_INBOUND = "twilio/message_received"


class _JournalInbox:
    """
    The local runner's looks for replies: one list of the incoming messages per look
    for the whole step (through the connection), plus the incoming messages a listener
    on the same journal received since the previous look, so a reply that reached the
    listener is seen even before Twilio's list shows it.
    """

    def __init__(self, actions: ActionRunner, journal: Journal) -> None:
        self._actions = actions
        self._journal = journal
        # Per step: the cursor the last look returned, from when journaled events
        # count, and the position the next read of the journal starts after.
        self._read: dict[str, tuple[InboxCursor | None, float, int]] = {}

    async def look(self, step: StepSpec, ours: frozenset[str], cursor: InboxCursor) -> Looked:
        """The new messages to *ours* since *cursor*, from Twilio and from the journal."""
        looked = await self._actions.look(step.uses, ours, cursor)
        returned, since, last = self._read.get(step.id, (None, cursor.at, 0))
        if cursor != returned:
            # The first look, or the interpreter went back for a wait that counts from
            # earlier: read the journal again from there.
            since, last = cursor.at, 0
        heard: list[Inbound] = []
        while True:
            events, reached = self._journal.inbound_events(_INBOUND, after=last, since=since)
            heard += [
                Inbound(received, event)
                for received, event in events
                if event.get("To") in ours or event.get("MessagingServiceSid") in ours
            ]
            if reached == last or len(events) < 1000:
                last = reached
                break
            last = reached
        self._read[step.id] = (looked.cursor or cursor, since, last)
        if not heard:
            return looked
        # The same message may come both ways; each is handed over once, oldest first.
        listed = {m.sid for m in looked.messages}
        merged = [*looked.messages, *(m for m in heard if m.sid not in listed)]
        return attrs.evolve(looked, messages=sorted(merged, key=lambda m: m.at))


#: Steps with at most this many items keep their results in memory; larger ones are
#: read from the journal when asked for, so memory does not grow with their size.
KEEP_IN_MEMORY = 1_000


class _JournalClaims:
    """
    Claims checked against the journal: a message already recorded for another item of
    the step is not credited again, and one found by a lookup but not yet recorded is
    held in memory until its item's row is written (only calls in flight, so memory
    stays bounded however many items the step has).
    """

    def __init__(self, journal: Journal, run_id: str) -> None:
        self._journal = journal
        self._run_id = run_id
        self._pending: dict[str, str] = {}
        # The journal is read in a thread: a SID that another item records and commits
        # meanwhile may be missing from that read and already gone from _pending, so
        # while reads are in flight, settled SIDs are kept here.
        self._reading = 0
        self._settled_meanwhile: dict[str, str] = {}

    async def claim(self, sid: str, identity: str) -> bool:
        """Credit *sid* to *identity* unless another item has it."""
        owner = self._pending.get(sid)
        if owner is not None:
            return owner == identity
        _, step_id, index = identity.rsplit("/", 2)
        self._reading += 1
        try:
            holder = await self._journal.find_holder(self._run_id, step_id, sid)
        finally:
            self._reading -= 1
            owner = self._pending.get(sid) or self._settled_meanwhile.get(sid)
            if not self._reading:
                self._settled_meanwhile.clear()
        if owner is not None:
            # Another item's send or claim took it while the journal was read.
            return owner == identity
        if holder is not None and str(holder) != index:
            return False
        self._pending[sid] = identity
        return True

    async def record(self, sid: str, identity: str) -> None:
        """*identity*'s send created *sid*; held until its item's row is committed."""
        self._pending[sid] = identity

    def settled(self, sid: str) -> None:
        """*sid* is in the journal now (or its item failed): stop holding it."""
        owner = self._pending.pop(sid, None)
        if owner is not None and self._reading:
            self._settled_meanwhile[sid] = owner


class _JournalRecorder:
    """The local runner's recorder: every outcome goes to the journal, not to memory."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        progress: Progress,
        connectors: Mapping[str, ConnectorSpec] | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.progress = progress
        self.claims = _JournalClaims(journal, run_id)
        self._single: dict[str, Outcome] = {}
        self._resumed: dict[str, int] = {}
        self._fresh: dict[str, bool] = {}
        # Items the journal shows finished before this attempt began were resumed.
        self.began = time.time()
        self._paged: dict[str, int] = {}
        self._connectors = connectors or {}
        self._item_failed = getattr(progress, "item_failed", None)
        self._pacer = pacer if hasattr(progress, "eta") else None
        # Per paced sending step: (calls in all, calls done, done between estimates).
        self._eta: dict[str, list[int]] = {}

    def finished_step(self, step: StepSpec) -> StepResult | None:
        done = self.journal.step(self.run_id, step.id)
        if done is None or done.state not in ("succeeded", "skipped"):
            return None
        status: StepStatus = "succeeded" if done.state == "succeeded" else "skipped"
        outputs = done.outputs
        if outputs is None and status == "succeeded":
            outputs = self._outputs(step)
        return StepResult(step.id, step.uses, status, outputs, resumed=True)

    def step_started(self, step: StepSpec, total: int | None) -> None:
        self._resumed[step.id] = 0
        self._paged[step.id] = 0
        # A step an earlier attempt never reached has nothing to resume: no lookups.
        self._fresh[step.id] = self.journal.item_count(self.run_id, step.id) == 0
        self.progress.step_started(step.id, total)
        if self._pacer is not None and total and self._sends(step):
            # About 200 estimates a step: the pacer's status is cheap, not free.
            self._eta[step.id] = [total, 0, max(1, total // 200)]

    def _sends(self, step: StepSpec) -> bool:
        connector = self._connectors.get(step.connector_id)
        action = connector.actions.get(step.action_id) if connector else None
        return action is not None and action.sends_message

    def _estimate(self, step_id: str) -> None:
        """Tell the progress when the pacing layer expects the step's last message out."""
        counts = self._eta.get(step_id)
        if counts is None or self._pacer is None:
            return
        counts[1] += 1
        total, done, every = counts
        if done % every and done != 1:
            return
        status = self._pacer.status()
        finish = status.expected_finish(total - done)
        if finish is not None:
            report_eta(self.progress, step_id, max(0.0, finish - status.now))

    def prior(self, step: StepSpec, index: int) -> Prior | None:
        if self._fresh.get(step.id):
            return None
        record = self.journal.item(self.run_id, step.id, index)
        if record is None:
            return None
        return Prior(record.state, record.digest, record.started, record.output, record.reconciled)

    def add_pages(self, step: StepSpec, items: Sequence[Any]) -> None:
        first = self._paged.get(step.id, 0)
        self.journal.add_pages(self.run_id, step.id, first, items)
        self._paged[step.id] = first + len(items)
        self.progress.advance(step.id, len(items))

    def item_finished(self, step: StepSpec, index: int, outcome: Outcome) -> None:
        # An unresolved send stays "started" in the journal, so a resume looks it up
        # before any resend; a resumed one is in the journal already.
        if outcome.resumed:
            self._resumed[step.id] = self._resumed.get(step.id, 0) + 1
        elif outcome.unresolved:
            self.journal.item_unresolved(
                self.run_id, step.id, index, outcome.error, outcome.error_code
            )
        else:
            committed = self.journal.item_finished(
                self.run_id,
                step.id,
                index,
                outcome.status,
                inputs=outcome.inputs if outcome.inputs is not None else {},
                output=outcome.output,
                error=outcome.error,
                error_code=outcome.error_code,
                reconciled=outcome.reconciled,
            )
            sid = outcome.output.get("sid") if isinstance(outcome.output, Mapping) else None
            if isinstance(sid, str):
                # Held until the journal shows it, so no lookup credits it elsewhere.
                committed.add_done_callback(lambda _: self.claims.settled(sid))
        if step.for_each is None:
            self._single[step.id] = outcome
        if outcome.status == "failed" and self._item_failed is not None:
            connector = self._connectors.get(step.connector_id)
            action = connector.actions.get(step.action_id) if connector else None
            label = item_label(action, outcome.inputs)
            self._item_failed(step.id, index, label, outcome.error or "failed")
        if not step.paginate:
            self.progress.advance(step.id)
            self._estimate(step.id)

    def _outputs(self, step: StepSpec) -> Any:
        """What steps.<id>.outputs reads: a view of the journal for steps with many items."""
        journal, run_id = self.journal, self.run_id
        name = f"steps.{step.id}.outputs"
        if step.paginate:
            return LazyList(
                name,
                lambda: journal.page_count(run_id, step.id),
                lambda: journal.iter_pages(run_id, step.id),
            )

        def outputs() -> Iterator[Any]:
            for record in journal.iter_items(run_id, step.id):
                yield record.output if record.state == "succeeded" else None

        return LazyList(name, lambda: journal.item_count(run_id, step.id), outputs)

    async def step_finished(
        self, step: StepSpec, status: StepStatus, error: str | None, seconds: float
    ) -> StepResult:
        await self.journal.flush()
        single = self._single.pop(step.id, None)
        counts: dict[str, Any] | None = None
        if step.for_each is not None or step.paginate:
            outputs: Any = self._outputs(step)
            kept = None  # the journal has them, once
        else:
            outputs = None if single is None else single.output
            kept = outputs
        if status != "skipped":
            counts = {**self.journal.step_counts(self.run_id, step.id)}
            counts["resumed"] = self._resumed.pop(step.id, 0)
            counts["failures"] = [
                {"index": f.index, "key": f.key, "error": f.error, "code": f.error_code}
                for f in self.journal.failures(self.run_id, step.id, limit=100)
            ]
            if counts["skipped"]:
                counts["skips"] = [
                    {"index": f.index, "key": f.key, "reason": f.error, "code": f.error_code}
                    for f in self.journal.failures(self.run_id, step.id, 100, state="skipped")
                ]
        self.journal.finish_step(self.run_id, step.id, status, kept, error)
        self.progress.step_finished(step.id, status)
        items: Sequence[ItemResult] = ()
        if counts is not None:
            items = _JournalItems(self.journal, self.run_id, step.id, self.began)
            if counts["calls"] <= KEEP_IN_MEMORY:
                # A small step is read back whole, so its result outlives the journal.
                items = tuple(items)
        if isinstance(outputs, LazyList) and len(outputs) <= KEEP_IN_MEMORY:
            outputs = list(outputs.stream())
        return StepResult(
            step.id, step.uses, status, outputs, items, error, seconds=seconds, counts=counts
        )

    async def run_finished(self, result: RunResult, error: str | None) -> None:
        await self.journal.flush()
        self.journal.finish_run(self.run_id, result.status, result.outputs, error)


class _JournalItems(Sequence[ItemResult]):
    """A step's item results, read from the journal when asked for (never all at once)."""

    def __init__(self, journal: Journal, run_id: str, step_id: str, began: float) -> None:
        self._journal, self._run_id, self._step_id = journal, run_id, step_id
        self._began = began

    def __len__(self) -> int:
        return self._journal.item_count(self._run_id, self._step_id)

    def __iter__(self) -> Iterator[ItemResult]:
        for record in self._journal.iter_items(self._run_id, self._step_id):
            yield _item_result(record, self._began)

    @overload
    def __getitem__(self, index: int) -> ItemResult: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ItemResult]: ...

    def __getitem__(self, index: int | slice) -> ItemResult | Sequence[ItemResult]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        record = self._journal.item(self._run_id, self._step_id, index)
        if record is None:
            raise IndexError(index)
        return _item_result(record, self._began)


def _item_result(record: ItemRecord, began: float) -> ItemResult:
    status: Literal["succeeded", "failed", "skipped"] = (
        record.state if record.state in ("succeeded", "skipped") else "failed"
    )
    # Rows carried over from journals before version 3 have no finishing time.
    resumed = record.state in ("succeeded", "failed", "skipped") and (
        record.finished is None or record.finished < began
    )
    return ItemResult(
        record.index,
        status,
        record.output if status == "succeeded" else None,
        record.error,
        record.error_code,
        record.reconciled,
        resumed,
        record.key,
    )
