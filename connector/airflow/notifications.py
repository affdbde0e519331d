# SPDX-License-Identifier: MIT
"""
:class:`TwilioNotifier`: an SMS when a task or a DAG run fails (or succeeds, or
anything Airflow calls back on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from ..workflow import ActionRunner, CallRequest, Outcome
from .hooks import TwilioHook


if TYPE_CHECKING:
    from airflow.sdk import Context

    from .. import Connection

__all__ = ["TwilioNotifier", "send_twilio_notification"]

_DEFAULT_BODY = (
    "Airflow: {{ ti.dag_id }}.{{ ti.task_id }} is {{ ti.state }} "
    "(run {{ run_id }}, try {{ ti.try_number }})"
)


class TwilioNotifier(BaseNotifier):
    """
    Text one or more numbers from an Airflow callback::

        BashOperator(
            task_id="load",
            bash_command="...",
            on_failure_callback=TwilioNotifier(
                to="+15551230001", from_="+15005550006", body="{{ ti.task_id }} failed"
            ),
        )

    ``to``, ``body`` and ``from_`` are Jinja templates rendered with the callback's
    context. Each number gets its own send, made as every send of the connector is:
    an unknown outcome is looked up, never blindly sent again. In the triggerer (where
    Airflow awaits notifiers, as for deadline alerts) it sends without blocking.

    Args:
        to: The number, or numbers, to text.
        body: The text; a short line naming the task, its state and the run by default.
        from_: The sender; or give ``messaging_service_sid``.
        messaging_service_sid: A Messaging Service (``MG...``) instead of a sender.
        twilio_conn_id: The Airflow connection.

    A number the connection's consent ledger says opted out is not texted; that is
    logged with the reason, and is no failure.

    Raises:
        RuntimeError: A send failed (after every number was tried).
    """

    template_fields: Sequence[str] = ("to", "body", "from_", "messaging_service_sid")

    def __init__(
        self,
        *,
        to: str | Sequence[str],
        body: str = _DEFAULT_BODY,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        twilio_conn_id: str = TwilioHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.body = body
        self.from_ = from_
        self.messaging_service_sid = messaging_service_sid
        self.twilio_conn_id = twilio_conn_id

    def _requests(self, context: Context) -> list[CallRequest]:
        numbers = [self.to] if isinstance(self.to, str) else list(self.to)
        ti = context.get("ti")
        base = f"notify/{ti.dag_id}/{ti.run_id}/{ti.task_id}" if ti is not None else "notify"
        sender = {"from": self.from_, "messaging_service_sid": self.messaging_service_sid}
        inputs = {"body": self.body, **{k: v for k, v in sender.items() if v is not None}}
        return [
            CallRequest(
                "twilio/send_message", {**inputs, "to": number}, identity=f"{base}/{number}"
            )
            for number in numbers
        ]

    async def _send(self, connection: Connection, requests: list[CallRequest]) -> None:
        runner = ActionRunner(connection)
        outcomes: list[tuple[CallRequest, Outcome]] = [
            (request, await runner.run(request)) for request in requests
        ]
        failed = [
            f"{request.inputs['to']}: {outcome.error}"
            for request, outcome in outcomes
            if outcome.status == "failed"
        ]
        for request, outcome in outcomes:
            if outcome.status == "succeeded":
                self.log.info("texted %s (%s)", request.inputs["to"], outcome.output.get("sid"))
            elif outcome.status == "skipped":
                # An opted-out number: not texted, on purpose; the callback does not fail.
                self.log.info("did not text %s: %s", request.inputs["to"], outcome.error)
        if failed:
            raise RuntimeError("the Twilio notification failed for " + "; ".join(failed))

    def notify(self, context: Context) -> None:
        """Send the texts (synchronously: task callbacks, the DAG processor)."""
        requests = self._requests(context)
        with TwilioHook(self.twilio_conn_id) as hook:

            async def send(conn: Connection) -> None:
                await self._send(conn, requests)

            hook.get_conn().run(send)

    async def async_notify(self, context: Context) -> None:
        """Send the texts without blocking the event loop (the triggerer)."""
        async with TwilioHook(self.twilio_conn_id).shared_connection() as conn:
            await self._send(conn, self._requests(context))


#: The name Airflow's notifiers go by as callbacks (``send_slack_notification`` ...).
send_twilio_notification = TwilioNotifier
