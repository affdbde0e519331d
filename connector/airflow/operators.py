# SPDX-License-Identifier: MIT
"""
Operators: any action of an installed connector, and a send that waits for delivery
in the triggerer.

Both run the call through :class:`~connector.workflow.ActionRunner`, as the local
runner and Temporal's activities do: inputs validated against the action's schema, the
output pushed to XCom in its JSON form, and a send that is never made twice. A retry
of a task whose earlier try may have sent the message first looks for it (the
recipient's messages since the first try began) and resumes with the one it finds.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from ..plugin import TWILIO, installed
from ..workflow import ActionRunner, CallRequest, Outcome, Prior
from ._polling import FIRST_POLL, MAX_POLL, WaitFor, outcome_of, wait_for_status
from .hooks import TwilioHook
from .triggers import TwilioMessageStatusTrigger


if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )

    from .. import Connection
else:
    try:
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowSkipException,
        )
    except ImportError:  # Airflow 3.1 keeps them in core
        from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException

__all__ = [
    "TwilioActionOperator",
    "TwilioError",
    "TwilioMessageFailedError",
    "TwilioSendMessageOperator",
]

#: The task state store's key for a send's progress (Airflow 3.3+).
SEND_STATE_KEY = "twilio_send"


class TwilioError(AirflowException):
    """
    An action failed: Twilio refused it, it could not be made, or a wait ran out.

    Attributes:
        code: Twilio's error code, when it gave one.
        sid: The message concerned, if any.
        status: The message's last known status, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        sid: str | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.sid = sid
        self.status = status


class TwilioMessageFailedError(TwilioError, AirflowFailException):
    """
    The message ended ``failed``, ``undelivered`` or ``canceled``. The task fails
    without retrying: a retry would not send it again, and its fate is final.
    """


def _identity(context: Context) -> str:
    ti = context["ti"]
    return (
        f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index if ti.map_index is not None else -1}"
    )


def _state_store(context: Context) -> Any:
    # Airflow 3.3+: key/value state of this task instance that outlives its tries.
    return context.get("task_state_store")


def _first_try_start(context: Context) -> float:
    """No try of this task instance began before this moment (POSIX seconds)."""
    dag_run = context["dag_run"]
    return (dag_run.start_date or dag_run.run_after).timestamp()


