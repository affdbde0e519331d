# SPDX-License-Identifier: MIT
"""
The one interpreter of the workflow language: steps in order, ``if``, ``for_each``,
``with`` rendered per item, ``wait_until``, waits for replies, ``continue_on_error``,
step status and the workflow's ``outputs``.

It does no I/O of its own. A driver gives it:

- a *call* coroutine that runs one call of an action (the local runner validates,
  journals and reconciles; Temporal schedules an activity);
- a *clock* (wall time locally, workflow time on Temporal; a virtual one in tests);
- a *recorder* that keeps what the run produces and says what an earlier attempt of
  the run finished (the journal locally, the workflow's own memory on Temporal);
- a *fan-out* that runs a step's workers concurrently (an anyio task group locally;
  ``asyncio.gather`` on Temporal, where a task group's ``ExceptionGroup`` would not fail
  the workflow, temporalio sdk-python#1020);
- an *inbox* (:class:`~connector.workflow._replies.Inbox`) that looks at the incoming
  messages, for steps that wait for replies.

Memory is bounded by a step's concurrency, not by its number of items: items are drawn
from their source one at a time, each outcome goes to the recorder as soon as it is
known, and an item that waits is parked (no task per waiting item, no concurrency slot):
one whose ``wait_until`` condition does not hold yet in a queue until its next poll is
due; one whose call began a wait for a reply (the driver's outcome carries a
:class:`~connector.workflow._replies.ReplyWait`) in the step's inbox, found by who is to
reply, until a look finds its answer or its time is up. One look per interval serves
every waiting item of the step, with one cursor.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs

from .._replies import InboxCursor
from ..errors import ExpressionError
from ._confine import reads_untrusted
from ._expressions import LazyList, Template, WorkflowFunctions, materialise
from ._model import StepSpec, Workflow
from ._replies import Ended, Inbox, Looked, ReplyWait


__all__ = [
    "Call",
    "CallFn",
    "Clock",
    "FanOut",
    "Interpreter",
    "ItemResult",
    "Outcome",
    "Recorder",
    "RunResult",
    "StepDelegate",
    "StepResult",
    "truthy",
]

StepStatus = Literal["succeeded", "failed", "skipped"]


@attrs.frozen
class ItemResult:
    """
    The outcome of one call of a step.

    Attributes:
        index: The item's position (0 for steps without ``for_each``).
        status: ``succeeded``, ``failed``, or ``skipped`` (not called, on purpose: the
            recipient opted out; it does not fail the step).
        output: The output in JSON form (``None`` when it failed or was skipped).
        error: The error (for a skipped item, why it was skipped), in words.
        error_code: Twilio's error code, when there is one.
        reconciled: Whether a send's unknown outcome was resolved by finding the message.
        resumed: Whether the result comes from the journal of an earlier attempt.
        label: What names the item in reports: a send's recipient; ``None`` when its
            index does (set by the driver, which knows the actions).
    """

    index: int
    status: Literal["succeeded", "failed", "skipped"]
    output: Any = None
    error: str | None = None
    error_code: int | None = None
    reconciled: bool = False
    resumed: bool = False
    label: str | None = None


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
        items: Each call's outcome (for a local run, read from the journal on demand).
        error: Why the step failed, when not because of its items.
        resumed: Whether the whole step was finished in an earlier attempt.
        seconds: How long the step took in this attempt.
        counts: What its items came to (``calls``, ``succeeded``, ``failed``,
            ``reconciled``, ``skipped``, ``resumed``, message ``statuses``,
            ``error_codes``, the first ``failures`` with their ``index``, ``key``,
            ``error`` and ``code``, and the first ``skips`` with their ``reason``),
            when the driver counted them without reading every item.
    """

    id: str
    uses: str
    status: StepStatus
    outputs: Any = None
    items: Sequence[ItemResult] = ()
    error: str | None = None
    resumed: bool = False
    seconds: float = 0.0
    counts: Mapping[str, Any] | None = None


