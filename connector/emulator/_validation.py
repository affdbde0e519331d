# SPDX-License-Identifier: MIT
"""
Send-request validation with Twilio's error codes and magic test numbers.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import attrs
from multidict import MultiMapping

from connector.emulator._errors import ApiError


__all__ = [
    "ALWAYS_VALID_FROM",
    "FAILURE_NUMBERS",
    "MAGIC_FROM_ERRORS",
    "MAGIC_TO_ERRORS",
    "SendRequest",
    "validate_send",
]

ALWAYS_VALID_FROM: Final = "+15005550006"
"""The magic sender every emulated account owns (Twilio's test-credential number)."""

MAGIC_FROM_ERRORS: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (
        21212,
        "The 'From' number +15005550001 is not a valid phone number, shortcode, or alphanumeric sender ID.",
    ),
    "+15005550007": (
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination.",
    ),
    "+15005550008": (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages",
    ),
}
"""Magic ``From`` numbers and the send error each produces (Twilio test credentials)."""

MAGIC_TO_ERRORS: Final[dict[str, tuple[int, str]]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS"),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "To number: +15005550009, is not a mobile number"),
}
"""Magic ``To`` numbers and the send error each produces (Twilio test credentials)."""

FAILURE_NUMBERS: Final[dict[str, tuple[str, int, str]]] = {
    "+15005530003": ("undelivered", 30003, "Unreachable destination handset"),
    "+15005530005": ("undelivered", 30005, "Unknown destination handset"),
    "+15005530006": ("undelivered", 30006, "Landline or unreachable carrier"),
    "+15005530007": ("undelivered", 30007, "Message filtered"),
    "+15005530008": ("failed", 30008, "Unknown error"),
}
"""Emulator-only destinations that are accepted (201) but end failed or undelivered."""

MAX_BODY = 1600
MAX_MEDIA = 10
SCHEDULE_MIN_SECONDS = 300
SCHEDULE_MAX_SECONDS = 35 * 24 * 3600

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# +1 is the North American Numbering Plan: a 3-digit area code that does not start with
# 0 or 1, then 7 digits. Twilio answers 21211 to any other +1 number.
_NANP = re.compile(r"^\+1[2-9][0-9]{9}$")
_CHANNEL = re.compile(r"^(whatsapp|messenger|rcs|mms|sms):(.+)$")
_ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


@attrs.frozen
class SendRequest:
    """
    A validated send.

    Attributes:
        to: Recipient address.
        from_: Sender, or ``None`` to let the Messaging Service choose.
        messaging_service_sid: ``MG...`` or ``None``.
        body: Text (may be empty when media is given).
        media_urls: Media URLs in order.
        status_callback: URL for status callbacks, or ``None``.
        send_at: Epoch seconds for a scheduled send, or ``None``.
        validity_period: Seconds the message may wait in its sender's queue
            (``ValidityPeriod``), or ``None`` for Twilio's default.
    """

    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None
    send_at: float | None
    validity_period: int | None = None


def _is_number(text: str) -> bool:
    return bool(_E164.match(text)) and (not text.startswith("+1") or bool(_NANP.match(text)))


def _bare(address: str) -> str:
    match = _CHANNEL.match(address)
    return match.group(2) if match else address


def _valid_to(to: str) -> bool:
    match = _CHANNEL.match(to)
    if match is None:
        return _is_number(to)
    if match.group(1) == "whatsapp":
        return _is_number(match.group(2))
    return bool(match.group(2).strip())


def _is_http_url(url: str, *, allow_underscore: bool = True) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = parts.hostname or ""
    return (
        parts.scheme in ("http", "https") and bool(host) and (allow_underscore or "_" not in host)
    )


def parse_send_at(value: str) -> float | None:
    """
    Parse an ISO 8601 ``SendAt`` value.

    Args:
        value: For example ``2026-05-01T12:00:00Z``.

    Returns:
        Epoch seconds, or ``None`` when it cannot be parsed.
    """
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _check_from(sender: str, owned: Collection[str]) -> None:
    if sender in MAGIC_FROM_ERRORS:
        code, message = MAGIC_FROM_ERRORS[sender]
        raise ApiError(400, code, message)
    channel = _CHANNEL.match(sender)
    bare = channel.group(2) if channel else sender
    if _is_number(bare) or (channel is None and _SHORT_CODE.match(bare)):
        if bare in owned:
            return
        raise ApiError(400, *MAGIC_FROM_ERRORS["+15005550007"])
    if channel is None and _ALPHA_SENDER.match(sender):
        return
    raise ApiError(
        400,
        21212,
        f"The 'From' number {sender} is not a valid phone number, shortcode, "
        "or alphanumeric sender ID.",
    )


