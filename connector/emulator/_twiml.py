# SPDX-License-Identifier: MIT
"""
The TwiML an incoming-message webhook answers with, read as Twilio reads it.

Each ``<Message>`` of the ``<Response>`` becomes an outbound message: to the sender of
the incoming message unless it says ``to``, from the number that received it unless it
says ``from``, with the text of its ``<Body>`` (or its own text, the short form
``<Message>Thanks!</Message>``), its ``<Media>`` URLs, and ``action`` as the status
callback. Other verbs (``<Redirect>``, and any voice verb) are ignored with a log line.

The document is untrusted input: it is read only up to ``MAX_TWIML_BYTES``, a document
declaring a DOCTYPE (the way to entity tricks) is refused, and expat never fetches
anything.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Final

import attrs
from multidict import MultiDict

from connector.emulator._errors import ApiError
from connector.emulator._validation import validate_send


if TYPE_CHECKING:
    from connector.emulator._records import MessageRecord
    from connector.emulator._state import EmulatorState


__all__ = [
    "MAX_MESSAGES",
    "MAX_TWIML_BYTES",
    "TwimlMessage",
    "parse_twiml",
    "send_replies",
]

log = logging.getLogger("connector.emulator.twiml")

#: Answers longer than this are not read as TwiML.
MAX_TWIML_BYTES: Final = 64 * 1024
#: ``<Message>`` verbs acted on per answer; the rest are ignored with a log line.
MAX_MESSAGES: Final = 10


@attrs.frozen
class TwimlMessage:
    """
    One ``<Message>`` verb.

    Attributes:
        to: Its ``to`` attribute, if any.
        from_: Its ``from`` attribute, if any.
        body: Its text.
        media_urls: Its ``<Media>`` URLs.
        action: Its ``action`` attribute (the status callback), if any.
    """

    to: str | None
    from_: str | None
    body: str
    media_urls: tuple[str, ...] = ()
    action: str | None = None


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_twiml(answer: bytes) -> list[TwimlMessage]:
    """
    The ``<Message>`` verbs of a webhook's answer.

    Args:
        answer: The answer's body.

    Returns:
        The messages to send, in order; empty for an empty ``<Response/>``, for an
        answer that is not TwiML, or one refused (too large, a DOCTYPE, malformed),
        each with a log line.
    """
    text = answer.strip()
    if not text:
        return []
    if len(text) > MAX_TWIML_BYTES:
        log.warning("TwiML answer of %d bytes is over %d; ignored", len(text), MAX_TWIML_BYTES)
        return []
    if b"<!DOCTYPE" in text.upper():
        log.warning("TwiML answer declares a DOCTYPE; ignored")
        return []
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        log.info("the webhook's answer is not XML (%s); no reply sent", exc)
        return []
    if _local(root.tag) != "Response":
        log.info("the webhook's answer is <%s>, not a TwiML <Response>; ignored", root.tag)
        return []
    messages: list[TwimlMessage] = []
    for verb in root:
        name = _local(verb.tag)
        if name != "Message":
            log.info("TwiML <%s> is not supported by the emulator; ignored", name)
            continue
        if len(messages) == MAX_MESSAGES:
            log.info("TwiML <Message> beyond the first %d; ignored", MAX_MESSAGES)
            continue
        bodies = [_text(child) for child in verb if _local(child.tag) == "Body"]
        media = tuple(_text(child) for child in verb if _local(child.tag) == "Media")
        for child in verb:
            if _local(child.tag) not in ("Body", "Media"):
                log.info("TwiML <%s> inside <Message> is not supported; ignored", child.tag)
        body = "".join(bodies) if bodies else _text(verb)
        messages.append(
            TwimlMessage(
                to=verb.get("to") or None,
                from_=verb.get("from") or None,
                body=body,
                media_urls=tuple(url for url in media if url),
                action=verb.get("action") or None,
            )
        )
    return messages


async def send_replies(state: EmulatorState, inbound: MessageRecord, answer: bytes) -> None:
    """
    Send the ``<Message>`` verbs of the TwiML answered to *inbound*'s webhook, through
    the path of an API send: validated, refused after STOP (21610), queued, with status
    callbacks; each has direction ``outbound-reply``. A refused one is logged.
    """
    for verb in parse_twiml(answer):
        form: MultiDict[str] = MultiDict(
            To=verb.to or inbound.from_ or "", From=verb.from_ or inbound.to, Body=verb.body
        )
        form.extend(("MediaUrl", url) for url in verb.media_urls)
        if verb.action:
            form["StatusCallback"] = verb.action
        try:
            send = validate_send(form, owned=state.owned, now=state.clock.now())
            record = state.create(send, direction="outbound-reply")
        except ApiError as exc:
            log.info("TwiML <Message> to %s not sent: %s %s", form["To"], exc.code, exc.message)
            continue
        await state.store.commit()
        state.start(record)
        log.info("TwiML <Message> answering %s sent as %s", inbound.sid, record.sid)