@attrs.frozen
class RunResult:
    """
    The outcome of a run.

    Attributes:
        run_id: The id to resume it with.
        status: ``succeeded`` or ``failed``.
        outputs: The workflow's outputs.
        steps: Each step that ran or was skipped, in order.
        output_errors: Outputs left null because they would read too many items, with
            why (``runs export`` reads them).
    """

    run_id: str
    status: Literal["succeeded", "failed"]
    outputs: Mapping[str, Any]
    steps: tuple[StepResult, ...]
    output_errors: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every step succeeded (or failed with ``continue_on_error``)."""
        return self.status == "succeeded"


@attrs.frozen
class Call:
    """
    One call of an action, as the interpreter asks a driver for it.

    Attributes:
        step: The step.
        index: The item's position (0 for steps without ``for_each``).
        inputs: The step's ``with``, rendered for this item.
        repeat: A ``wait_until`` poll: call again, even if an earlier attempt of the run
            finished this item.
        confine_paths: The ``path`` input is built from ``trigger`` or ``item``: a
            built-in may not use it outside the workflow's (or the output) directory.
    """

    step: StepSpec
    index: int
    inputs: Any
    repeat: bool = False
    confine_paths: bool = False


@attrs.frozen
class Outcome:
    """
    What one call came to, as a driver reports it.

    Attributes:
        status: ``succeeded``, ``failed`` or ``skipped`` (a call not made on purpose,
            such as a send to an opted-out recipient; it does not fail the step).
        output: The output in JSON form.
        error: The error (for a skipped call, why it was skipped), in words.
        error_code: Twilio's error code, when there is one.
        reconciled: Whether a send's unknown outcome was resolved by finding the message.
        resumed: Whether it was finished by an earlier attempt of the run (nothing was
            called now).
        inputs: The inputs as the journal keeps them (validated, secrets masked).
        unresolved: A send whose outcome stayed unknown: the driver keeps it "started",
            so the next attempt of the run looks the message up before any resend.
        fatal: Every other call would fail the same way (Twilio refused the
            credentials): the run stops, and what was not called stays for a resume.
        exception: The error that ended a failed call, for hosts that raise it (a
            Prefect task fails with the ``TwilioAPIError`` and its code, not a string);
            never journaled or compared.
        wait: The call began a wait for a reply (``twilio/wait_for_reply``): the item is
            parked until its answer or its timeout, and this outcome is not its last.
    """

    status: Literal["succeeded", "failed", "skipped"]
    output: Any = None
    error: str | None = None
    error_code: int | None = None
    reconciled: bool = False
    resumed: bool = False
    inputs: Any = None
    unresolved: bool = False
    fatal: bool = False
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    wait: ReplyWait | None = None

    def result(self, index: int) -> ItemResult:
        """The :class:`ItemResult` of item *index*."""
        return ItemResult(
            index,
            self.status,
            self.output,
            self.error,
            self.error_code,
            self.reconciled,
            self.resumed,
        )


CallFn = Callable[[Call], Awaitable[Outcome]]
#: Runs the given coroutine functions concurrently and returns when all have ended.
FanOut = Callable[[Sequence[Callable[[], Coroutine[Any, Any, None]]]], Awaitable[None]]
#: Given a ``for_each`` step (its ``if`` held), its items as drawn from their source and
#: how many there are, runs the step elsewhere and returns its result, or returns
#: ``None`` to let the interpreter run it here. Temporal runs a large step as batches
#: in child workflows, each through :meth:`Interpreter.run_items`.
StepDelegate = Callable[[StepSpec, Iterator[Any], int | None], Awaitable[StepResult | None]]


class Clock(Protocol):
    """The interpreter's time: what ``now()`` reads and what ``wait_until`` waits on."""

    def now(self) -> float:
        """Seconds since 1970 (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait *seconds*."""
        ...


class Recorder(Protocol):
    """Where a run's results go, and what an earlier attempt of the run finished."""

    def finished_step(self, step: StepSpec) -> StepResult | None:
        """The step's result if an earlier attempt finished it (``resumed=True``)."""
        ...

    def step_started(self, step: StepSpec, total: int | None) -> None:
        """A step starts *total* calls (``None``: unknown, or paging)."""
        ...

    def item_finished(self, step: StepSpec, index: int, outcome: Outcome) -> None:
        """An item's final outcome (after its ``wait_until``, if any)."""
        ...

    async def step_finished(
        self, step: StepSpec, status: StepStatus, error: str | None, seconds: float
    ) -> StepResult:
        """A step ended; return its result (with the outputs later steps read)."""
        ...

    async def run_finished(self, result: RunResult, error: str | None) -> None:
        """The run ended."""
        ...


