# SPDX-License-Identifier: MIT
"""
The connector's actions as Temporal activities.

Every action of the connection's manifest is an activity named as workflows name it
(``twilio/send_text_message``), registered from the manifest when the worker starts, so
a manifest that gains an action needs no new code. They all run through one generic
implementation, also registered as ``invoke_action`` for callers that pick the action
at run time. Input (:class:`ActionCall`) and output (a JSON object) are plain JSON,
validated against the action's compiled schema inside the activity, exactly as a local
run validates them.

Sends are made idempotent across Temporal's retries: each call carries a deterministic
identity (workflow id, step id, item index); a retried attempt, or an attempt whose
send ended with :class:`~connector.errors.MessageMayHaveBeenSentError`, first looks the
message up with the workflow runner's :func:`~connector.workflow._runner.find_sent_message`
and only sends when none is found. A message found this way is *claimed* for that
identity, so two items to the same number never take the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._connection import Connection
from .._convert import to_json
from .._validation import CompiledAction, compile_action
from ..errors import ConnectorError, MessageMayHaveBeenSentError, TwilioAPIError
from ..workflow._builtins import BUILTIN_CONNECTOR, BUILTINS
from ..workflow._runner import MAX_UNKNOWN_ATTEMPTS, find_sent_message


__all__ = [
    "ACTIVITY_NAME",
    "ActionCall",
    "Claims",
    "ConnectorActivities",
    "LocalClaims",
    "RedisClaims",
]

#: The activity's registered name.
ACTIVITY_NAME = "invoke_action"
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

    @property
    def identity(self) -> str:
        """The deterministic idempotency identity: the same for every attempt of the call."""
        return f"{self.workflow_id}/{self.step_id}/{self.index}"


class Claims(Protocol):
    """Records which send a message was credited to, so no message counts twice."""

    async def claim(self, sid: str, identity: str) -> bool:
        """Credit *sid* to *identity* unless another identity has it; return whether it may."""
        ...


class LocalClaims:
    """Claims held in this process: enough for one worker, or unique recipients."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    async def claim(self, sid: str, identity: str) -> bool:
        """Credit *sid* to *identity* unless another identity has it."""
        return self._owners.setdefault(sid, identity) == identity


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


def _result(
    status: str,
    output: Any = None,
    *,
    error: str | None = None,
    error_code: int | None = None,
    reconciled: bool = False,
) -> dict[str, Any]:
    return {
        "status": status,
        "output": output,
        "error": error,
        "error_code": error_code,
        "reconciled": reconciled,
    }


