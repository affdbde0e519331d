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
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import attrs

from .._connection import Connection
from .._convert import field_value, to_json_data
from .._pacing import validate_pool
from .._replies import InboxCursor, ReplySettings, list_inbound, opted_out_before
from .._retry import throughput_error
from .._validation import CompiledAction, compile_action
from ..errors import (
    AuthenticationError,
    ConnectorError,
    MessageMayHaveBeenSentError,
    OptedOutError,
    SkippedError,
    TwilioAPIError,
)
from ._builtins import BUILTIN_CONNECTOR, BUILTINS, target_path
from ._confine import confine
from ._interpreter import Outcome
from ._journal import digest
from ._replies import Looked, ReplyWait


#: Paged items handed to a page sink at a time.
_PAGE_BATCH = 500


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
        """Credit *sid*, found by a lookup, to *identity* unless another identity has it."""
        ...

    async def record(self, sid: str, identity: str) -> None:
        """*identity*'s send just created *sid*: no lookup may credit it to another."""
        ...


class LocalClaims:
    """
    Claims held in this process: enough for one runner, or for one worker.

    A lookup only considers messages created after its attempt started (less
    ``RECONCILE_SKEW``), so claims older than *keep* seconds are forgotten: memory
    follows the send rate, not the number of messages ever sent.

    Args:
        owners: Messages already credited (SID -> identity).
        keep: Seconds a claim is kept.
    """

    def __init__(self, owners: Mapping[str, str] | None = None, *, keep: float = 3600.0) -> None:
        now = time.monotonic()
        self._owners: dict[str, tuple[str, float]] = {
            sid: (owner, now) for sid, owner in (owners or {}).items()
        }
        self._keep = keep

    async def claim(self, sid: str, identity: str) -> bool:
        """Credit *sid* to *identity* unless another identity has it."""
        self._forget_old()
        owner, _ = self._owners.setdefault(sid, (identity, time.monotonic()))
        return owner == identity

    async def record(self, sid: str, identity: str) -> None:
        """*identity*'s send created *sid*."""
        self._forget_old()
        self._owners.setdefault(sid, (identity, time.monotonic()))

    def _forget_old(self) -> None:
        # Insertion order is age order: drop from the front while too old.
        limit = time.monotonic() - self._keep
        while self._owners:
            sid, (_, since) = next(iter(self._owners.items()))
            if since >= limit:
                return
            del self._owners[sid]


