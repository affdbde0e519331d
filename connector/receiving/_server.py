# SPDX-License-Identifier: MIT
"""
The listener: an aiohttp server that takes Twilio's signed webhooks, journals each
event before answering, and runs the workflows it triggers.

Journal first: an accepted event and the runs it starts are committed to the run
journal before the 200 goes out, so a crash after the answer loses nothing, and on
restart the pending runs start (or resume, under the run ids reserved for them).
Retried deliveries share the event's key (and ``I-Twilio-Idempotency-Token``), so they
never start a second run. Runs execute concurrently, at most ``max_runs`` at a time;
events beyond that wait in the journal, not in memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import attrs
from aiohttp import web

from .._connection import Connection, default_connector
from .._manifest import ConnectorSpec
from .._twilio import keyword_of
from ..consent import ConsentLedger, record_inbound
from ..workflow import (
    DELIVERY_LEASE,
    ExpressionError,
    Journal,
    RunError,
    RunResult,
    Workflow,
    WorkflowError,
    check_workflow,
    new_run_id,
    resolve_inputs,
    run_workflow,
    trigger_payload,
)
from ._limits import ConnectionGuard, ServerLimits
from ._poller import MessagePoller
from ._triggers import (
    MESSAGE_RECEIVED,
    MESSAGE_STATUS_CHANGED,
    event_key,
    inbound_event,
    matches,
    render_reply,
    status_event,
    twiml,
)
from ._verify import SignatureVerifier


__all__ = ["MESSAGES_PATH", "STATUS_PATH", "Ingested", "Listener"]

log = logging.getLogger("connector.receiving")

#: Where Twilio's incoming-message webhook is posted (relative to the public URL).
MESSAGES_PATH = "/messages"
#: Where status callbacks are posted (relative to the public URL).
STATUS_PATH = "/status"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


@attrs.frozen
class Ingested:
    """
    What became of one received event.

    Attributes:
        new: ``False`` for a retried or replayed delivery (nothing was started).
        key: The event's deduplication key.
        run_ids: The runs it starts (empty for a duplicate or when no workflow matches).
        response: The TwiML answered to Twilio.
    """

    new: bool
    key: str
    run_ids: tuple[str, ...]
    response: str


class Listener:
    """
    Receives Twilio's webhooks and runs the workflows whose ``on:`` they match.

    Start the HTTP side with :meth:`start` (events are then journaled), and the runs
    with :meth:`begin` once a connection is open; stop both with :meth:`stop`.

    Args:
        workflows: Workflows with an ``on:`` trigger.
        journal: The run journal (events, runs and poll cursors go there).
        auth_token: The account's auth token: every request must be signed with it
            (or with *shared_key*). Required: there is no unsigned mode.
        public_url: The URL Twilio calls, up to the listener's root, when it differs
            from the bound address (behind a proxy or TLS terminator).
        shared_key: A webhook shared key, also accepted as a signing key.
        connector: The connector whose webhooks arrive (the shipped Twilio one by default).
        connectors: Every connector the workflows' steps may use, by id (Twilio's alone
            unless given); pass their connections to :meth:`begin`.
        max_runs: How many runs execute at once.
        env: What ``env`` reads in the workflows' expressions; the listener adds
            ``TWILIO_CONNECTOR_PUBLIC_URL`` (its public URL, for ``StatusCallback``).
        lease: Seconds a claim on a delivery lasts unless renewed: another listener on
            the same journal takes over the runs of one that stopped renewing (one on
            this machine whose process is gone, at once).
        keep_results: How many finished runs :attr:`results` keeps (the most recent),
            so a long-running listener's memory stays bounded; the journal has them all.
        limits: Timeouts for a request's headers and body, and the most connections
            kept open (:class:`ServerLimits`; its defaults unless given).
        consent: Where the opt-outs and opt-ins of incoming keywords (STOP, START...)
            are recorded, as they arrive and before any run starts; the journal's
            ledger unless given. Give the runs' connection the same one.

    Raises:
        ValueError: No auth token, a bad public URL, or *max_runs* or *keep_results*
            below 1.
        WorkflowError: A workflow has no trigger, fails its static checks, or has a
            required input without a default.
    """

    def __init__(
        self,
        workflows: Sequence[Workflow],
        journal: Journal,
        *,
        auth_token: str,
        public_url: str | None = None,
        shared_key: str | None = None,
        connector: ConnectorSpec | None = None,
        connectors: Mapping[str, ConnectorSpec] | None = None,
        max_runs: int = 10,
        env: Mapping[str, str] | None = None,
        keep_results: int = 100,
        lease: float = DELIVERY_LEASE,
        limits: ServerLimits | None = None,
        consent: ConsentLedger | None = None,
    ) -> None:
        if max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        if keep_results < 1:
            raise ValueError("keep_results must be at least 1")
        self.connector = connector or default_connector()
        specs = {self.connector.id: self.connector, **(connectors or {})}
        self.journal = journal
        #: The consent ledger incoming keywords are recorded in.
        self.consent: ConsentLedger = consent if consent is not None else journal.consent
        # Checked now, so a listener without a key never binds a socket.
        self._keys = (auth_token, shared_key)
        SignatureVerifier(auth_token, public_url or "http://127.0.0.1", shared_key)
        self._public_url = public_url
        self.verifier: SignatureVerifier | None = None
        self.max_runs = max_runs
        self.lease = lease
        self.env = dict(env or {})
        self.workflows: dict[str, Workflow] = {}
        self._inputs: dict[str, dict[str, Any]] = {}
        problems = []
        for workflow in workflows:
            if workflow.trigger is None:
                problems.append(
                    workflow.problem("has no trigger (on:); run it with `twilio-connector run`", ())
                )
                continue
            problems.extend(check_workflow(workflow, specs))
            try:
                inputs = resolve_inputs(workflow, {})
            except WorkflowError as exc:
                problems.extend(exc.problems)
                continue
            # The resolved path names the workflow in the journal, so a restart from
            # another directory still finds its pending runs.
            key = str(Path(workflow.file).resolve())
            self.workflows[key] = workflow
            self._inputs[key] = inputs
        if problems:
            raise WorkflowError(problems)
        self.limits = limits or ServerLimits()
        self.guard = ConnectionGuard(self.limits)
        """Counts the connections closed for being slow or too many."""
        self.app = web.Application(
            middlewares=[self.guard.middleware], client_max_size=self.limits.max_body
        )
        self.app.router.add_post(MESSAGES_PATH, self._on_message)
        self.app.router.add_post(STATUS_PATH, self._on_status)
        #: The most recent finished runs, oldest first (at most *keep_results*).
        self.results: collections.deque[RunResult] = collections.deque(maxlen=keep_results)
        self.refused = 0
        self.duplicates = 0
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._url: str | None = None
        self._connection: Connection | None = None
        self._connections: Mapping[str, Connection] = {}
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.pollers: list[MessagePoller] = []

    @property
    def url(self) -> str:
        """
        Where the listener is bound, e.g. ``http://127.0.0.1:8080`` (no trailing slash).

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        if self._url is None:
            raise RuntimeError("the listener is not running")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """
        Bind the socket and accept webhooks (they are journaled; runs wait for
        :meth:`begin`).

        Args:
            host: Interface to bind.
            port: TCP port; 0 picks a free one.
        """
        # aiohttp's keep-alive timer also closes a connection whose headers are not in.
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.limits.header_timeout,
        )
        await runner.setup()
        assert runner.server is not None
        try:
            server = await asyncio.get_running_loop().create_server(
                self.guard.factory(runner.server), host, port
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._server = runner, server
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        self._url = f"http://{bound_host}:{bound_port}"
        auth_token, shared_key = self._keys
        self.verifier = SignatureVerifier(auth_token, self._public_url or self._url, shared_key)
        self.env["TWILIO_CONNECTOR_PUBLIC_URL"] = self.verifier.public_url

    @property
    def public_url(self) -> str:
        """
        The URL Twilio is to call (the listener's root): ``--public-url``, or the bound
        address. Point the incoming-message webhook at ``public_url + "/messages"`` and
        ``StatusCallback`` at ``public_url + "/status"``.

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        if self.verifier is None:
            raise RuntimeError("the listener is not running")
        return self.verifier.public_url

    async def begin(
        self,
        connection: Connection,
        *,
        poll: bool = True,
        connections: Mapping[str, Connection] | None = None,
    ) -> None:
        """
        Start running triggered workflows (pending ones from an earlier process first)
        and, with *poll*, the pollers of triggers that have ``poll_interval``.

        Args:
            connection: The open connection every run shares.
            poll: Whether to start the polling loops.
            connections: Open connections of the other connectors the workflows use.
        """
        self._connection = connection
        self._connections = dict(connections or {})
        if connection.ledger is None:
            connection.ledger = self.consent
        self.pollers = [
            MessagePoller(
                connection, self.journal, workflow.trigger, self.ingest, consent=self.consent
            )
            for workflow in self.workflows.values()
            if workflow.trigger is not None and workflow.trigger.poll_interval is not None
        ]
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._dispatch(), name="listener-dispatch"))
        if poll:
            for poller in self.pollers:
                self._tasks.append(loop.create_task(poller.run(), name="listener-poll"))

    async def stop(self) -> None:
        """Stop accepting webhooks and cancel runs in flight (they resume on restart)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()  # accept nothing more
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if server is not None:
            await server.wait_closed()
        tasks = [*self._tasks, *self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._running.clear()

    async def drain(self) -> None:
        """
        Wait until no run is in flight and none is pending.

        Raises:
            RuntimeError: Before :meth:`begin`.
        """
        if not self._tasks:
            raise RuntimeError("runs have not begun; call begin() first")
        while True:
            dispatcher = self._tasks[0]
            if dispatcher.done():
                # It never ends by itself; surface why it stopped instead of waiting forever.
                dispatcher.result()
                raise RuntimeError("the listener has stopped")
            if self._running:
                await asyncio.gather(*list(self._running.values()), return_exceptions=True)
                continue
            if not self._pending(1):
                return
            self._wake.set()
            # Let the dispatcher take the pending runs.
            await asyncio.sleep(0)

    # -- receiving ------------------------------------------------------------------

    def ingest(self, kind: str, raw: Mapping[str, Any], token: str | None = None) -> Ingested:
        """
        Journal an event and the runs it starts; a duplicate starts nothing.

        Used by the webhook handlers (after the signature check) and by the pollers.

        Args:
            kind: ``twilio/message_received`` or ``twilio/message_status_changed``.
            raw: The event with the payload definition's field paths.
            token: Twilio's ``I-Twilio-Idempotency-Token``, when sent.

        Returns:
            What became of it, with the TwiML to answer.
        """
        event = trigger_payload(self.connector, kind, raw)
        key = event_key(kind, event)
        chosen = [
            (file, workflow)
            for file, workflow in self.workflows.items()
            if workflow.trigger is not None and matches(workflow.trigger, kind, event)
        ]
        replies = []
        # Twilio answers STOP, START and HELP itself: no reply of ours goes with them.
        keyword = kind == MESSAGE_RECEIVED and (
            keyword_of(str(event.get("Body") or "")) is not None or bool(event.get("OptOutType"))
        )
        for file, workflow in [] if keyword else chosen:
            try:
                reply = render_reply(workflow, event, self._inputs[file], self.env)
            except ExpressionError as exc:
                log.error("%s: reply: %s", workflow.file, exc)
                continue
            if reply is not None:
                replies.append(reply)
        # Run ids are reserved now, so a restart resumes each run under its own id.
        deliveries = {file: f"{new_run_id()}{secrets.token_hex(2)}" for file, _ in chosen}
        response = twiml(replies)
        new, answered = self.journal.record_event(key, token, kind, event, deliveries, response)
        if not new:
            self.duplicates += 1
            log.info("duplicate %s %s (already received; no new run)", kind, key)
            return Ingested(False, key, (), answered or response)
        log.info("accepted %s %s: %d run(s)", kind, key, len(deliveries))
        self._wake.set()
        return Ingested(True, key, tuple(deliveries.values()), response)

    async def _on_message(self, request: web.Request) -> web.Response:
        return await self._receive(request, MESSAGE_RECEIVED)

    async def _on_status(self, request: web.Request) -> web.Response:
        return await self._receive(request, MESSAGE_STATUS_CHANGED)

    async def _receive(self, request: web.Request, kind: str) -> web.Response:
        body = await request.read()
        params: list[tuple[str, str]] | None = None
        if "bodySHA256" not in request.query:
            try:
                params = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                params = None
        assert self.verifier is not None  # set by start(), before any request
        reason = self.verifier.check(request.raw_path, request.headers, body, params)
        if reason is not None:
            self.refused += 1
            log.warning(
                "refused %s %s from %s: %s", request.method, request.path, request.remote, reason
            )
            return web.Response(status=403, text="invalid or missing X-Twilio-Signature\n")
        if params is None:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
            if not isinstance(decoded, dict):
                return web.Response(status=400, text="expected a JSON object\n")
            params = [(str(k), "" if v is None else str(v)) for k, v in decoded.items()]
        fields = dict(params)
        event = inbound_event(fields) if kind == MESSAGE_RECEIVED else status_event(fields)
        if not event.get("MessageSid"):
            return web.Response(status=400, text="MessageSid is required\n")
        if kind == MESSAGE_RECEIVED:
            try:
                await self._record_consent(event)
            except Exception:
                # Not answered 200: Twilio delivers it again, and it is recorded then.
                log.exception("recording the consent of %s failed", event.get("MessageSid"))
                return web.Response(status=503, text="consent ledger unavailable\n")
        try:
            result = self.ingest(kind, event, request.headers.get(IDEMPOTENCY_HEADER))
        except (TypeError, ValueError) as exc:
            # Signed but malformed (a count that is not a number): a 5xx would only make
            # Twilio retry the same bytes.
            log.warning("malformed %s %s: %s", kind, event.get("MessageSid"), exc)
            return web.Response(status=400, text=f"malformed parameters: {exc}\n")
        return web.Response(text=result.response, content_type="application/xml")

    async def _record_consent(self, event: Mapping[str, Any]) -> None:
        """Record the opt-out or opt-in an incoming keyword makes, before any run starts."""
        state = await record_inbound(
            self.consent,
            to=str(event.get("To") or ""),
            from_=str(event.get("From") or ""),
            body=event.get("Body"),
            messaging_service_sid=event.get("MessagingServiceSid") or None,
            opt_out_type=event.get("OptOutType") or None,
        )
        if state is not None:
            log.info("%s %s %s (consent ledger)", event.get("From"), state, event.get("To"))

    # -- running ----------------------------------------------------------------------

    def _pending(self, limit: int) -> list[Any]:
        return self.journal.pending_deliveries(
            limit, workflows=list(self.workflows), exclude=list(self._running), lease=self.lease
        )

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Cleared before looking, so a wake-up during the look is not lost.
            self._wake.clear()
            self.journal.renew_claims(list(self._running))
            for delivery in self._pending(self.max_runs - len(self._running)):
                # Claimed in SQL: another listener on this journal never starts it too.
                if not self.journal.claim_delivery(delivery.run_id, lease=self.lease):
                    continue
                self._running[delivery.run_id] = loop.create_task(
                    self._run(delivery.workflow, delivery.run_id, delivery.payload),
                    name=f"listener-run-{delivery.run_id}",
                )
            # Wake now and then even if nothing happens here: to renew this listener's
            # claims, and to take over what a listener that died had claimed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.lease / 3)

    async def _run(self, file: str, run_id: str, event: Mapping[str, Any]) -> None:
        workflow = self.workflows[file]
        assert self._connection is not None
        try:
            result = await run_workflow(
                workflow,
                {},
                self._connection,
                self.journal,
                run_id=run_id,
                connections=self._connections,
                env=self.env,
                trigger=event,
            )
        except (RunError, WorkflowError) as exc:
            log.error("run %s of %s cannot run: %s", run_id, workflow.file, exc)
            self.journal.delivery_done(run_id)
        except Exception:
            # Not retried automatically, or the dispatcher would spin on it; the event
            # stays in the journal.
            log.exception("run %s of %s crashed", run_id, workflow.file)
            self.journal.delivery_done(run_id)
        else:
            self.journal.delivery_done(run_id)
            self.results.append(result)
            log.info("run %s of %s %s", run_id, workflow.name, result.status)
        finally:
            self._running.pop(run_id, None)
            self._wake.set()
