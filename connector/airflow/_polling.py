# SPDX-License-Identifier: MIT
"""
The two polling loops the Airflow provider runs, free of Airflow so they can be driven
directly: waiting for a sent message's final status, and finding new inbound messages
past a cursor.

Both make every call through the connection they are given, so they share its rate
limit with everything else that uses it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final, Literal

import attrs

from .. import Connection, to_json_data
from .._convert import field_value
from ..errors import AuthenticationError, ConnectorError, InvalidInputError, NotFoundError


__all__ = [
    "FAILED_STATUSES",
    "FIRST_POLL",
    "MAX_POLL",
    "SUCCEEDED_STATUSES",
    "InboxCursor",
    "WaitFor",
    "baseline",
    "new_messages",
    "outcome_of",
    "poll_delays",
    "wait_for_status",
]

log = logging.getLogger("connector.airflow")

WaitFor = Literal["sent", "delivered"]

#: The statuses that end a wait successfully, by what is waited for. ``read`` comes
#: after ``delivered`` on WhatsApp.
SUCCEEDED_STATUSES: Final[dict[str, frozenset[str]]] = {
    "sent": frozenset({"sent", "delivered", "read"}),
    "delivered": frozenset({"delivered", "read"}),
}
#: The statuses a message never leaves and that mean it did not arrive.
FAILED_STATUSES: Final = frozenset({"failed", "undelivered", "canceled"})
#: Seconds before the first status poll; each later wait doubles, up to :data:`MAX_POLL`.
FIRST_POLL: Final = 5.0
#: The longest wait between two status polls, in seconds.
MAX_POLL: Final = 60.0
#: How many of a number's newest messages a baseline looks through for an inbound one.
BASELINE_LIMIT: Final = 1000


def poll_delays(first: float = FIRST_POLL, cap: float = MAX_POLL) -> Iterator[float]:
    """
    The waits between status polls: *first*, then doubling, capped at *cap*
    (5, 10, 20, 40, 60, 60, ... seconds by default).

    Raises:
        ValueError: *first* is not positive, or *cap* is below it.
    """
    if not first > 0 or cap < first:
        raise ValueError(f"poll intervals need 0 < first <= cap, not {first} and {cap}")
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def outcome_of(message: Any, wait_for: WaitFor) -> dict[str, Any] | None:
    """
    The end of a wait, if *message* (a Message, or its JSON) has reached it.

    Returns:
        ``None`` while the message is still on its way; otherwise the event payload
        (see :func:`wait_for_status`).
    """
    data = message if isinstance(message, dict) else to_json_data(message)
    status = str(data.get("status"))
    if status in SUCCEEDED_STATUSES[wait_for]:
        outcome = "succeeded"
    elif status in FAILED_STATUSES:
        outcome = "failed"
    else:
        return None
    return {
        "outcome": outcome,
        "sid": data.get("sid"),
        "status": status,
        "error_code": data.get("error_code"),
        "error_message": data.get("error_message"),
        "message": data,
    }


async def wait_for_status(
    connection: Connection,
    sid: str,
    *,
    wait_for: WaitFor = "delivered",
    within: float,
    first_poll: float = FIRST_POLL,
    max_poll: float = MAX_POLL,
) -> dict[str, Any]:
    """
    Poll a message with ``get_message`` until it reaches a final status or *within*
    seconds pass, backing off between polls (:func:`poll_delays`). A poll is made at the
    deadline itself, so a message that arrived while nobody looked still counts.

    Errors that may pass (a network failure, a 5xx, a 429 after the connection's own
    retries) are logged and polled past; a refusal that will not change (the message is
    unknown, the credentials are refused) ends the wait.

    Returns:
        A JSON payload: ``outcome`` (``succeeded``, ``failed``, ``timeout`` or
        ``error``), ``sid``, ``status``, ``error_code``, ``error_message`` (Twilio's,
        for failed messages), ``message`` (the last Message seen, as JSON) and
        ``error`` (why a wait ended in ``error``).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, within)
    last: dict[str, Any] | None = None
    for delay in poll_delays(first_poll, max_poll):
        remaining = deadline - loop.time()
        await asyncio.sleep(max(0.0, min(delay, remaining)))
        try:
            message = await connection.call("get_message", {"MessageId": sid})
        except (NotFoundError, AuthenticationError, InvalidInputError) as exc:
            return _ended("error", sid, last, error=str(exc))
        except ConnectorError as exc:
            log.warning("polling message %s failed, polling on: %s", sid, exc)
        else:
            last = to_json_data(message)
            ended = outcome_of(last, wait_for)
            if ended is not None:
                return ended
        if loop.time() >= deadline:
            status = last.get("status") if last else "unknown"
            return _ended(
                "timeout",
                sid,
                last,
                error=f"message {sid} was still {status} after {within:g} s (waiting for {wait_for})",
            )
    raise AssertionError("poll_delays never ends")  # pragma: no cover