class TwilioActionOperator(BaseOperator):
    """
    Run one action of an installed connector and push its output to XCom as JSON.

    ``action`` is any action id ``twilio-connector actions`` lists:
    ``send_text_message`` (Twilio's), or ``acme/page_size`` (another installed
    connector's). ``inputs`` is templated with Jinja, so ``.partial(...).expand(inputs=
    [...])`` maps it over recipients. Every mapped instance opens its own connection:
    with the connection's ``redis_url`` set they all share one budget; without it each
    worker process holds a budget of its own.

    Args:
        action: The action id.
        inputs: Its inputs, as ``twilio-connector describe ACTION`` shows them.
        twilio_conn_id: The Airflow connection; ``twilio_default`` for Twilio's
            actions, ``<connector>_default`` for another connector's.
        paginate: For a paging action: follow next links and return every item.
        max_items: Stop paging after this many items.

    A send to a recipient the connection's consent ledger says opted out is not made:
    the task ends *skipped* (``AirflowSkipException``), with the reason in its log.

    Raises:
        TwilioError: The action failed (``code`` is Twilio's error code).
        AirflowSkipException: A send was skipped: the recipient opted out.
    """

    template_fields: Sequence[str] = ("action", "inputs", "twilio_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"inputs": "json"}
    ui_color = "#f22f46"

    def __init__(
        self,
        *,
        action: str,
        inputs: Mapping[str, Any] | None = None,
        twilio_conn_id: str | None = None,
        paginate: bool = False,
        max_items: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.inputs = dict(inputs or {})
        self.twilio_conn_id = twilio_conn_id
        self.paginate = paginate
        self.max_items = max_items

    def _connector_id(self) -> str:
        connector_id, sep, _ = self.action.partition("/")
        return connector_id if sep else TWILIO

    def _hook(self) -> TwilioHook:
        connector_id = self._connector_id()
        conn_id = self.twilio_conn_id or (
            TwilioHook.default_conn_name if connector_id == TWILIO else f"{connector_id}_default"
        )
        return TwilioHook(conn_id, connector=connector_id)

    def _call_inputs(self, context: Context) -> dict[str, Any]:
        return dict(self.inputs)

    def _run(self, hook: TwilioHook, context: Context) -> Outcome:
        """Run the call; a send is looked up first when an earlier try may have made it."""
        connector, action = installed().action(self.action)
        request = CallRequest(
            f"{connector.id}/{action.id}",
            self._call_inputs(context),
            identity=_identity(context),
            paginate=self.paginate,
            max_items=self.max_items,
        )
        prior: Prior | None = None
        store: Any = None
        started = time.time()
        if action.sends_message:
            store = _state_store(context)
            prior = self._prior(context, store)
            if prior is not None and prior.started is not None:
                started = prior.started
            elif store is not None and prior is None:
                # Recorded before the send leaves: a later try knows where to look.
                store.set(SEND_STATE_KEY, {"started": started})

        async def run(conn: Connection) -> Outcome:
            return await ActionRunner(conn).run(request, prior=prior)

        outcome: Outcome = hook.get_conn().run(run)
        sid = outcome.output.get("sid") if isinstance(outcome.output, dict) else None
        if outcome.resumed:
            self.log.info("an earlier try sent %s; it is not sent again", sid)
        elif outcome.reconciled:
            self.log.info("found %s, which an earlier try sent; it is not sent again", sid)
        if store is not None and outcome.status == "succeeded" and not outcome.resumed:
            store.set(SEND_STATE_KEY, {"started": started, "output": outcome.output})
        return outcome

    def _prior(self, context: Context, store: Any) -> Prior | None:
        state = store.get(SEND_STATE_KEY) if store is not None else None
        if isinstance(state, dict):
            if state.get("output") is not None:
                return Prior("succeeded", output=state["output"], reconciled=True)
            if isinstance(state.get("started"), int | float):
                return Prior("started", started=float(state["started"]))
        if context["ti"].try_number > 1:
            # XCom is cleared on retry: look for what an earlier try may have sent.
            return Prior("started", started=_first_try_start(context))
        return None

    def _result(self, outcome: Outcome) -> Any:
        if outcome.status == "skipped":
            # Not sent, on purpose (the consent ledger says the recipient opted out):
            # Airflow's "skipped", as a short-circuit leaves a task, never a failure.
            self.log.info("%s skipped: %s", self.action, outcome.error)
            raise AirflowSkipException(f"{self.action} skipped: {outcome.error}")
        if outcome.status != "succeeded":
            raise TwilioError(
                f"{self.action} failed: {outcome.error}",
                code=outcome.error_code,
            )
        return outcome.output

    def execute(self, context: Context) -> Any:
        """Run the action; the return value (its output as JSON) goes to XCom."""
        with self._hook() as hook:
            return self._result(self._run(hook, context))


class TwilioSendMessageOperator(TwilioActionOperator):
    """
    Send a message, then wait in the triggerer (holding no worker slot) until it is
    delivered; fail with Twilio's error code if it ends ``failed`` or ``undelivered``.

    The send is Twilio's ``send_message`` action. The wait is a
    :class:`~connector.airflow.triggers.TwilioMessageStatusTrigger` polling with backoff
    (5, 10, 20, 40, 60, 60 ... seconds by default). A retry never sends the message
    again: it finds the one an earlier try created and waits for it.

    Args:
        to: The recipient (E.164, ``whatsapp:+...``); templated, so it can be mapped:
            ``TwilioSendMessageOperator.partial(body=...).expand(to=[...])``.
        body: The text.
        from_: The sender; or give ``messaging_service_sid``.
        messaging_service_sid: A Messaging Service (``MG...``) instead of a sender.
        media_url: Media URLs (MMS, WhatsApp).
        inputs: Any other input of ``send_message`` (``content_sid``, ``send_at`` ...).
        wait_for: ``delivered`` (the default), ``sent``, or ``None`` to return once
            Twilio accepted the message.
        timeout: How long to wait for the status.
        poll_interval: Seconds before the first status poll (then doubling).
        max_poll_interval: The longest wait between status polls.
        deferrable: Wait in the triggerer; ``False`` waits in the worker. A connection
            with an embedded emulator always waits in the worker (the emulator lives
            only as long as the task).
        twilio_conn_id: The Airflow connection.

    Raises:
        TwilioMessageFailedError: The message failed or was undelivered (``code`` is
            Twilio's 30xxx error code).
        TwilioError: Twilio refused the send (``code``: 21211 for an invalid number
            ...), or the wait timed out.
        AirflowSkipException: The recipient opted out (the connection's consent
            ledger): nothing was sent, and the task is *skipped*.
    """

    template_fields: Sequence[str] = (
        "to",
        "body",
        "from_",
        "messaging_service_sid",
        "media_url",
        "inputs",
        "twilio_conn_id",
    )

    def __init__(
        self,
        *,
        to: str,
        body: str | None = None,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        media_url: Sequence[str] | None = None,
        inputs: Mapping[str, Any] | None = None,
        wait_for: WaitFor | None = "delivered",
        timeout: dt.timedelta | float = dt.timedelta(hours=1),
        poll_interval: float = FIRST_POLL,
        max_poll_interval: float = MAX_POLL,
        deferrable: bool = True,
        twilio_conn_id: str = TwilioHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            action="send_message", inputs=inputs, twilio_conn_id=twilio_conn_id, **kwargs
        )
        if wait_for not in (None, "sent", "delivered"):
            raise ValueError(f"wait_for must be 'delivered', 'sent' or None, not {wait_for!r}")
        self.to = to
        self.body = body
        self.from_ = from_
        self.messaging_service_sid = messaging_service_sid
        self.media_url = list(media_url) if media_url is not None else None
        self.wait_for: WaitFor | None = wait_for
        self.timeout = (
            timeout if isinstance(timeout, dt.timedelta) else dt.timedelta(seconds=timeout)
        )
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.deferrable = deferrable

    def _call_inputs(self, context: Context) -> dict[str, Any]:
        named = {
            "to": self.to,
            "body": self.body,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "media_url": self.media_url,
        }
        return {**self.inputs, **{k: v for k, v in named.items() if v is not None}}

    def execute(self, context: Context) -> Any:
        """Send (or find the earlier try's message), then wait for its final status."""
        with self._hook() as hook:
            message = self._result(self._run(hook, context))
            if self.wait_for is None:
                return message
            ended = outcome_of(message, self.wait_for)
            if ended is not None:
                return self.execute_complete(context, ended)
            if self.deferrable and not hook.settings().emulator:
                self.defer(
                    trigger=TwilioMessageStatusTrigger(
                        message_sid=message["sid"],
                        twilio_conn_id=hook.twilio_conn_id,
                        wait_for=self.wait_for,
                        end_time=time.time() + self.timeout.total_seconds(),
                        poll_interval=self.poll_interval,
                        max_poll_interval=self.max_poll_interval,
                    ),
                    method_name="execute_complete",
                )
            wait_for = self.wait_for

            async def wait(conn: Connection) -> dict[str, Any]:
                return await wait_for_status(
                    conn,
                    message["sid"],
                    wait_for=wait_for,
                    within=self.timeout.total_seconds(),
                    first_poll=self.poll_interval,
                    max_poll=self.max_poll_interval,
                )

            return self.execute_complete(context, hook.get_conn().run(wait))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """
        Resume after the wait: return the message as JSON (to XCom), or fail.

        Raises:
            TwilioMessageFailedError: It failed or was undelivered.
            TwilioError: The wait timed out or polling could not go on.
        """
        sid, status, code = event.get("sid"), event.get("status"), event.get("error_code")
        outcome = event.get("outcome")
        if outcome == "succeeded":
            self.log.info("message %s is %s", sid, status)
            return event["message"]
        if outcome == "failed":
            message = event.get("message") or {}
            reason = f": Twilio error {code}" if code is not None else ""
            if event.get("error_message"):
                reason += f" ({event['error_message']})"
            raise TwilioMessageFailedError(
                f"message {sid} to {message.get('to')} ended {status}{reason}",
                code=code,
                sid=sid,
                status=status,
            )
        raise TwilioError(
            f"waiting for message {sid} failed: {event.get('error')}",
            code=code,
            sid=sid,
            status=status,
        )