def truthy(value: Any) -> bool:
    """JMESPath's notion of truth: ``false``, ``null``, ``""``, ``[]`` and ``{}`` are false."""
    return value not in (None, False, "", [], {})


@attrs.define
class _Parked:
    """An item waiting for its next ``wait_until`` poll."""

    due: float
    deadline: float
    index: int
    context: Mapping[str, Any]
    inputs: Any
    outcome: Outcome


@attrs.define(eq=False)
class _Waiting:
    """An item waiting for a reply."""

    index: int
    wait: ReplyWait
    outcome: Outcome
    ended: bool = False


@attrs.define
class _Replies:
    """
    A step's items waiting for replies, found by who is to reply, with the deadlines in
    a heap and one cursor for every look: the memory of a wait is one small object,
    whatever its timeout.
    """

    by_person: dict[str, list[_Waiting]] = attrs.field(factory=dict)
    deadlines: list[tuple[float, int, _Waiting]] = attrs.field(factory=list)
    ours: set[str] = attrs.field(factory=set)
    cursor: InboxCursor | None = None
    # The earliest `after` of the waits begun since the last look: the next look goes
    # back to it, so a wait that begins late still sees what came before it began.
    since: float | None = None
    interval: float = math.inf
    due: float = math.inf
    looking: bool = False
    count: int = 0

    def next_deadline(self) -> float:
        while self.deadlines and self.deadlines[0][2].ended:
            heapq.heappop(self.deadlines)
        return self.deadlines[0][0] if self.deadlines else math.inf


@attrs.define
class _StepState:
    items: Iterator[tuple[int, Any]]
    parked: collections.deque[_Parked] = attrs.field(factory=collections.deque)
    replies: _Replies = attrs.field(factory=_Replies)
    failed: int = 0
    done: int = 0
    first_error: str | None = None
    # The item source failed midway (an unreadable row): the items taken so far ran.
    broken: str | None = None


