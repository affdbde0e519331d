from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest

from connector import InvalidInputError, default_connector
from connector._validation import CompiledAction, compile_action


def action(action_id: str) -> CompiledAction:
    return compile_action(default_connector().actions[action_id])


SMS = {"from": "+15005550006", "to": "+15551234567", "body": "hello"}
SID = "SM" + "0" * 32


def issues(action_id: str, inputs: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInputError) as caught:
        action(action_id).validate(inputs)
    return {issue.key: issue.rule for issue in caught.value.issues}


def test_valid_send_is_returned_clean() -> None:
    """Valid inputs come back unchanged where no coercion applies."""
    assert action("send_text_message").validate(SMS) == SMS


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("validity_period", "60", 60),
        ("validity_period", 60.0, 60),
        ("max_price", "0.05", decimal.Decimal("0.05")),
        ("media_url", "https://example.com/a.png", ["https://example.com/a.png"]),
    ],
)
def test_strings_from_yaml_or_cli_are_coerced(key: str, raw: Any, expected: Any) -> None:
    """Values that arrive as strings become the declared type."""
    assert action("send_text_message").validate({**SMS, key: raw})[key] == expected


def test_booleans_dates_and_datetimes_are_coerced() -> None:
    """Booleans, YYYY-MM-DD dates and ISO 8601 date-times are parsed from strings."""
    send = action("send_message").validate(
        {
            **SMS,
            "messaging_service_sid": "MG" + "a" * 32,
            "schedule_type": "fixed",
            "send_at": "2026-05-01T12:00:00+02:00",
            "shorten_urls": "true",
            "send_as_mms": "no",
        }
    )
    assert send["shorten_urls"] is True and send["send_as_mms"] is False
    assert send["send_at"] == dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC)
    listing = action("list_messages_v2").validate({"DateSent": "2024-01-02", "PageSize": "20"})
    assert listing == {"DateSent": dt.date(2024, 1, 2), "PageSize": 20}


def test_every_problem_is_reported_at_once() -> None:
    """One error lists each key with its rule and the offending value."""
    with pytest.raises(InvalidInputError) as caught:
        action("send_text_message").validate(
            {"from": "+15005550006", "to": "555-1234", "body": "x" * 1601, "validity_period": 0}
        )
    error = caught.value
    assert error.action == "send_text_message"
    assert [i.key for i in error.issues] == ["to", "body", "validity_period"]
    text = str(error)
    assert "3 problems" in text
    assert "to: must be an E.164 number" in text and "'555-1234'" in text
    assert "body: must be at most 1600 characters" in text and "1601 long" in text
    assert "validity_period: must be between 1 and 36000 (got 0)" in text


def test_missing_required_inputs() -> None:
    """Required keys must be given and not empty."""
    assert issues("send_text_message", {"to": "+15551234567", "body": ""}) == {
        "from": "is required",
        "body": "is required",
    }


def test_unknown_keys_get_a_suggestion() -> None:
    """An unknown key is rejected with the closest known key."""
    found = issues("send_text_message", {**SMS, "bdy": "x", "Media_Url": "https://x.io/a"})
    assert found == {
        "bdy": "unknown input; did you mean 'body'?",
        "Media_Url": "unknown input; did you mean 'media_url'?",
    }


@pytest.mark.parametrize(
    "number",
    ["+15551234567", "+4", "+123456789012345", "whatsapp:+15551234567", "messenger:1234567"],
)
def test_phone_numbers_and_channel_addresses_are_accepted(number: str) -> None:
    """E.164 numbers and channel addresses pass."""
    action("send_message").validate({**SMS, "to": number})


@pytest.mark.parametrize(
    "number",
    ["15551234567", "+05551234567", "+1234567890123456", "+1 555 123", "whatsapp:5551234", ""],
)
def test_malformed_numbers_are_rejected(number: str) -> None:
    """Numbers without +, starting with 0, too long, spaced or bare on WhatsApp fail."""
    found = issues("send_text_message", {**SMS, "to": number})
    assert found["to"].startswith("must be an E.164") or found["to"] == "is required"


@pytest.mark.parametrize("sender", ["+15005550006", "MyShop", "My Shop 24", "12345"])
def test_senders_may_be_alphanumeric_or_short_codes(sender: str) -> None:
    """From accepts numbers, alphanumeric sender IDs and short codes."""
    action("send_text_message").validate({**SMS, "from": sender})


def test_alphanumeric_sender_ids_are_at_most_eleven_characters() -> None:
    """A 12-character sender ID is refused."""
    assert "from" in issues("send_text_message", {**SMS, "from": "TwelveLetter"})