@attrs.frozen
class Prior:
    """
    What an earlier attempt of a call left behind.

    Attributes:
        state: ``started`` (a send's outcome is unknown), ``succeeded`` or ``failed``.
        digest: The digest of the inputs it ran with (``None``: unknown, not compared).
        started: When its send started (POSIX seconds), or any earlier moment.
        output: Its output, when it succeeded.
        reconciled: Whether that output was found by a lookup.
    """

    state: Literal["started", "succeeded", "failed", "skipped"]
    digest: bytes | None = None
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
        confine_paths: The ``path`` input is built from outside data: a built-in may
            not use it outside *base_dir* or the output directory.
        now: The run's clock when the call is made (POSIX seconds): a wait for a reply
            begins then (the wall clock unless given).
        park: The caller parks waits for replies (a workflow's interpreter): a call of a
            reply action only begins its wait and returns it (``Outcome.wait``).
            Otherwise (a task, an operator) the call waits itself, polling for the one
            person until the answer or the timeout, as ``Connection.call`` does.
    """

    uses: str
    inputs: Any
    identity: str
    paginate: bool = False
    max_items: int | None = None
    base_dir: Path = attrs.field(factory=Path)
    repeat: bool = False
    confine_paths: bool = False
    now: float | None = None
    park: bool = False


def _code(exc: BaseException) -> int | None:
    return exc.code if isinstance(exc, TwilioAPIError) else None


def _error(exc: BaseException) -> str:
    """The error in words, with what a throughput error means (``THROUGHPUT_ERRORS``)."""
    entry = throughput_error(_code(exc))
    return f"{exc} ({entry.reason})" if entry is not None else str(exc)


def _failed_in_queue(output: Any) -> tuple[int, str] | None:
    """A message Twilio failed for throughput (30001, 30036, ...): its code and why."""
    if not isinstance(output, Mapping) or output.get("status") not in ("failed", "undelivered"):
        return None
    code = output.get("error_code")
    entry = throughput_error(code if isinstance(code, int) else None)
    if entry is None:
        return None
    return (
        entry.code,
        f"message {output.get('sid')} failed: Twilio error {entry.code}, {entry.reason}",
    )


def _refused(exc: ConnectorError, shown: Any, connection: Connection) -> Outcome:
    """
    The outcome of a call Twilio (or the network) refused, or that was skipped on
    purpose (a send to an opted-out recipient); nothing was sent.
    """
    if isinstance(exc, SkippedError):
        return Outcome(
            "skipped",
            error=exc.reason,
            error_code=exc.code if isinstance(exc, OptedOutError) else None,
            inputs=shown,
        )
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
    return Outcome("failed", error=_error(exc), error_code=_code(exc), inputs=shown, exception=exc)


def _json_inputs(inputs: Any) -> Any:
    try:
        return to_json_data(inputs)
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
        inputs: The send's validated inputs (``to``, ``from``, ``body``); ``from`` may
            be a pool (a list), and then a match may come from any of its senders.
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
    sender = inputs.get("from")
    # A pool: the message may have gone from any of its senders.
    pool = set(sender) if isinstance(sender, list | tuple) else None
    if sender and pool is None:
        query["From"] = sender
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
                if pool is not None and field_value(message, "from") not in pool:
                    continue
                if field_value(message, "body") == inputs.get("body") and await claim(sid):
                    return to_json_data(message)
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
        on_send: Callable[[Any, float], Awaitable[None]] | None = None,
        on_page: Callable[[Sequence[Any]], None] | None = None,
    ) -> Outcome:
        """
        Run one call.

        Args:
            request: The call.
            prior: What an earlier attempt of the same call left, if anything.
            on_send: Awaited with the journaled inputs and the start time before each
                send attempt leaves; it must record them durably.
            on_page: Takes each page's items of a paging call as it arrives; the
                outcome's output is then their count instead of every item.

        Returns:
            The outcome. Twilio refusing the call, or invalid inputs, is a *failed*
            outcome: trying again would not change it. A send to a recipient the
            connection's consent ledger says opted out (or that Twilio refused with
            21610, with a ledger) is *skipped*, with the reason as its error.
        """
        connector_id, _, action_id = request.uses.partition("/")
        if connector_id == BUILTIN_CONNECTOR:
            return self._builtin(action_id, request)
        try:
            action = self._action(request.uses)
            clean = validate_pool(action.spec, action.validate, request.inputs)
        except ConnectorError as exc:
            return Outcome(
                "failed",
                error=str(exc),
                error_code=_code(exc),
                inputs=_json_inputs(request.inputs),
                exception=exc,
            )
        shown = to_json_data(action.masked(clean))
        if prior is not None and prior.state == "succeeded" and not request.repeat:
            if prior.digest is not None and prior.digest != digest(shown):
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
        if action.spec.kind == "reply" and request.park:
            return await self._begin_wait(request, action, clean, shown, prior, on_send)
        path = clean.get("path") if action.spec.kind == "media" else None
        if path and not (os.path.isabs(path) or path.startswith("~")):
            # As built-ins do: a relative path is the workflow's directory's.
            clean = {**clean, "path": os.path.join(request.base_dir, path)}
        try:
            connection = self._connection(request.uses)
            if request.paginate:
                return await self._pages(connection, request, clean, shown, on_page)
            output = await connection.call_validated(request.uses, clean, as_data=True)
        except ConnectorError as exc:
            return _refused(exc, shown, connection)
        failed = _failed_in_queue(output)
        if failed is not None:
            # Reading a message that Twilio failed for throughput: the item fails, saying why.
            return Outcome("failed", output, error=failed[1], error_code=failed[0], inputs=shown)
        return Outcome("succeeded", output, inputs=shown)

    async def _pages(
        self,
        connection: Connection,
        request: CallRequest,
        clean: Mapping[str, Any],
        shown: Any,
        on_page: Callable[[Sequence[Any]], None] | None,
    ) -> Outcome:
        collected: list[Any] = []
        count = 0
        async for entry in connection.paginate(request.uses, clean, max_items=request.max_items):
            collected.append(to_json_data(entry))
            count += 1
            # Handed over a page's worth at a time, so memory does not grow with pages.
            if on_page is not None and len(collected) >= _PAGE_BATCH:
                on_page(collected)
                collected = []
        if on_page is None:
            return Outcome("succeeded", collected, inputs=shown)
        if collected:
            on_page(collected)
        return Outcome("succeeded", {"count": count}, inputs=shown)

    async def _begin_wait(
        self,
        request: CallRequest,
        action: CompiledAction,
        clean: Mapping[str, Any],
        shown: Any,
        prior: Prior | None,
        on_send: Callable[[Any, float], Awaitable[None]] | None,
    ) -> Outcome:
        """
        Begin an item's wait for a reply: the outcome carries the wait, which the
        interpreter parks. Its start is journaled (through *on_send*) before the
        interpreter hears of it, so a resumed run keeps it: the timeout does not start
        again, and what came meanwhile is still found.
        """
        try:
            settings = ReplySettings.from_inputs(action.spec.id, clean)
        except ConnectorError as exc:
            return Outcome("failed", error=str(exc), inputs=shown, exception=exc)
        connection = self._connection(request.uses)
        fields = _reply_fields(connection, action)
        # Someone who opted out cannot answer: the wait ends at its first look (which
        # finds their STOP, if that came after `after`).
        opted_out = await opted_out_before(connection.ledger, settings) is not None
        if prior is not None and prior.state == "started" and prior.started is not None:
            if prior.digest is not None and prior.digest != digest(shown):
                return Outcome(
                    "failed",
                    error="this item's inputs changed since its wait began; not waited for",
                    inputs=shown,
                )
            wait = ReplyWait(settings, prior.started, fields, opted_out)
            return Outcome("succeeded", inputs=shown, wait=wait)
        started = request.now if request.now is not None else time.time()
        if on_send is not None:
            await on_send(shown, started)
        wait = ReplyWait(settings, started, fields, opted_out)
        return Outcome("succeeded", inputs=shown, wait=wait)

    async def look(
        self,
        uses: str,
        ours: frozenset[str],
        cursor: InboxCursor,
        *,
        limit: int | None = None,
    ) -> Looked:
        """
        One look at the incoming messages for a step of reply action *uses*: one list
        for every item waiting in it, whose opt-outs and opt-ins go to the connection's
        consent ledger.

        Args:
            uses: The reply action (``twilio/wait_for_reply``).
            ours: The numbers and Messaging Services the step's waits listen on.
            cursor: Where the step's previous look got to.
            limit: Hand over at most this many messages (a Temporal payload's bound).

        Returns:
            The new messages, or why the look failed (a refusal of the credentials is
            fatal: every look would fail).
        """
        connection = self._connection(uses)
        try:
            action = self._action(uses).spec
            page = await list_inbound(
                connection, action, ours=ours, cursor=cursor, limit=limit, ledger=connection.ledger
            )
        except ConnectorError as exc:
            refused = _refused(exc, None, connection)
            error = f"looking for replies failed: {refused.error}"
            return Looked(cursor=cursor, error=error, fatal=error if refused.fatal else None)
        return Looked(page.messages, page.cursor, page.more)

    def _builtin(self, action_id: str, request: CallRequest) -> Outcome:
        inputs = request.inputs if isinstance(request.inputs, Mapping) else {}
        # Inputs of built-ins can be large (a whole export, read from the journal as it
        # is written): the journal keeps a summary, never the items.
        summary = {
            k: (f"<{len(v)} items>" if isinstance(v, list) else _json_inputs(v))
            for k, v in inputs.items()
        }
        builtin = BUILTINS.get(action_id)
        if builtin is None:
            return Outcome("failed", error=f"no built-in action {action_id!r}", inputs=summary)
        problems = builtin.check(inputs)
        if problems:
            return Outcome("failed", error="; ".join(problems), inputs=summary)
        try:
            if request.confine_paths and "path" in inputs:
                confine(target_path(inputs["path"], request.base_dir), request.base_dir)
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
        on_send: Callable[[Any, float], Awaitable[None]] | None,
    ) -> Outcome:
        if prior is not None and prior.state == "started":
            # An earlier attempt started this send and never learnt its outcome.
            if prior.digest is not None and prior.digest != digest(shown):
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
                await on_send(shown, started)
            try:
                output = await self._connection(request.uses).call_validated(
                    request.uses, clean, as_data=True
                )
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
                await self.claims.record(output["sid"], request.identity)
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


def _reply_fields(connection: Connection, action: CompiledAction) -> tuple[str, ...]:
    """The fields of the definition a reply action's ``reply`` output follows."""
    connector = connection.connector
    returns = connector.definitions.get(action.spec.returns or "")
    for field in returns.fields if returns is not None else ():
        nested = connector.definitions.get(field.ref or "")
        if field.path == "reply" and nested is not None:
            return tuple(f.path for f in nested.fields)
    return ()


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
