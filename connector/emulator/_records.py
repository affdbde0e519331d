# SPDX-License-Identifier: MIT
"""
Message and Media records and their exact Twilio JSON representation.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import attrs


__all__ = ["API_VERSION", "MediaRecord", "MessageRecord", "new_sid", "rfc2822"]

API_VERSION = "2010-04-01"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_rfc_cache: dict[int, str] = {}


def new_sid(prefix: str) -> str:
    """
    Make a Twilio-style SID.

    Args:
        prefix: The two-letter resource prefix, e.g. ``"SM"``.

    Returns:
        *prefix* followed by 32 lowercase hex digits.
    """
    return prefix + secrets.token_hex(16)


def rfc2822(timestamp: float | None) -> str | None:
    """
    Format an epoch timestamp the way Twilio does: RFC 2822 in GMT with ``+0000``.

    Args:
        timestamp: Seconds since the epoch, or ``None``.

    Returns:
        For example ``"Thu, 24 Aug 2023 05:01:45 +0000"``; ``None`` for ``None``.
    """
    if timestamp is None:
        return None
    second = int(timestamp)
    text = _rfc_cache.get(second)
    if text is None:
        # Built by hand: strftime's names follow the locale, and email.utils writes -0000.
        t = time.gmtime(second)
        text = (
            f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
        )
        if len(_rfc_cache) > 4096:
            _rfc_cache.clear()
        _rfc_cache[second] = text
    return text


@attrs.define(slots=True)
class MediaRecord:
    """
    One media item attached to a message.

    Attributes:
        sid: ``ME...`` SID.
        content_type: MIME type guessed from the URL.
        url: The media URL the sender gave.
        date_created: Epoch seconds.
    """

    sid: str
    content_type: str
    url: str
    date_created: float

    def to_json(self, account_sid: str, message_sid: str) -> dict[str, Any]:
        """
        Render as Twilio's Media resource.

        Args:
            account_sid: Owning account.
            message_sid: Parent message.

        Returns:
            The JSON object Twilio returns for this media.
        """
        date = rfc2822(self.date_created)
        return {
            "account_sid": account_sid,
            "content_type": self.content_type,
            "date_created": date,
            "date_updated": date,
            "parent_sid": message_sid,
            "sid": self.sid,
            "uri": (
                f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}"
                f"/Media/{self.sid}.json"
            ),
        }


@attrs.define(slots=True)
class MessageRecord:
    """
    The emulator's state for one message.

    Attributes:
        seq: Monotonic creation order; lists are newest (highest) first.
        sid: ``SM...`` or ``MM...`` SID.
        account_sid: Owning account.
        to: Recipient.
        from_: Sender, ``None`` until a Messaging Service assigns one.
        body: Text, ``""`` once redacted.
        status: Current Twilio status.
        direction: ``outbound-api`` or ``inbound``.
        num_segments: Segments billed (0 while a Messaging Service has not sent it).
        messaging_service_sid: ``MG...`` or ``None``.
        date_created: Epoch seconds.
        date_updated: Epoch seconds.
        date_sent: Epoch seconds, set when the message leaves ``queued``.
        price: Negative decimal string once sent, else ``None``.
        error_code: Delivery error code for ``failed``/``undelivered``.
        error_message: Its text.
        status_callback: URL to notify of transitions.
        send_at: Epoch seconds of a scheduled send.
        media: Attached media.
        timeline: Every status the message had, with the time it got it (oldest first).
        fault_code: The error code an inbox failure switch assigned to this send, if any.
    """

    seq: int
    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    status: str
    direction: str
    num_segments: int
    messaging_service_sid: str | None
    date_created: float
    date_updated: float
    date_sent: float | None = None
    price: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    status_callback: str | None = None
    send_at: float | None = None
    media: list[MediaRecord] = attrs.field(factory=list)
    timeline: list[tuple[str, float]] = attrs.field(factory=list)
    fault_code: int | None = None

    @property
    def uri(self) -> str:
        """The message's relative URI."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        """
        Render as Twilio's Message resource, field for field.

        Returns:
            The JSON object Twilio returns for this message.
        """
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media)),
            "num_segments": str(self.num_segments),
            "price": self.price,
            "price_unit": "USD" if self.price is not None else None,
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": base + "/Media.json"},
            "to": self.to,
            "uri": base + ".json",
        }

    def to_row(self) -> dict[str, Any]:
        """
        Serialise every field for storage.

        Returns:
            A JSON-compatible dict that :meth:`from_row` reads back.
        """
        return attrs.asdict(self, recurse=True)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MessageRecord:
        """
        Rebuild a record from :meth:`to_row` output.

        Args:
            row: The stored dict.

        Returns:
            The record.
        """
        media = [MediaRecord(**item) for item in row.pop("media", [])]
        timeline = [(status, float(at)) for status, at in row.pop("timeline", [])]
        return cls(**row, media=media, timeline=timeline)