def _code(exc: BaseException) -> int | None:
    return exc.code if isinstance(exc, TwilioAPIError) else None


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
    The activity and the per-worker state it shares: one connection (so one rate
    limiter, or one share of a Redis-held limit) for every call the worker runs.

    Register :meth:`invoke_action` with a ``temporalio.worker.Worker``.

    Args:
        connection: An open connection; the worker owns its lifecycle.
        claims: Where reconciled messages are claimed; this process only unless given.
    """

    def __init__(self, connection: Connection, claims: Claims | None = None) -> None:
        self.connection = connection
        self.claims: Claims = claims or LocalClaims()
        # Compiled once per action: every call of a 10,000-item step validates with it.
        self._compiled: dict[str, CompiledAction] = {}

    @activity.defn(name=ACTIVITY_NAME)
    async def invoke_action(self, call: ActionCall) -> dict[str, Any]:
        """
        Run one action call and return its outcome as JSON.

        Returns:
            ``{"status": "succeeded"|"failed", "output", "error", "error_code",
            "reconciled"}``. Twilio refusing a call, or invalid inputs, is a *failed*
            outcome, not an exception: retrying would not change it.

        Raises:
            ApplicationError: A send's outcome stayed unknown (type
                ``MessageOutcomeUnknown``); the retry reconciles before sending.
        """
        connector_id, _, action_id = call.uses.partition("/")
        if connector_id == BUILTIN_CONNECTOR:
            return self._builtin(action_id, call)
        try:
            compiled = self._compiled.get(call.uses)
            if compiled is None:
                compiled = self._compiled[call.uses] = compile_action(
                    self.connection.action(call.uses)
                )
            spec = compiled.spec
            clean = compiled.validate(call.inputs)
        except ConnectorError as exc:
            return _result("failed", error=str(exc), error_code=_code(exc))
        async with _heartbeating():
            if spec.sends_message:
                return await self._send(call, clean)
            try:
                if call.paginate:
                    items = [
                        to_json(entry)
                        async for entry in self.connection.paginate(
                            call.uses, clean, max_items=call.max_items
                        )
                    ]
                    return _result("succeeded", items)
                return _result("succeeded", to_json(await self.connection.call(call.uses, clean)))
            except ConnectorError as exc:
                return _result("failed", error=str(exc), error_code=_code(exc))

    def activities(self) -> list[Callable[..., Any]]:
        """
        Every activity to register: one per action of the connection's manifest, named
        ``<connector>/<action>``, and the generic ``invoke_action``.
        """
        connector = self.connection.connector
        return [
            self.invoke_action,
            *(
                self._action_activity(f"{connector.id}/{action_id}")
                for action_id in connector.actions
            ),
        ]

    def _action_activity(self, uses: str) -> Callable[[ActionCall], Awaitable[dict[str, Any]]]:
        async def run(call: ActionCall) -> dict[str, Any]:
            return await self.invoke_action(dataclasses.replace(call, uses=uses))

        run.__name__ = run.__qualname__ = uses.replace("/", "__")
        return activity.defn(name=uses)(run)

    def _builtin(self, action_id: str, call: ActionCall) -> dict[str, Any]:
        builtin = BUILTINS.get(action_id)
        if builtin is None:
            return _result("failed", error=f"no built-in action {action_id!r}")
        problems = builtin.check(call.inputs)
        if problems:
            return _result("failed", error="; ".join(problems))
        try:
            return _result("succeeded", builtin.run(call.inputs, Path(call.base_dir or ".")))
        except (OSError, TypeError, ValueError) as exc:
            return _result("failed", error=str(exc))

    async def _send(self, call: ActionCall, clean: Mapping[str, Any]) -> dict[str, Any]:
        identity = call.identity

        def claim(sid: str) -> Awaitable[bool]:
            return self.claims.claim(sid, identity)

        if activity.info().attempt > 1:
            # An earlier attempt may have sent it and died before reporting (a killed
            # worker, a lost answer): look before sending. The call was scheduled no
            # later than that attempt started, so nothing it sent is missed.
            # The earlier attempt ended a heartbeat timeout ago: no need to let it settle.
            found = await find_sent_message(
                self.connection, clean, call.scheduled_at, claim=claim, settle=0.0
            )
            if found is not None:
                activity.logger.info("%s: found the message an earlier attempt sent", identity)
                return _result("succeeded", found, reconciled=True)
        for _ in range(MAX_UNKNOWN_ATTEMPTS):
            started = time.time()
            try:
                output = to_json(await self.connection.call(call.uses, clean))
            except MessageMayHaveBeenSentError:
                found = await find_sent_message(self.connection, clean, started, claim=claim)
                if found is not None:
                    return _result("succeeded", found, reconciled=True)
                continue  # not sent: trying again cannot duplicate it
            except ConnectorError as exc:
                # Twilio refused it, or it never left: nothing was sent.
                return _result("failed", error=str(exc), error_code=_code(exc))
            if isinstance(output, Mapping) and isinstance(output.get("sid"), str):
                await claim(output["sid"])
            return _result("succeeded", output)
        raise ApplicationError(
            f"{identity}: the outcome of the send stayed unknown after "
            f"{MAX_UNKNOWN_ATTEMPTS} attempts; the next attempt looks it up first",
            type=UNKNOWN_OUTCOME,
        )
