# SPDX-License-Identifier: MIT
"""
Triggers: turning a webhook's parameters into a typed event, matching it against each
workflow's ``on:`` filters, deduplicating it, and rendering a workflow's TwiML reply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from ..workflow import Template, TriggerOn, Workflow, WorkflowFunctions, reads_untrusted


__all__ = [
    "MESSAGE_RECEIVED",
    "MESSAGE_STATUS_CHANGED",
    "event_key",
    "inbound_event",
    "matches",
    "render_reply",
    "status_event",
    "trigger_mismatch",
    "twiml",
]

MESSAGE_RECEIVED = "twilio/message_received"
MESSAGE_STATUS_CHANGED = "twilio/message_status_changed"

#: Webhook parameters copied as they are into an InboundMessage (the manifest's paths).
_INBOUND_FIELDS = (
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "AccountSid",
    "MessagingServiceSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "NumSegments",
    "SmsStatus",
    "ApiVersion",
    "FromCity",
    "FromState",
    "FromZip",
    "FromCountry",
    "ToCity",
    "ToState",
    "ToZip",
    "ToCountry",
    "OptOutType",
)
_STATUS_FIELDS = (
    "MessageSid",
    "SmsSid",
    "AccountSid",
    "MessagingServiceSid",
    "From",
    "To",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "ErrorMessage",
    "RawDlrDoneDate",
    "ApiVersion",
)
#: Twilio attaches at most ten media files to a message.
_MAX_MEDIA = 10


def inbound_event(params: Mapping[str, str]) -> dict[str, Any]:
    """
    Build an incoming-message event (the InboundMessage fields) from webhook parameters.

    ``media`` is assembled from ``MediaUrl0``/``MediaContentType0``, ``MediaUrl1``...

    Args:
        params: The posted parameters.

    Returns:
        The event with the manifest's field paths (values still as posted).
    """
    event: dict[str, Any] = {name: params[name] for name in _INBOUND_FIELDS if name in params}
    media = []
    for index in range(_MAX_MEDIA):
        url = params.get(f"MediaUrl{index}")
        if url is None:
            break
        media.append({"url": url, "content_type": params.get(f"MediaContentType{index}")})
    event["media"] = media
    return event


def status_event(params: Mapping[str, str]) -> dict[str, Any]:
    """
    Build a status-callback event (the MessageStatusEvent fields) from its parameters.

    Args:
        params: The posted parameters.

    Returns:
        The event with the manifest's field paths.
    """
    event = {name: params[name] for name in _STATUS_FIELDS if name in params}
    if "MessageStatus" not in event and "SmsStatus" in event:
        event["MessageStatus"] = event["SmsStatus"]
    return event


def event_key(kind: str, event: Mapping[str, Any]) -> str:
    """
    The key a retried delivery of the same event shares.

    An incoming message is one event per ``MessageSid``; a status callback is one per
    ``MessageSid`` and status (a message passes through each status once).

    Args:
        kind: The trigger.
        event: The event.

    Returns:
        ``inbound:SM...`` or ``status:SM...:delivered``.
    """
    if kind == MESSAGE_RECEIVED:
        return f"inbound:{event['MessageSid']}"
    return f"status:{event['MessageSid']}:{event.get('MessageStatus')}"


def matches(trigger: TriggerOn, kind: str, event: Mapping[str, Any]) -> bool:
    """
    Whether *event* (of trigger *kind*, JSON form) starts a run of a workflow with
    *trigger*.

    Args:
        trigger: The workflow's ``on:``.
        kind: The event's trigger.
        event: The event, JSON form.

    Returns:
        ``True`` when the kinds are the same and every filter holds.
    """
    return trigger_mismatch(trigger, kind, event) is None


def trigger_mismatch(trigger: TriggerOn, kind: str, event: Mapping[str, Any]) -> str | None:
    """
    Why *event* (of trigger *kind*, JSON form) starts no run of a workflow with
    *trigger*: the filter of its ``on:`` that does not hold.

    Args:
        trigger: The workflow's ``on:``.
        kind: The event's trigger.
        event: The event, JSON form.

    Returns:
        The reason in words, or ``None`` when the event starts a run.
    """
    if trigger.uses != kind:
        return f"the workflow starts on {trigger.uses}, not {kind}"
    if trigger.to and event.get("To") not in trigger.to:
        return f"To {event.get('To')!r} is not one of the trigger's to: {list(trigger.to)}"
    if trigger.from_ and event.get("From") not in trigger.from_:
        return f"From {event.get('From')!r} is not one of the trigger's from: {list(trigger.from_)}"
    if trigger.status and event.get("MessageStatus") not in trigger.status:
        return (
            f"MessageStatus {event.get('MessageStatus')!r} is not one of the trigger's "
            f"status: {list(trigger.status)}"
        )
    body = str(event.get("Body") or "")
    if trigger.body_matches is not None and trigger.body_matches.search(body) is None:
        return f"Body {body!r} does not match the trigger's body_matches {trigger.body_matches.pattern!r}"
    return None


def render_reply(
    workflow: Workflow,
    event: Mapping[str, Any],
    inputs: Mapping[str, Any],
    env: Mapping[str, str],
) -> str | None:
    """
    Render a workflow's ``reply:`` for an event.

    Args:
        workflow: The workflow.
        event: The event, JSON form (read as ``trigger``).
        inputs: The workflow's inputs.
        env: What ``env`` reads.

    Returns:
        The reply text, or ``None`` when the workflow has no reply or it renders empty.

    Raises:
        ExpressionError: The template cannot be evaluated.
    """
    trigger = workflow.trigger
    if trigger is None or trigger.reply is None:
        return None
    if isinstance(trigger.reply, Template):
        context = {"trigger": dict(event), "inputs": dict(inputs), "env": dict(env)}
        functions = WorkflowFunctions(workflow.base_dir, confine=reads_untrusted(trigger.reply))
        value = trigger.reply.render(context, functions)
        text = "" if value is None else str(value)
    else:
        text = trigger.reply
    return text or None


def twiml(replies: Sequence[str]) -> str:
    """
    The TwiML answered to Twilio: an empty ``<Response/>``, or one ``<Message>`` per reply.

    Args:
        replies: Reply texts.

    Returns:
        The XML document.
    """
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    if not replies:
        return f"{head}<Response/>"
    messages = "".join(f"<Message>{escape(text)}</Message>" for text in replies)
    return f"{head}<Response>{messages}</Response>"
