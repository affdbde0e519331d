# SPDX-License-Identifier: MIT
"""
Triggers: waiting for a message's final status in the triggerer, and inbound SMS as
events for Airflow's asset watchers.

Both poll through :meth:`TwilioHook.shared_connection
<connector.airflow.hooks.TwilioHook.shared_connection>`, so every trigger of one Airflow
connection in a triggerer process shares one connection and its rate limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from ..errors import ConnectorError
from ._polling import (
    FIRST_POLL,
    MAX_POLL,
    InboxCursor,
    WaitFor,
    baseline,
    log,
    new_messages,
    wait_for_status,
)
from .hooks import TwilioHook


__all__ = ["TwilioInboundMessageTrigger", "TwilioMessageStatusTrigger"]


class TwilioMessageStatusTrigger(BaseTrigger):
    """
    Wait for a message to reach a final status, polling ``get_message`` with backoff:
    *poll_interval* seconds before the first poll, doubling up to *max_poll_interval*
    (5, 10, 20, 40, 60, 60 ... seconds by default), and once more at the deadline.

    It fires one event, whose payload says how the wait ended (see
    :func:`~connector.airflow._polling.wait_for_status`): ``outcome`` is ``succeeded``,
    ``failed`` (``failed``, ``undelivered`` or ``canceled``, with Twilio's
    ``error_code``), ``timeout`` or ``error``.

    Args:
        message_sid: The message (``SM...``).
        twilio_conn_id: The Airflow connection that sent it.
        wait_for: ``delivered`` (or ``read``), or ``sent`` (or any later status).
        end_time: When to stop waiting (POSIX seconds): a deadline that survives a
            move to another triggerer.
        poll_interval: Seconds before the first poll.
        max_poll_interval: The longest wait between polls.
    """

    def __init__(
        self,
        *,
        message_sid: str,
        twilio_conn_id: str = TwilioHook.default_conn_name,
        wait_for: WaitFor = "delivered",
        end_time: float,
        poll_interval: float = FIRST_POLL,
        max_poll_interval: float = MAX_POLL,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it untyped
        self.message_sid = message_sid
        self.twilio_conn_id = twilio_conn_id
        self.wait_for: WaitFor = wait_for
        self.end_time = end_time
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the arguments that rebuild this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "message_sid": self.message_sid,
                "twilio_conn_id": self.twilio_conn_id,
                "wait_for": self.wait_for,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the message's status is final or the deadline passes; fire once."""
        hook = TwilioHook(self.twilio_conn_id)
        try:
            async with hook.shared_connection() as conn:
                payload = await wait_for_status(
                    conn,
                    self.message_sid,
                    wait_for=self.wait_for,
                    within=self.end_time - time.time(),
                    first_poll=self.poll_interval,
                    max_poll=self.max_poll_interval,
                )
        except ConnectorError as exc:
            # The connection could not be opened (its settings are wrong).
            payload = {"outcome": "error", "sid": self.message_sid, "error": str(exc)}
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]


class TwilioInboundMessageTrigger(BaseEventTrigger):
    """
    Fire an event for every new SMS (or MMS, WhatsApp message) received by the given
    numbers; use it in an :class:`~airflow.sdk.AssetWatcher` to start DAG runs.

    It polls ``list_messages_v2`` every *poll_interval* seconds per number, with a
    cursor in Twilio's own time (the newest ``date_sent`` seen), so no clock needs to
    agree with Twilio's. On first start the cursor is "now": messages received before
    are not reported. On Airflow 3.3+ the cursor is kept in the watched asset's state
    store, so a triggerer restart resumes where it stopped; elsewhere it lives in
    memory and a restart starts again from "now". An event's payload is the Message as
    JSON (``sid``, ``from``, ``to``, ``body``, ``date_sent`` ...); it reaches the DAG
    run as ``triggering_asset_events[asset][0].extra["payload"]``.

    Delivery is at least once: the cursor is saved after each event is handed over, so
    a triggerer killed in between reports that one message again.

    Args:
        to: The number (or numbers) that receive.
        twilio_conn_id: The Airflow connection.
        poll_interval: Seconds between polls (each poll is one call per number, under
            the connection's rate limit).
    """

    def __init__(
        self,
        *,
        to: str | Sequence[str],
        twilio_conn_id: str = TwilioHook.default_conn_name,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow leaves it untyped
        self.to = [to] if isinstance(to, str) else list(to)
        self.twilio_conn_id = twilio_conn_id
        self.poll_interval = poll_interval
        self._memory: dict[str, InboxCursor] = {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the arguments that rebuild this trigger (no state)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "to": list(self.to),
                "twilio_conn_id": self.twilio_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    def _store(self) -> Any:
        # Injected by Airflow 3.3+'s triggerer when the trigger watches an asset.
        return getattr(self, "asset_state_store", None)

    async def _load(self, number: str) -> InboxCursor | None:
        store = self._store()
        if store is not None:
            try:
                saved = InboxCursor.from_json(await store.aget(_cursor_key(number)))
            except ValueError as exc:  # more than one watched asset: no single store
                log.warning("the inbound cursor is kept in memory: %s", exc)
            else:
                if saved is not None:
                    return saved
        return self._memory.get(number)

    async def _save(self, number: str, cursor: InboxCursor) -> None:
        self._memory[number] = cursor
        store = self._store()
        if store is not None:
            try:
                await store.aset(_cursor_key(number), cast(Any, cursor.to_json_data()))
            except ValueError:
                pass  # said once when loading

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever, firing one event per new inbound message, oldest first."""
        hook = TwilioHook(self.twilio_conn_id)
        async with hook.shared_connection() as conn:
            while True:
                for number in self.to:
                    try:
                        cursor = await self._load(number)
                        if cursor is None:
                            await self._save(number, await baseline(conn, number))
                            continue
                        async for message, after in new_messages(conn, number, cursor):
                            yield TriggerEvent(message)  # type: ignore[no-untyped-call]
                            await self._save(number, after)
                    except ConnectorError as exc:
                        log.warning("polling %s for inbound messages failed: %s", number, exc)
                await asyncio.sleep(self.poll_interval)


def _cursor_key(number: str) -> str:
    return f"twilio_inbound_cursor:{number}"