def validate_send(form: MultiMapping[str], *, owned: Collection[str], now: float) -> SendRequest:
    """
    Validate a ``POST Messages.json`` form the way Twilio does.

    Checks run in this order: To (21604, 21211, magic To), sender (21603, magic From,
    21212, 21606), content (21602, 21617, 21623, 21620), StatusCallback (21609), then
    scheduling (35118, 35111, 35114). Unknown parameters are ignored.

    Args:
        form: The decoded form; ``MediaUrl`` may repeat.
        owned: Bare E.164 numbers (and short codes) the account may send from.
        now: Current epoch seconds, for the scheduling window.

    Returns:
        The validated request.

    Raises:
        ApiError: With Twilio's status, code and message for the first failed check.
    """
    to = form.get("To", "").strip()
    if not to:
        raise ApiError(400, 21604, "A 'To' phone number is required.")
    if to in MAGIC_TO_ERRORS:
        raise ApiError(400, *MAGIC_TO_ERRORS[to])
    if not _valid_to(to):
        raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")

    sender = form.get("From", "").strip() or None
    service = form.get("MessagingServiceSid", "").strip() or None
    if sender is None and service is None:
        raise ApiError(400, 21603, "A 'From' phone number is required.")
    if service is not None and not _SERVICE_SID.match(service):
        raise ApiError(400, 21701, f"The Messaging Service Sid {service} is invalid.")
    if sender is not None:
        _check_from(sender, owned)

    body = form.get("Body", "")
    media_urls = tuple(form.getall("MediaUrl", ()))
    if not body and not media_urls and not form.get("ContentSid"):
        raise ApiError(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY:
        raise ApiError(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    if len(media_urls) > MAX_MEDIA:
        raise ApiError(400, 21623, "Number of media files exceeds allowed limit")
    if not all(_is_http_url(url) for url in media_urls):
        raise ApiError(400, 21620, "Invalid media URL(s)")

    callback = form.get("StatusCallback") or None
    if callback is not None and (
        len(callback) > 4000 or not _is_http_url(callback, allow_underscore=False)
    ):
        raise ApiError(400, 21609, "Invalid 'StatusCallback'")

    send_at = None
    schedule_type = form.get("ScheduleType")
    if schedule_type is not None:
        if schedule_type != "fixed":
            raise ApiError(
                400, 35126, "The ScheduleType value provided is not supported for this channel"
            )
        if service is None:
            raise ApiError(400, 35118, "MessagingServiceSid is required to schedule a message")
        raw = form.get("SendAt", "").strip()
        if not raw:
            raise ApiError(400, 35111, "SendAt timestamp is missing")
        send_at = parse_send_at(raw)
        if send_at is None or not (SCHEDULE_MIN_SECONDS <= send_at - now <= SCHEDULE_MAX_SECONDS):
            raise ApiError(
                400,
                35114,
                "Scheduling does not support this timestamp: SendAt must be between "
                "300 seconds and 35 days in the future",
            )
    validity = form.get("ValidityPeriod", "").strip()
    return SendRequest(
        to=to,
        from_=sender,
        messaging_service_sid=service,
        body=body,
        media_urls=media_urls,
        status_callback=callback,
        send_at=send_at,
        validity_period=int(validity) if validity.isdigit() else None,
    )


def check_inbound(to: str, sender: str) -> None:
    """
    Check the numbers of an injected inbound message as Twilio checks a send's.

    Args:
        to: The account's number receiving it (a number, short code or channel address).
        sender: The handset (also an alphanumeric sender ID).

    Raises:
        ApiError: 400 / 21211 for *to*, 400 / 21212 for *sender*.
    """
    if not (_valid_to(to) or _SHORT_CODE.match(to)):
        raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if not (_valid_to(sender) or _SHORT_CODE.match(sender) or _ALPHA_SENDER.match(sender)):
        raise ApiError(
            400,
            21212,
            f"The 'From' number {sender} is not a valid phone number, shortcode, "
            "or alphanumeric sender ID.",
        )


def bare_number(address: str) -> str:
    """
    Strip a channel prefix such as ``whatsapp:``.

    Args:
        address: A phone number or channel address.

    Returns:
        The number part.
    """
    return _bare(address)
