"""The manifest's triggers section and the typed payloads generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector import models
from connector._connection import default_connector
from connector._manifest import load_manifest, shipped_manifest_paths
from connector.errors import ManifestError


def _twilio_text() -> str:
    path = next(p for p in shipped_manifest_paths() if p.stem == "twilio")
    return Path(path).read_text(encoding="utf-8")


def test_the_shipped_manifest_describes_both_triggers() -> None:
    """message_received and message_status_changed name their payload definitions."""
    triggers = default_connector().triggers
    assert {t: spec.payload for t, spec in triggers.items()} == {
        "message_received": "InboundMessage",
        "message_status_changed": "MessageStatusEvent",
    }


def test_payload_definitions_use_twilio_parameter_names() -> None:
    """The payload fields are Twilio's webhook parameter names, with typed counts and codes."""
    definitions = default_connector().definitions
    inbound = {f.path: f for f in definitions["InboundMessage"].fields}
    status = {f.path: f for f in definitions["MessageStatusEvent"].fields}
    assert {"MessageSid", "From", "To", "Body", "NumMedia", "media"} <= set(inbound)
    assert (inbound["NumMedia"].type, inbound["NumSegments"].type) == ("integer", "integer")
    assert inbound["media"].items_ref == "InboundMedia"
    assert status["ErrorCode"].type == "integer"
    assert status["MessageStatus"].enum_class == "MessageStatus"


def test_the_status_enum_is_shared_with_message() -> None:
    """The generated MessageStatusEvent reuses the MessageStatus enum of Message."""
    event = models.MessageStatusEvent.from_wire(
        {"MessageSid": "SM1", "MessageStatus": "delivered", "ErrorCode": "30003"}
    )
    assert event.message_status is models.MessageStatus.DELIVERED
    assert event.error_code == 30003
    inbound = models.InboundMessage.from_wire(
        {"From": "+1555", "NumMedia": "1", "media": [{"url": "https://x", "content_type": "a/b"}]}
    )
    assert (inbound.from_, inbound.num_media) == ("+1555", 1)
    assert inbound.media[0].content_type == "a/b"
    assert inbound.to_json_data()["media"] == [{"url": "https://x", "content_type": "a/b"}]


def test_a_trigger_must_name_a_definition() -> None:
    """A trigger whose payload names no definition is a manifest error at its location."""
    text = _twilio_text().replace("payload: InboundMessage", "payload: InboundMesage")
    with pytest.raises(ManifestError, match="payload 'InboundMesage' names no definition"):
        load_manifest("twilio.yaml", text=text)


def test_a_trigger_needs_a_payload() -> None:
    """The schema requires title, description and payload on a trigger."""
    text = _twilio_text().replace("    payload: MessageStatusEvent\n", "")
    with pytest.raises(ManifestError, match="payload"):
        load_manifest("twilio.yaml", text=text)


def test_a_manifest_without_triggers_has_none() -> None:
    """The section is optional; a manifest without it has no triggers."""
    text = _twilio_text()
    start = text.index("\ntriggers:\n")
    end = text.index("\ndefinitions:\n")
    assert load_manifest("twilio.yaml", text=text[:start] + text[end:]).triggers == {}