def _ended(outcome: str, sid: str, last: dict[str, Any] | None, *, error: str) -> dict[str, Any]:
    last = last or {}
    return {
        "outcome": outcome,
        "sid": sid,
        "status": last.get("status"),
        "error_code": last.get("error_code"),
        "error_message": last.get("error_message"),
        "message": last or None,
        "error": error,
    }


# -- inbound messages --------------------------------------------------------------------


@attrs.frozen
class InboxCursor:
    """
    How far a number's inbound messages have been seen, in Twilio's own time.

    Attributes:
        date_sent: The newest ``date_sent`` seen (ISO 8601), or ``None`` when the number
            had no inbound message yet (then every one is new).
        sids: The messages sent at exactly that second that were already seen: Twilio's
            times have whole seconds, so two messages can share one.
    """

    date_sent: str | None = None
    sids: tuple[str, ...] = ()

    def to_json_data(self) -> dict[str, Any]:
        """The cursor as JSON, for a state store."""
        return {"date_sent": self.date_sent, "sids": list(self.sids)}

    @classmethod
    def from_json(cls, data: Any) -> InboxCursor | None:
        """A cursor from :meth:`to_json_data`'s form; ``None`` for anything else."""
        if not isinstance(data, dict) or "date_sent" not in data:
            return None
        date_sent = data["date_sent"]
        sids = data.get("sids") or []
        if not (date_sent is None or isinstance(date_sent, str)) or not isinstance(sids, list):
            return None
        return cls(date_sent, tuple(str(s) for s in sids))

    def seen(self, sent: dt.datetime, sid: str) -> bool:
        """Whether a message sent at *sent* was seen already (or is older than the cursor)."""
        if self.date_sent is None:
            return False
        cursor = dt.datetime.fromisoformat(self.date_sent)
        return sent < cursor or (sent == cursor and sid in self.sids)

    def after(self, sent: dt.datetime, sid: str) -> InboxCursor:
        """The cursor once the message *sid*, sent at *sent*, has been seen too."""
        stamp = sent.isoformat()
        if stamp == self.date_sent:
            return InboxCursor(stamp, (*self.sids, sid))
        return InboxCursor(stamp, (sid,))


def _inbound(message: Any) -> bool:
    return str(to_json_data(field_value(message, "direction"))) == "inbound"


async def baseline(connection: Connection, number: str) -> InboxCursor:
    """
    The cursor of "now", in Twilio's time: past the newest inbound message to *number*,
    so that nothing received before is reported.
    """
    cursor: InboxCursor | None = None
    async for message in connection.paginate(
        "list_messages_v2", {"To": number}, max_items=BASELINE_LIMIT
    ):
        sent = field_value(message, "date_sent")
        if sent is None or not _inbound(message):
            continue
        sid = str(field_value(message, "sid"))
        if cursor is None:
            cursor = InboxCursor(sent.isoformat(), (sid,))
        elif sent.isoformat() == cursor.date_sent:
            # Others received in the same second were received before "now" as well.
            cursor = cursor.after(sent, sid)
        else:
            break
    return cursor or InboxCursor()


async def new_messages(
    connection: Connection, number: str, cursor: InboxCursor
) -> AsyncIterator[tuple[dict[str, Any], InboxCursor]]:
    """
    The inbound messages to *number* past *cursor*, oldest first, each with the cursor
    that includes it.

    One ``list_messages_v2`` listing from the cursor's day (``DateSent>``: the filter's
    granularity is a day), newest first, stopping at the first message older than the
    cursor.
    """
    query: dict[str, Any] = {"To": number}
    if cursor.date_sent is not None:
        query["DateSentAfter"] = dt.datetime.fromisoformat(cursor.date_sent).date()
    found: list[tuple[dt.datetime, str, dict[str, Any]]] = []
    async for message in connection.paginate("list_messages_v2", query):
        sent = field_value(message, "date_sent")
        if sent is None or not _inbound(message):
            continue  # not received yet, or not a message to this number
        sid = str(field_value(message, "sid"))
        if cursor.date_sent is not None and sent < dt.datetime.fromisoformat(cursor.date_sent):
            break  # newest first: everything further was seen already
        if not cursor.seen(sent, sid):
            found.append((sent, sid, to_json_data(message)))
    # Oldest first; the listing is newest first, so reversing keeps same-second order.
    for sent, sid, data in reversed(found):
        cursor = cursor.after(sent, sid)
        yield data, cursor
