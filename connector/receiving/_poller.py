# SPDX-License-Identifier: MIT
"""
Polling for incoming messages, for when Twilio's webhook cannot reach the listener.

Each poll lists the messages to the trigger's numbers with ``list_messages_v2`` from the
cursor's day (``DateSent>``, whose granularity is a day), newest first, and hands every
inbound message sent at or after the cursor to the listener. The cursor (the newest
``date_sent`` seen) is kept in the run journal. The day granularity means a poll sees
messages it delivered before; they share the webhook's deduplication key
(``inbound:<MessageSid>``), so no message is ever delivered twice, by the poller or by
the poller and the webhook together.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from .._connection import Connection
from .._convert import field_value, to_json_data
from .._replies import message_event
from .._types import json_datetime
from ..consent import ConsentLedger, record_inbound
from ..errors import ConnectorError
from ..workflow import Journal, TriggerOn
from ._triggers import MESSAGE_RECEIVED


__all__ = ["MessagePoller"]

log = logging.getLogger("connector.receiving")

Ingest = Callable[[str, dict[str, Any]], Any]


class MessagePoller:
    """
    Polls ``list_messages_v2`` for messages to a trigger's numbers.

    Args:
        connection: An open connection.
        journal: Where the cursor is kept.
        trigger: The ``message_received`` trigger (its ``to`` and ``poll_interval``).
        ingest: Called with ``(kind, event)`` for each message found.
        since: Where a cursor starts when the journal has none (default: now), so a
            first poll does not replay the account's history.
        consent: Where the opt-outs and opt-ins of the keywords found are recorded
            (each with its message's time, so a message seen again changes nothing).
    """

    def __init__(
        self,
        connection: Connection,
        journal: Journal,
        trigger: TriggerOn,
        ingest: Ingest,
        *,
        since: dt.datetime | None = None,
        consent: ConsentLedger | None = None,
    ) -> None:
        self.connection = connection
        self.journal = journal
        self.trigger = trigger
        self.ingest = ingest
        self.since = since or dt.datetime.now(dt.UTC)
        self.consent = consent

    async def run(self) -> None:
        """Poll every ``poll_interval`` seconds until cancelled; errors are logged."""
        interval = self.trigger.poll_interval or 60.0
        while True:
            try:
                await self.poll_once()
            except ConnectorError as exc:
                log.warning("polling for messages failed: %s", exc)
            # Waiting between polls is the point of polling.
            await asyncio.sleep(interval)

    async def poll_once(self) -> int:
        """
        Poll once for each of the trigger's numbers.

        Returns:
            How many messages were handed to the listener (duplicates included).
        """
        count = 0
        for number in self.trigger.to:
            count += await self._poll(number)
        return count

    async def _poll(self, number: str) -> int:
        name = f"poll:{MESSAGE_RECEIVED}:{number}"
        saved = self.journal.cursor(name)
        cursor = (
            dt.datetime.fromisoformat(saved)
            if saved
            else self.since.astimezone(dt.UTC).replace(microsecond=0)
        )
        newest = cursor
        count = 0
        query = {"To": number, "DateSentAfter": cursor.date()}
        async for message in self.connection.paginate("list_messages_v2", query):
            sent = field_value(message, "date_sent")
            if sent is None:
                continue  # not received yet: a later poll sees it
            if sent < cursor:
                break  # newest first: everything further was seen already
            if str(to_json_data(field_value(message, "direction"))) != "inbound":
                continue
            newest = max(newest, sent)
            event = message_event(message)
            try:
                if self.consent is not None:
                    await record_inbound(
                        self.consent,
                        to=str(event["To"] or ""),
                        from_=str(event["From"] or ""),
                        body=event["Body"],
                        messaging_service_sid=event["MessagingServiceSid"],
                        at=sent.timestamp(),
                    )
                self.ingest(MESSAGE_RECEIVED, event)
            except ValueError as exc:  # a field breaks its format: never run on it
                log.warning("polled message refused: %s", exc)
                continue
            count += 1
        if newest != cursor or saved is None:
            self.journal.set_cursor(name, newest.isoformat())
        log.debug("polled %s: %d message(s), cursor %s", number, count, json_datetime(newest))
        return count