def _checked(step: StepSpec, items: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """The step's items, with a failure of their source raised as an ExpressionError."""
    try:
        yield from items
    except (OSError, ValueError) as exc:
        raise ExpressionError(getattr(step.for_each, "text", "for_each"), str(exc)) from exc


class Interpreter:
    """
    Runs one workflow through a driver's call, clock and recorder.

    Args:
        workflow: The loaded (and checked) workflow.
        run_id: The run's id (what ``RunResult.run_id`` says).
        call: Runs one call of an action.
        clock: The run's time.
        recorder: Keeps results; knows what an earlier attempt finished.
        fan_out: Runs a step's workers concurrently.
        functions: The functions expressions may call; the workflow's directory and
            *clock* unless given.
        delegate: Offered each ``for_each`` step before it runs here (see
            ``StepDelegate``).
        inbox: Looks at the incoming messages for steps whose calls begin waits for
            replies; without one, such an item fails.
    """

    def __init__(
        self,
        workflow: Workflow,
        *,
        run_id: str,
        call: CallFn,
        clock: Clock,
        recorder: Recorder,
        fan_out: FanOut,
        functions: WorkflowFunctions | None = None,
        delegate: StepDelegate | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self._call = call
        self.clock = clock
        self.recorder = recorder
        self._fan_out = fan_out
        self.functions = functions or WorkflowFunctions(
            workflow.base_dir, clock=lambda: dt.datetime.fromtimestamp(clock.now(), dt.UTC)
        )
        self.context: dict[str, Any] = {}
        self._fatal: str | None = None
        self._confined_functions = self.functions.confined()
        self._untrusted: dict[int, bool] = {}
        self._delegate = delegate
        self._inbox = inbox

    async def run(
        self,
        inputs: Mapping[str, Any],
        env: Mapping[str, str],
        trigger: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """
        Run every step and render the outputs.

        Args:
            inputs: The resolved inputs.
            env: The environment; expressions see only the variables the workflow
                declares (``env:``).
            trigger: What ``trigger`` reads (workflows with ``on:`` only).
        """
        self.context = {
            "inputs": dict(inputs),
            "env": self.workflow.visible_env(env),
            "steps": {},
        }
        if self.workflow.trigger is not None:
            self.context["trigger"] = dict(trigger or {})
        results: list[StepResult] = []
        failed = False
        for step in self.workflow.steps:
            result = self.recorder.finished_step(step) or await self._step(step)
            results.append(result)
            self.context["steps"][step.id] = {"outputs": result.outputs, "status": result.status}
            if result.status == "failed" and (self._fatal or not step.continue_on_error):
                failed = True
                break
        outputs = self._outputs()
        error = None
        if failed:
            last = results[-1]
            error = last.error or f"step {last.id} failed"
        run = RunResult(self.run_id, "failed" if failed else "succeeded", outputs, tuple(results))
        await self.recorder.run_finished(run, error)
        return run

    def render(self, value: Any, path: tuple[str | int, ...], context: Mapping[str, Any]) -> Any:
        """Render a literal structure, evaluating the templates compiled at *path* and below."""
        template = self.workflow.templates.get(path)
        if template is not None:
            return template.render(context, self._functions(template))
        if isinstance(value, Mapping):
            return {k: self.render(v, (*path, str(k)), context) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, (*path, i), context) for i, v in enumerate(value)]
        return value

    def _reads_untrusted(self, template: Template) -> bool:
        known = self._untrusted.get(id(template))
        if known is None:
            known = self._untrusted[id(template)] = reads_untrusted(template)
        return known

    def _functions(self, template: Template) -> WorkflowFunctions:
        """The functions a template calls: confined if it reads ``trigger`` or ``item``."""
        return self._confined_functions if self._reads_untrusted(template) else self.functions

    def _confine(self, step: StepSpec) -> bool:
        """Whether the step's ``path`` input is built from ``trigger`` or ``item``."""
        with_path = (*step.path, "with")
        templates = self.workflow.templates
        return any(
            self._reads_untrusted(template)
            for template in (templates.get(with_path), templates.get((*with_path, "path")))
            if template is not None
        )

    def _outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        self.output_errors: dict[str, str] = {}
        for name, value in self.workflow.outputs.items():
            try:
                outputs[name] = materialise(self.render(value, ("outputs", name), self.context))
            except ExpressionError as exc:
                # An output may read a step that did not run; it is then null. One that
                # would read millions of items says so.
                outputs[name] = None
                if "an expression may read at most" in exc.reason:
                    self.output_errors[name] = str(exc)
        return outputs

    # -- steps ----------------------------------------------------------------------

    def _items(self, step: StepSpec) -> tuple[Iterator[Any], int | None]:
        """
        The step's items, drawn one at a time, and how many there are (``None`` when
        only reading them all would tell): a CSV file or an earlier step's outputs are
        read as the items are taken, never all at once.
        """
        if step.for_each is None:
            return iter([None]), 1
        if isinstance(step.for_each, Template):
            stream = self._functions(step.for_each).stream(step.for_each, self.context)
            if stream is not None:
                return stream
            items = step.for_each.render(self.context, self._functions(step.for_each))
        else:
            items = self.render(step.for_each, (*step.path, "for_each"), self.context)
        if isinstance(items, LazyList):
            return items.stream(), len(items)
        if not isinstance(items, list):
            raise ExpressionError(
                getattr(step.for_each, "text", "for_each"),
                f"for_each needs a list, got {type(items).__name__}",
            )
        return iter(items), len(items)

    async def _step(self, step: StepSpec) -> StepResult:
        try:
            if step.if_ is not None and not truthy(
                step.if_.render(self.context, self._functions(step.if_))
            ):
                return await self.recorder.step_finished(step, "skipped", None, 0.0)
            items, total = self._items(step)
        except ExpressionError as exc:
            return await self.recorder.step_finished(step, "failed", str(exc), 0.0)
        if self._delegate is not None and step.for_each is not None:
            delegated = await self._delegate(step, items, total)
            if delegated is not None:
                return delegated
        return await self._run_items(step, enumerate(items), total)

    async def run_items(
        self,
        step: StepSpec,
        context: Mapping[str, Any],
        items: Iterator[tuple[int, Any]],
        total: int | None,
    ) -> StepResult:
        """
        Run a ``for_each`` step over the given items only, as :meth:`run` would run the
        whole step: for a driver that runs a large step's items in batches.

        Args:
            step: The step (its ``if`` already held).
            context: What its expressions read (``inputs``, ``env``, ``steps``).
            items: ``(index, item)`` pairs, drawn one at a time.
            total: How many there are.

        Returns:
            The result of these items, from the recorder's ``step_finished``.
        """
        self.context = dict(context)
        return await self._run_items(step, items, total)

    async def _run_items(
        self, step: StepSpec, items: Iterator[tuple[int, Any]], total: int | None
    ) -> StepResult:
        self.recorder.step_started(step, None if step.paginate else total)
        began = self.clock.now()
        state = _StepState(_checked(step, items))

        async def worker() -> None:
            replies = state.replies
            while self._fatal is None:
                if replies.count and not replies.looking and replies.due <= self.clock.now():
                    await self._look(step, state)
                    continue
                parked = state.parked[0] if state.parked else None
                if parked is not None and parked.due <= self.clock.now():
                    state.parked.popleft()
                    await self._poll(step, state, parked)
                    continue
                try:
                    job = next(state.items, None)
                except ExpressionError as exc:
                    state.broken = str(exc)
                    state.items = iter(())
                    job = None
                if job is not None:
                    await self._first_call(step, state, *job)
                    continue
                # Polls of one step are due in the order they were parked (one interval
                # each), so the head is always the next one due. While another worker
                # looks for replies, this one has nothing to wait for.
                wake = min(
                    parked.due if parked is not None else math.inf,
                    replies.due if replies.count and not replies.looking else math.inf,
                )
                if wake == math.inf:
                    return
                await self.clock.sleep(max(0.0, wake - self.clock.now()))

        width = step.concurrency if step.for_each is not None else 1
        await self._fan_out([worker] * max(1, min(width, total if total is not None else width)))
        status: StepStatus = "failed" if state.failed else "succeeded"
        error = None
        if self._fatal is not None:
            error = self._fatal
        elif state.failed:
            error = (
                f"{state.failed} of {state.done} items failed"
                if step.for_each is not None
                else state.first_error
            )
        if state.broken is not None:
            status, error = "failed", state.broken
        return await self.recorder.step_finished(step, status, error, self.clock.now() - began)

    def _item_context(self, step: StepSpec, index: int, item: Any) -> Mapping[str, Any]:
        if step.for_each is None:
            return self.context
        return {**self.context, "item": item, "index": index}

    async def _first_call(self, step: StepSpec, state: _StepState, index: int, item: Any) -> None:
        context = self._item_context(step, index, item)
        try:
            inputs = self.render(step.with_, (*step.path, "with"), context)
        except ExpressionError as exc:
            self._finish(step, state, index, Outcome("failed", error=str(exc)))
            return
        outcome = await self._call(Call(step, index, inputs, confine_paths=self._confine(step)))
        if outcome.wait is not None:
            self._wait_for_reply(step, state, index, outcome, outcome.wait)
            return
        wait = step.wait_until
        if wait is None or outcome.status != "succeeded":
            self._finish(step, state, index, outcome)
            return
        deadline = self.clock.now() + wait.timeout
        self._check_wait(step, state, _Parked(0.0, deadline, index, context, inputs, outcome))

    async def _poll(self, step: StepSpec, state: _StepState, parked: _Parked) -> None:
        call = Call(
            step, parked.index, parked.inputs, repeat=True, confine_paths=self._confine(step)
        )
        outcome = await self._call(call)
        if outcome.status != "succeeded":
            self._finish(step, state, parked.index, outcome)
            return
        parked.outcome = outcome
        self._check_wait(step, state, parked)

    def _check_wait(self, step: StepSpec, state: _StepState, parked: _Parked) -> None:
        """Finish the item if its condition holds or its time is up; park it otherwise."""
        wait = step.wait_until
        assert wait is not None
        output = parked.outcome.output
        try:
            holds = truthy(
                wait.condition.render(
                    {**parked.context, "outputs": output}, self._functions(wait.condition)
                )
            )
        except ExpressionError as exc:
            self._finish(
                step,
                state,
                parked.index,
                attrs.evolve(parked.outcome, status="failed", output=None, error=str(exc)),
            )
            return
        if holds:
            self._finish(step, state, parked.index, parked.outcome)
            return
        due = self.clock.now() + wait.interval
        if due > parked.deadline:
            status = output.get("status") if isinstance(output, Mapping) else output
            error = (
                f"wait_until: {wait.condition.text} still false after {wait.timeout:g}s "
                f"(last output: status={status!r})"
            )
            self._finish(
                step,
                state,
                parked.index,
                attrs.evolve(parked.outcome, status="failed", output=None, error=error),
            )
            return
        parked.due = due
        state.parked.append(parked)

    # -- waiting for replies ------------------------------------------------------

    def _wait_for_reply(
        self, step: StepSpec, state: _StepState, index: int, outcome: Outcome, wait: ReplyWait
    ) -> None:
        """Park an item until a look finds its answer or its time is up."""
        if self._inbox is None:
            failed = attrs.evolve(
                outcome, status="failed", wait=None, error="this driver cannot wait for replies"
            )
            self._finish(step, state, index, failed)
            return
        replies = state.replies
        waiting = _Waiting(index, wait, attrs.evolve(outcome, wait=None))
        replies.by_person.setdefault(wait.person, []).append(waiting)
        heapq.heappush(replies.deadlines, (wait.deadline, index, waiting))
        replies.ours.update(wait.settings.ours)
        replies.since = min(replies.since if replies.since is not None else math.inf, wait.after)
        replies.interval = min(replies.interval, wait.settings.interval)
        if replies.cursor is None and not replies.looking:
            # The step's first look comes at once: the answer may be there already.
            replies.due = self.clock.now()
        replies.count += 1
        replies.due = min(replies.due, wait.deadline)

    async def _look(self, step: StepSpec, state: _StepState) -> None:
        """One look for the whole step: hand each new message to its sender's waits."""
        assert self._inbox is not None
        replies = state.replies
        since = replies.since
        cursor = replies.cursor or InboxCursor(since or self.clock.now())
        if since is not None:
            cursor = cursor.rewound(since)
        replies.since = None
        began = self.clock.now()
        replies.looking = True
        try:
            looked: Looked = await self._inbox.look(step, frozenset(replies.ours), cursor)
        finally:
            replies.looking = False
        replies.cursor = looked.cursor or cursor
        if looked.fatal is not None:
            # The waits stay as they are: journaled as begun, a resume waits again.
            self._fatal = looked.fatal
            return
        started_by = self._trigger_sid()
        for message in looked.messages:
            if started_by and message.sid == started_by:
                # The message that started the run is no answer to a question the run
                # asked after it, though Twilio's whole seconds may date them alike.
                continue
            for waiting in list(replies.by_person.get(message.person or "", ())):
                ended = waiting.wait.settle(message)
                if ended is not None:
                    self._end_wait(step, state, waiting, ended)
        if looked.more:
            replies.due = self.clock.now()
            return
        if looked.error is not None:
            # A failed look saw nothing: no wait times out on it, and the next look
            # comes after the interval, even past a deadline.
            replies.due = began + replies.interval
            return
        # A look that began at or after a deadline saw every reply sent in time.
        while replies.next_deadline() <= began:
            _, _, waiting = heapq.heappop(replies.deadlines)
            self._end_wait(step, state, waiting, waiting.wait.expire())
        # The next look comes after the interval, or at the next deadline if sooner; but
        # waits that began a moment apart end a moment apart, and a look for each would
        # cost a list per item: deadlines this close share a look, at most a quarter of
        # the interval late.
        interval = replies.interval
        replies.due = min(began + interval, max(replies.next_deadline(), began + interval / 4))

    def _trigger_sid(self) -> str:
        """The SID of the message that started the run, if a message did."""
        trigger = self.context.get("trigger")
        if not isinstance(trigger, Mapping):
            return ""
        return str(trigger.get("MessageSid") or trigger.get("SmsSid") or "")

    def _end_wait(self, step: StepSpec, state: _StepState, waiting: _Waiting, ended: Ended) -> None:
        replies = state.replies
        waiting.ended = True
        replies.count -= 1
        same = replies.by_person.get(waiting.wait.person, [])
        same.remove(waiting)
        if not same:
            replies.by_person.pop(waiting.wait.person, None)
        outcome = attrs.evolve(
            waiting.outcome, status=ended.status, output=ended.output, error=ended.error
        )
        self._finish(step, state, waiting.index, outcome)

    def _finish(self, step: StepSpec, state: _StepState, index: int, outcome: Outcome) -> None:
        state.done += 1
        if outcome.fatal and self._fatal is None:
            self._fatal = outcome.error
        if outcome.status == "failed":
            state.failed += 1
            if state.first_error is None:
                state.first_error = outcome.error
        self.recorder.item_finished(step, index, outcome)
