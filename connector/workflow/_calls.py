# SPDX-License-Identifier: MIT
"""
One call of an action for a workflow, as every driver runs it: validate the rendered
inputs, run a built-in, follow pages, or send a message so that it is never sent twice.

The local runner and Temporal's activities both run calls through
:class:`ActionRunner`. What differs is said in arguments: what an earlier attempt left
(the journal's row locally; "a previous attempt may have sent it" on an activity's
retry), and a hook that records a send as started, durably, before it leaves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import attrs

from .._connection import Connection
from .._convert import field_value, to_json
from .._validation import CompiledAction, compile_action
from ..errors import (
    AuthenticationError,
    ConnectorError,
    MessageMayHaveBeenSentError,
    TwilioAPIError,
)
from ._builtins import BUILTIN_CONNECTOR, BUILTINS
from ._interpreter import Outcome


__all__ = [
    "MAX_UNKNOWN_ATTEMPTS",
    "RECONCILE_LIMIT",
    "RECONCILE_SETTLE",
    "RECONCILE_SKEW",
    "ActionRunner",
    "CallRequest",
    "Claims",
    "LocalClaims",
    "Prior",
    "find_sent_message",
]

#: How many sends of one item may end with an unknown outcome before the runner gives
#: up on it (leaving it to be reconciled by a later attempt).
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


class Claims(Protocol):
    """Records which call a message was credited to, so no message counts twice."""

    async def claim(self, sid: str, identity: str) -> bool:
        """Credit *sid* to *identity* unless another identity has it; return whether it may."""
        ...


class LocalClaims:
    """
    Claims held in this process: enough for one runner, or for one worker.

    Args:
        owners: Messages already credited (SID -> identity), e.g. from a journal.
    """

    def __init__(self, owners: Mapping[str, str] | None = None) -> None:
        self._owners: dict[str, str] = dict(owners or {})

    async def claim(self, sid: str, identity: str) -> bool:
        """Credit *sid* to *identity* unless another identity has it."""
        return self._owners.setdefault(sid, identity) == identity

    def add(self, sid: str, identity: str) -> None:
        """Record that *sid* belongs to *identity*."""
        self._owners.setdefault(sid, identity)


@attrs.frozen
class Prior:
    """
    What an earlier attempt of a call left behind.

    Attributes:
        state: ``started`` (a send's outcome is unknown), ``succeeded`` or ``failed``.
        inputs: The inputs it ran with, as journaled (``None``: unknown, not compared).
        started: When its send started (POSIX seconds), or any earlier moment.
        output: Its output, when it succeeded.
        reconciled: Whether that output was found by a lookup.
    """

    state: Literal["started", "succeeded", "failed", "skipped"]
    inputs: Any = None
    started: float | None = None
    output: Any = None
    reconciled: bool = False


@attrs.frozen
class CallRequest:
    """
    One call of an action, ready to run.

    Attributes:
        uses: ``connector/action`` (``twilio/send_text_message``, ``workflow/write_json``).
        inputs: The rendered inputs (JSON values).
        identity: The same for every attempt of this call (``run/step/index``); a
            message found by reconciliation is claimed for it.
        paginate: Follow next links and return every item.
        max_items: Stop paging after this many items.
        base_dir: Where built-ins resolve relative paths.
        repeat: Call again even if an earlier attempt succeeded (a ``wait_until`` poll).
    """

    uses: str
    inputs: Any
    identity: str
    paginate: bool = False
    max_items: int | None = None
    base_dir: Path = attrs.field(factory=Path)
    repeat: bool = False


def _code(exc: BaseException) -> int | None:
    return exc.code if isinstance(exc, TwilioAPIError) else None


def _refused(exc: ConnectorError, shown: Any, connection: Connection) -> Outcome:
    """The outcome of a call Twilio (or the network) refused; nothing was sent."""
    if isinstance(exc, AuthenticationError) and exc.status == 401:
        # Every other call would be refused the same way: stop the run, with a hint.
        pair = connection.credential_keys or ()
        names = [str(p.env) for p in connection.connector.connection if p.key in pair and p.env]
        check = " and ".join(names) or "the connection's values"
        return Outcome(
            "failed",
            error=f"{exc}. The credentials were refused: check {check} (or the workflow's "
            "connection variables); the run stopped before making the other calls",
            error_code=exc.code,
            inputs=shown,
            fatal=True,
            exception=exc,
        )
    return Outcome("failed", error=str(exc), error_code=_code(exc), inputs=shown, exception=exc)


def _json_inputs(inputs: Any) -> Any:
    try:
        return to_json(inputs)
    except TypeError:
        return {"unprintable": repr(inputs)[:200]}


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
    the attempt (less ``RECONCILE_SKEW`` of clock skew). It is looked up with
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


class ActionRunner:
    """
    Runs calls of actions through one connection, for any driver.

    A send whose outcome is unknown is looked up before it is tried again, and never
    counted for two calls; when its outcome stays unknown the result is *unresolved*
    (the driver keeps it "started" so the next attempt looks again before any resend).

    Args:
        connection: An open connection (every call shares its rate limit), for the
            actions of its connector.
        claims: Where messages found by reconciliation are claimed.
        connections: Open connections of other connectors, by connector id, for steps
            that use their actions.
        settle: Seconds a lookup right after an unknown outcome waits before looking
            again (``RECONCILE_SETTLE``).
    """

    def __init__(
        self,
        connection: Connection,
        *,
        claims: Claims | None = None,
        settle: float = RECONCILE_SETTLE,
        connections: Mapping[str, Connection] | None = None,
    ) -> None:
        self.connection = connection
        self.connections = {**(connections or {}), connection.connector.id: connection}
        self.claims: Claims = claims or LocalClaims()
        self.settle = settle
        # Compiled once per action: every call of a 10,000-item step validates with it.
        self._compiled: dict[str, CompiledAction] = {}

    def _connection(self, uses: str) -> Connection:
        connector_id, sep, _ = uses.partition("/")
        connection = self.connections.get(connector_id) if sep else None
        if connection is None:
            return self.connection  # its own lookup says what is wrong with the id
        return connection

    def _action(self, uses: str) -> CompiledAction:
        compiled = self._compiled.get(uses)
        if compiled is None:
            compiled = self._compiled[uses] = compile_action(self._connection(uses).action(uses))
        return compiled

    async def run(
        self,
        request: CallRequest,
        *,
        prior: Prior | None = None,
        on_send: Callable[[Any, float], None] | None = None,
        on_page_item: Callable[[], None] | None = None,
    ) -> Outcome:
        """
        Run one call.

        Args:
            request: The call.
            prior: What an earlier attempt of the same call left, if anything.
            on_send: Called with the journaled inputs and the start time before each
                send attempt leaves; it must record them durably.
            on_page_item: Called for each item of a paging call.

        Returns:
            The outcome. Twilio refusing the call, or invalid inputs, is a *failed*
            outcome: trying again would not change it.
        """
        connector_id, _, action_id = request.uses.partition("/")
        if connector_id == BUILTIN_CONNECTOR:
            return self._builtin(action_id, request)
        try:
            action = self._action(request.uses)
            clean = action.validate(request.inputs)
        except ConnectorError as exc:
            return Outcome(
                "failed",
                error=str(exc),
                error_code=_code(exc),
                inputs=_json_inputs(request.inputs),
                exception=exc,
            )
        shown = to_json(action.masked(clean))
        if prior is not None and prior.state == "succeeded" and not request.repeat:
            if prior.inputs is not None and prior.inputs != shown:
                return Outcome(
                    "failed",
                    error="this item's inputs changed since the run started; not resent",
                    inputs=shown,
                )
            return Outcome(
                "succeeded", prior.output, reconciled=prior.reconciled, resumed=True, inputs=shown
            )
        if action.spec.sends_message:
            return await self._send(request, clean, shown, prior, on_send)
        try:
            connection = self._connection(request.uses)
            if request.paginate:
                collected = []
                async for entry in connection.paginate(
                    request.uses, clean, max_items=request.max_items
                ):
                    collected.append(to_json(entry))
                    if on_page_item is not None:
                        on_page_item()
                return Outcome("succeeded", collected, inputs=shown)
            output = to_json(await connection.call(request.uses, clean))
        except ConnectorError as exc:
            return _refused(exc, shown, connection)
        return Outcome("succeeded", output, inputs=shown)

    def _builtin(self, action_id: str, request: CallRequest) -> Outcome:
        inputs = request.inputs if isinstance(request.inputs, Mapping) else {}
        shown = _json_inputs(inputs)
        # Inputs of built-ins can be large (a whole export); the journal keeps a summary.
        summary = {k: (f"<{len(v)} items>" if isinstance(v, list) else v) for k, v in shown.items()}
        builtin = BUILTINS.get(action_id)
        if builtin is None:
            return Outcome("failed", error=f"no built-in action {action_id!r}", inputs=summary)
        problems = builtin.check(inputs)
        if problems:
            return Outcome("failed", error="; ".join(problems), inputs=summary)
        try:
            output = builtin.run(inputs, request.base_dir)
        except (OSError, TypeError, ValueError) as exc:
            return Outcome("failed", error=str(exc), inputs=summary)
        return Outcome("succeeded", output, inputs=summary)

    async def _send(
        self,
        request: CallRequest,
        clean: Mapping[str, Any],
        shown: Any,
        prior: Prior | None,
        on_send: Callable[[Any, float], None] | None,
    ) -> Outcome:
        if prior is not None and prior.state == "started":
            # An earlier attempt started this send and never learnt its outcome.
            if prior.inputs is not None and prior.inputs != shown:
                return Outcome(
                    "failed",
                    error="this item's inputs changed since its send started; not resent",
                    inputs=shown,
                )
            try:
                found = await self._reconcile(
                    request, clean, prior.started or time.time(), settle=0.0
                )
            except ConnectorError as exc:
                return _lookup_failed(exc, shown)
            if found is not None:
                return Outcome("succeeded", found, reconciled=True, inputs=shown)
        for _ in range(MAX_UNKNOWN_ATTEMPTS):
            started = time.time()
            if on_send is not None:
                on_send(shown, started)
            try:
                output = to_json(await self._connection(request.uses).call(request.uses, clean))
            except MessageMayHaveBeenSentError:
                try:
                    found = await self._reconcile(request, clean, started, settle=self.settle)
                except ConnectorError as exc:
                    return _lookup_failed(exc, shown)
                if found is None:
                    continue  # not sent: trying again cannot duplicate it
                return Outcome("succeeded", found, reconciled=True, inputs=shown)
            except ConnectorError as exc:
                # Twilio refused it, or it never left: nothing was sent.
                return _refused(exc, shown, self._connection(request.uses))
            if isinstance(output, Mapping) and isinstance(output.get("sid"), str):
                await self.claims.claim(output["sid"], request.identity)
            return Outcome("succeeded", output, inputs=shown)
        return Outcome(
            "failed",
            error=f"the outcome of the send stayed unknown after {MAX_UNKNOWN_ATTEMPTS} attempts",
            inputs=shown,
            unresolved=True,
        )

    async def _reconcile(
        self, request: CallRequest, clean: Mapping[str, Any], started: float, *, settle: float
    ) -> Any:
        def claim(sid: str) -> Awaitable[bool]:
            return self.claims.claim(sid, request.identity)

        connection = self._connection(request.uses)
        return await find_sent_message(connection, clean, started, claim=claim, settle=settle)


def _lookup_failed(exc: ConnectorError, shown: Any) -> Outcome:
    # Unresolved: the send stays "started", so the next attempt looks the message up
    # again before any resend; nothing is sent while its outcome is unknown.
    return Outcome(
        "failed",
        error=f"the outcome of the send is unknown and looking it up failed: {exc}",
        error_code=_code(exc),
        inputs=shown,
        unresolved=True,
        exception=exc,
    )