def test_media_urls_are_http_uris_and_at_most_ten() -> None:
    """Media URLs must be absolute http(s) URLs, ten at most."""
    found = issues("send_text_message", {**SMS, "media_url": ["ftp://x.io/a"]})
    assert found == {"media_url": "item 0: must be an absolute http(s) URL"}
    found = issues("send_text_message", {**SMS, "media_url": ["https://x.io/a"] * 11})
    assert found == {"media_url": "must have at most 10 items"}


@pytest.mark.parametrize(
    ("size", "ok"), [("0", False), ("1", True), ("1000", True), ("1001", False)]
)
def test_page_size_is_between_1_and_1000(size: str, ok: bool) -> None:
    """PageSize outside 1..1000 is refused."""
    validate = action("list_messages_v2").validate
    if ok:
        validate({"PageSize": size})
    else:
        with pytest.raises(InvalidInputError, match="between 1 and 1000"):
            validate({"PageSize": size})


@pytest.mark.parametrize(
    "sid", ["SM" + "0" * 31, "XX" + "0" * 32, "SM" + "g" * 32, "MM" + "0" * 33]
)
def test_message_sids_must_match_the_pattern(sid: str) -> None:
    """Message SIDs are SM or MM then 32 hex digits."""
    assert "MessageId" in issues("get_message", {"MessageId": sid})


def test_cross_input_rules() -> None:
    """A send needs a sender and some content; templates and schedules need their partners."""
    found = issues("send_message", {"to": "+15551234567", "content_variables": {"1": "x"}})
    assert found == {
        "from/messaging_service_sid": "give at least one of these",
        "body/media_url/content_sid": "give at least one of these",
        "content_variables": "also needs content_sid",
    }
    found = issues("send_message", {**SMS, "schedule_type": "fixed"})
    assert found == {"schedule_type": "also needs messaging_service_sid, send_at"}


def test_datetimes_need_a_timezone() -> None:
    """A naive SendAt is refused rather than guessed."""
    found = issues(
        "send_message",
        {
            **SMS,
            "messaging_service_sid": "MG" + "a" * 32,
            "schedule_type": "fixed",
            "send_at": "2026-05-01T12:00:00",
        },
    )
    assert found["send_at"].startswith("must be an ISO 8601 date-time with a timezone")


def test_update_accepts_an_empty_body_to_redact() -> None:
    """An empty body is a valid update (it redacts the message)."""
    assert action("update_message").validate({"MessageId": SID, "body": ""}) == {
        "MessageId": SID,
        "body": "",
    }


def test_encoding_repeats_array_keys_and_formats_values() -> None:
    """Arrays become repeated wire keys; booleans, dates and date-times use Twilio's forms."""
    compiled = action("send_message")
    clean = compiled.validate(
        {
            **SMS,
            "media_url": ["https://x.io/a.png", "https://x.io/b.png"],
            "messaging_service_sid": "MG" + "a" * 32,
            "schedule_type": "fixed",
            "send_at": "2026-05-01T12:00:00Z",
            "shorten_urls": True,
            "content_sid": "HX" + "b" * 32,
            "content_variables": {"1": "Ana"},
        }
    )
    path, query, form = compiled.encode(clean)
    assert path == {} and query == []
    assert ("MediaUrl", "https://x.io/a.png") in form and ("MediaUrl", "https://x.io/b.png") in form
    assert ("SendAt", "2026-05-01T12:00:00Z") in form
    assert ("ShortenUrls", "true") in form
    assert ("ContentVariables", '{"1":"Ana"}') in form
    listing = action("list_messages_v2")
    _, query, _ = listing.encode(listing.validate({"DateSentAfter": "2024-01-02"}))
    assert query == [("DateSent>", "2024-01-02")]


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("a\x00b", "must not contain a NUL character"),
        ("ab\udcffc", "must be valid Unicode text"),
        ("\ud800", "must be valid Unicode text"),
    ],
)
def test_text_that_cannot_be_sent_is_an_input_error(value: str, rule: str) -> None:
    """A NUL or a lone surrogate (an undecodable byte) in any text input is refused, named."""
    assert rule in issues("send_text_message", {**SMS, "body": value})["body"]
    assert rule in issues("send_text_message", {**SMS, "to": "+1555123456" + value})["to"]
    assert rule in issues("send_message", {**SMS, "content_variables": value})["content_variables"]
    assert action("send_text_message").validate({**SMS, "body": "ok 😀"})["body"] == "ok 😀"
