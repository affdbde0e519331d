# SPDX-License-Identifier: MIT
"""
The connector's actions as Temporal activities.

Every action of every connector the worker's connection serves is an activity named as
workflows name it (``twilio/send_text_message``), registered from the manifest when
the worker starts, so a manifest that gains an action needs no new code; built-in
actions (``workflow/write_json``) run through the generic ``invoke_action``. They all
run one call through :class:`~connector.workflow.ActionRunner`, exactly as a local run
does: inputs validated against the action's compiled schema, outputs as JSON.

Sends are made idempotent across Temporal's retries: each call carries a deterministic
identity (workflow id, step id, item index); a retried attempt, or an attempt whose
send ended with :class:`~connector.errors.MessageMayHaveBeenSentError`, first looks the
message up (:func:`~connector.workflow.find_sent_message`) and only sends when none is
found. A message found this way is *claimed* for that identity, so two items to the
same number never take the same message.

A call of a reply action (``twilio/wait_for_reply``) only begins its item's wait and
returns it; the waiting happens in the workflow, on durable timers, and each look for
replies is one short activity for the whole step (``connector.look_for_replies``), so no
worker is held while people take their time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._connection import Connection
from .._replies import InboxCursor
from ..workflow import (
    ActionRunner,
    CallRequest,
    Claims,
    ItemRecord,
    LocalClaims,
    Outcome,
    Prior,
    brief,
    item_record,
)
from ._store import RunStore


__all__ = [
    "ACTIVITY_NAME",
    "LOOK_FOR_REPLIES",
    "LOOK_LIMIT",
    "READ_ROWS",
    "STORE_ITEMS",
    "ActionCall",
    "ConnectorActivities",
    "LookForReplies",
    "ReadRows",
    "RedisClaims",
    "StoreItems",
]

#: The generic activity's registered name (built-ins, and callers that pick the
#: action at run time).
ACTIVITY_NAME = "invoke_action"
#: The activity that reads a batch of a stored file's rows.
READ_ROWS = "connector.read_rows"
#: The activity that keeps item records the workflow settled itself.
STORE_ITEMS = "connector.store_items"
#: The activity that looks for replies once for every item a step has waiting.
LOOK_FOR_REPLIES = "connector.look_for_replies"
#: Messages one look hands over at most (the rest at the next look, at once): some
#: 300 bytes each in the history, well under Temporal's 2 MiB for a payload.
LOOK_LIMIT = 2000
#: How often a running activity tells Temporal it is alive. A killed worker's calls
#: are retried elsewhere once a heartbeat is missed, not when start_to_close expires.
HEARTBEAT_EVERY = 1.0
#: The error type raised when a send's outcome stays unknown; Temporal retries it, and
#: the retry reconciles before sending.
UNKNOWN_OUTCOME = "MessageOutcomeUnknown"


@dataclass(frozen=True)
class ActionCall:
    """
    One call of an action, as the workflow schedules it.

    Attributes:
        uses: ``connector/action`` (``twilio/send_text_message``, ``workflow/write_json``).
        inputs: The action's inputs, already rendered (JSON values).
        workflow_id: The Temporal workflow id (the run id).
        step_id: The workflow step.
        index: The item's position (0 for steps without ``for_each``).
        scheduled_at: When the workflow scheduled the call (POSIX seconds, workflow
            time): no attempt can have sent anything before it.
        paginate: Follow next links and return every item.
        max_items: Stop paging after this many items.
        base_dir: The workflow file's directory, for built-ins that write files.
        confine_paths: The ``path`` input is built from ``trigger`` or ``item``.
        record: Keep the item's record in the worker's store (when it has one): the
            outcome is the item's final one.
        brief: Return only a message's brief fields as the output (the workflow reads
            no more of it), so that the history holds less.
    """

    uses: str
    inputs: dict[str, Any]
    workflow_id: str
    step_id: str
    index: int = 0
    scheduled_at: float = 0.0
    paginate: bool = False
    max_items: int | None = None
    base_dir: str = ""
    confine_paths: bool = False
    record: bool = False
    brief: bool = False

    @property
    def identity(self) -> str:
        """The deterministic idempotency identity: the same for every attempt of the call."""
        return f"{self.workflow_id}/{self.step_id}/{self.index}"


@dataclass(frozen=True)
class ReadRows:
    """
    A batch of a stored file's rows, as a child workflow asks for it.

    Attributes:
        key: The file's key in the store.
        start: The first row (0 for the one after the header).
        count: How many rows.
    """

    key: str
    start: int
    count: int


@dataclass(frozen=True)
class StoreItems:
    """
    Item records the workflow settled itself (an item that failed before or after its
    calls: its inputs, its ``wait_until``, its retries), for the store.

    Attributes:
        run_id: The run.
        step_id: The step.
        records: Each item's :meth:`~connector.workflow.ItemRecord.to_json`.
    """

    run_id: str
    step_id: str
    records: list[list[Any]] = field(default_factory=list)


@dataclass(frozen=True)
class LookForReplies:
    """
    One look at the incoming messages, for every item a step has waiting.

    Attributes:
        uses: The reply action (``twilio/wait_for_reply``).
        ours: The numbers and Messaging Service SIDs the step's waits listen on.
        cursor: Where the step's previous look got to (``InboxCursor.to_json``).
    """

    uses: str
    ours: list[str]
    cursor: dict[str, Any]


class RedisClaims:
    """
    Claims shared by every worker through Redis (``SET NX``), kept for a week.

    Args:
        client: A ``redis.asyncio.Redis`` client.
        prefix: Key prefix (the limiter's key, so one deployment shares one namespace).
    """

    TTL = 7 * 24 * 3600

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def claim(self, sid: str, identity: str) -> bool:
        """Credit *sid* to *identity* unless another identity has it."""
        key = f"{self._prefix}:claim:{sid}"
        if await self._client.set(key, identity, nx=True, ex=self.TTL):
            return True
        owner = await self._client.get(key)
        if isinstance(owner, bytes):
            owner = owner.decode()
        return bool(owner == identity)

    async def record(self, sid: str, identity: str) -> None:
        """*identity*'s send created *sid*."""
        await self.claim(sid, identity)


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ConnectorActivities:
    """
    The activities and the per-worker state they share: one connection (so one rate
    limiter, or one share of a Redis-held limit) for every call the worker runs.

    Register :meth:`activities` with a ``temporalio.worker.Worker``.

    Args:
        connection: An open connection; the worker owns its lifecycle.
        claims: Where reconciled messages are claimed; this process only unless given.
        connections: Open connections of other connectors, by id: their actions become
            activities too.
        store: Where per-item results and large files are kept (Redis, shared by every
            worker); without it, a run's item results are only counted.
    """

    def __init__(
        self,
        connection: Connection,
        claims: Claims | None = None,
        *,
        connections: Mapping[str, Connection] | None = None,
        store: RunStore | None = None,
    ) -> None:
        self.connection = connection
        self.connections = dict(connections or {})
        self.claims: Claims = claims or LocalClaims()
        self.store = store
        self._runner = ActionRunner(connection, claims=self.claims, connections=self.connections)

    @activity.defn(name=ACTIVITY_NAME)
    async def invoke_action(self, call: ActionCall) -> dict[str, Any]:
        """
        Run one action call and return its outcome as JSON.

        Returns:
            A JSON object with ``status`` (``succeeded`` or ``failed``), ``output``,
            ``error``, ``error_code``, ``reconciled``, ``fatal`` (the credentials were
            refused: the run stops), ``key`` (a send's recipient), ``store`` (whether
            this worker has a store) and ``stored`` (whether the item's record was
            kept there). Twilio refusing a call, or invalid inputs, is a *failed*
            outcome, not an exception: retrying would not change it.

        Raises:
            temporalio.exceptions.ApplicationError: A send's outcome stayed unknown (type
                ``MessageOutcomeUnknown``); the retry reconciles before sending.
        """
        # An earlier attempt may have sent it and died before reporting (a killed
        # worker, a lost answer): the retry looks before sending. The call was
        # scheduled no later than that attempt started, so nothing it sent is missed.
        attempt = activity.info().attempt
        began = time.time()
        prior = Prior("started", started=call.scheduled_at) if attempt > 1 else None
        request = CallRequest(
            call.uses,
            call.inputs,
            identity=call.identity,
            paginate=call.paginate,
            max_items=call.max_items,
            base_dir=Path(call.base_dir or "."),
            confine_paths=call.confine_paths,
            # A wait for a reply begins when the workflow asked for it: every attempt agrees.
            now=call.scheduled_at,
            park=True,
        )
        async with _heartbeating():
            outcome = await self._runner.run(request, prior=prior)
        if outcome.unresolved:
            raise ApplicationError(f"{call.identity}: {outcome.error}", type=UNKNOWN_OUTCOME)
        if outcome.reconciled and prior is not None:
            activity.logger.info("%s: found the message an earlier attempt sent", call.identity)
        record = item_record(
            call.index,
            outcome.status,
            inputs=outcome.inputs,
            output=outcome.output,
            error=outcome.error,
            error_code=outcome.error_code,
            reconciled=outcome.reconciled,
            attempts=attempt,
            started=began,
            finished=time.time(),
        )
        stored = False
        if call.record and self.store is not None and outcome.wait is None:
            # Kept before the workflow hears of it: a retry after a lost answer writes
            # the same index again, never a second record.
            await self.store.record(call.workflow_id, call.step_id, [record])
            stored = True
        result = _result(outcome)
        if call.brief:
            result["output"] = brief(outcome.output)
        result.update(key=record.key, store=self.store is not None, stored=stored)
        if outcome.wait is not None:
            # The item waits in the workflow now; its record is kept once the wait ends.
            result["wait"] = outcome.wait.to_json()
        return result

    @activity.defn(name=LOOK_FOR_REPLIES)
    async def look_for_replies(self, look: LookForReplies) -> dict[str, Any]:
        """
        List the incoming messages since the step's cursor, once for all its waits;
        their opt-outs and opt-ins go to the worker's consent ledger.

        Returns:
            ``{"messages": [{"at", "event"}...], "cursor", "more", "error", "fatal"}``:
            the new messages oldest first (absent fields left out), at most
            ``LOOK_LIMIT`` (``more`` says there are others), or why the look failed.
        """
        cursor = InboxCursor.from_json(look.cursor)
        async with _heartbeating():
            looked = await self._runner.look(
                look.uses, frozenset(look.ours), cursor, limit=LOOK_LIMIT
            )
        return {
            "messages": [m.to_json() for m in looked.messages],
            "cursor": (looked.cursor or cursor).to_json(),
            "more": looked.more,
            "error": looked.error,
            "fatal": looked.fatal,
        }

    @activity.defn(name=READ_ROWS)
    async def read_rows(self, batch: ReadRows) -> dict[str, Any]:
        """
        Read a batch of a stored file's rows.

        Returns:
            ``{"header": [...], "rows": [[...], ...]}``.

        Raises:
            temporalio.exceptions.ApplicationError: The worker has no store, or the file
                is not in it (not retried: no other attempt would find it).
        """
        if self.store is None:
            raise ApplicationError(
                "this worker has no store, so it cannot read a run's large files: start "
                "every worker with --redis URL (the Redis the submitter used)",
                non_retryable=True,
            )
        try:
            header, rows = await self.store.read_rows(batch.key, batch.start, batch.count)
        except LookupError as exc:
            raise ApplicationError(str(exc), non_retryable=True) from exc
        return {"header": header, "rows": rows}

    @activity.defn(name=STORE_ITEMS)
    async def store_items(self, items: StoreItems) -> int:
        """Keep item records the workflow settled; returns how many (0: no store)."""
        if self.store is None:
            return 0
        return await self.store.record(
            items.run_id, items.step_id, (ItemRecord.from_json(r) for r in items.records)
        )

    def activities(self) -> list[Callable[..., Any]]:
        """
        Every activity to register: one per action of each connection's manifest, named
        ``<connector>/<action>``, and the generic ``invoke_action``.
        """
        connectors = [c.connector for c in (self.connection, *self.connections.values())]
        return [
            self.invoke_action,
            self.read_rows,
            self.store_items,
            self.look_for_replies,
            *(
                self._action_activity(f"{connector.id}/{action_id}")
                for connector in connectors
                for action_id in connector.actions
            ),
        ]

    def _action_activity(self, uses: str) -> Callable[[ActionCall], Awaitable[dict[str, Any]]]:
        async def run(call: ActionCall) -> dict[str, Any]:
            return await self.invoke_action(dataclasses.replace(call, uses=uses))

        run.__name__ = run.__qualname__ = uses.replace("/", "__")
        return activity.defn(name=uses)(run)


def _result(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "output": outcome.output,
        "error": outcome.error,
        "error_code": outcome.error_code,
        "reconciled": outcome.reconciled,
        "fatal": outcome.fatal,
    }
