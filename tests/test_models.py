"""Typed outputs: generated from the manifest, converted from the wire, written as JSON."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import connector
import connector.models
from connector import Record, default_connector, to_json_data
from connector._codegen import generate, generate_signatures
from connector._types import datetime as parse_datetime
from connector.models import Message, MessageDirection, MessageStatus


ROOT = Path(__file__).resolve().parent.parent


def test_generated_models_match_the_manifest() -> None:
    """connector/models.py is what the codegen makes of today's manifest (run nox -s codegen)."""
    expected = generate(default_connector())
    assert Path(connector.models.__file__).read_text(encoding="utf-8") == expected


def test_generated_signatures_match_the_manifest() -> None:
    """connector/_signatures.pyi, the typed overloads of Connection.call, is up to date."""
    expected = generate_signatures(default_connector())
    stub = Path(connector.models.__file__).with_name("_signatures.pyi")
    assert stub.read_text(encoding="utf-8") == expected


def test_the_type_checker_sees_a_misspelt_output_field(tmp_path: Path) -> None:
    """mypy rejects msg.num_segmens on the result of conn.call("send_text_message")."""
    from mypy import api

    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from connector import Connection\n"
        "\n"
        "\n"
        "async def main() -> None:\n"
        "    async with Connection() as conn:\n"
        '        msg = await conn.call("send_text_message", {"body": "hi"})\n'
        "        print(msg.num_segments, msg.num_segmens)\n",
        encoding="utf-8",
    )
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = true\n", encoding="utf-8")
    report, _, status = api.run(
        ["--config-file", str(config), "--no-incremental", "--cache-dir", os.devnull, str(snippet)]
    )
    assert status == 1
    assert report.splitlines() == [
        f'{snippet}:7: error: "Message" has no attribute "num_segmens"; '
        'maybe "num_segments"?  [attr-defined]',
        "Found 1 error in 1 file (checked 1 source file)",
    ]


def test_json_typed_dicts_have_the_keys_of_to_json_data() -> None:
    """Each generated TypedDict lists exactly the keys its model's to_json_data() writes."""
    for name, model in connector.models.DEFINITIONS.items():
        typed = getattr(connector.models, f"{name}Json")
        assert list(typed.__annotations__) == list(model.from_wire({}).to_json_data())


def test_generated_docs_reference_matches_the_manifest() -> None:
    """docs/actions.md is what docs/generate_reference.py makes of today's manifest."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from generate_reference import render
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / "actions.md").read_text(encoding="utf-8") == render(default_connector())


def test_wire_values_become_python_types() -> None:
    """Counts become ints, prices Decimals, dates aware UTC datetimes, enums enums."""
    message = Message.from_wire(
        {
            "num_segments": "2",
            "num_media": "0",
            "error_code": 30003,
            "price": "-0.00750",
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
            "date_sent": None,
            "status": "undelivered",
            "direction": "outbound-api",
            "from": "+15005550006",
        }
    )
    assert message.num_segments == 2 and message.num_media == 0 and message.error_code == 30003
    assert message.price == decimal.Decimal("-0.00750")
    assert message.date_created == dt.datetime(2023, 8, 24, 5, 1, 45, tzinfo=dt.UTC)
    assert message.date_sent is None
    assert message.status is MessageStatus.UNDELIVERED
    assert message.direction is MessageDirection.OUTBOUND_API
    assert message.from_ == "+15005550006"


def test_unknown_enum_values_are_kept() -> None:
    """A status Twilio adds later survives as a pseudo-member instead of failing."""
    message = Message.from_wire({"status": "pending_review"})
    assert message.status is not None
    assert message.status.value == "pending_review"
    assert message.status == "pending_review"
    assert to_json_data(message)["status"] == "pending_review"


def test_json_form_uses_seed_paths_and_iso_dates() -> None:
    """to_json_data writes the seed's field paths, ISO 8601 UTC dates with milliseconds and exact prices."""
    data = to_json_data(
        Message.from_wire(
            {"date_updated": "Mon, 01 Jan 2024 23:59:59 +0000", "price": "-0.0079", "from": "+1"}
        )
    )
    assert list(data) == [f.path for f in default_connector().definitions["Message"].fields]
    assert data["date_updated"] == "2024-01-01T23:59:59.000Z"
    assert data["price"] == "-0.0079"
    assert data["from"] == "+1"


MESSAGE_WIRE = {
    "sid": "SM" + "a" * 32,
    "num_segments": "2",
    "num_media": "1",
    "error_code": 30003,
    "price": "-0.00750",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_updated": "2023-08-24T05:01:46+02:00",
    "date_sent": None,
    "status": "pending_review",  # a status Twilio may add later
    "direction": "outbound-api",
    "from": "+15005550006",
    "subresource_uris": {"media": "/2010-04-01/Accounts/AC1/Messages/SM1/Media.json"},
}


@pytest.mark.parametrize(
    ("model", "wire"),
    [
        (Message, MESSAGE_WIRE),
        (Message, {}),
        (connector.models.MessageListV2, {"messages": [MESSAGE_WIRE, {}], "next_page_uri": None}),
        (
            connector.models.Reply,
            {"status": "replied", "reply": {"MessageSid": "SM1", "Body": "A", "NumMedia": "0"}},
        ),
        (connector.models.Reply, {"status": "timed_out", "reply": None}),
        (connector.models.MediaList, {"media_list": [{"sid": "ME1", "date_created": None}]}),
    ],
    ids=["message", "empty", "page", "reply", "no-reply", "media"],
)
def test_data_from_wire_is_the_json_form_of_the_model(model: Any, wire: dict[str, Any]) -> None:
    """data_from_wire gives exactly what from_wire(...).to_json_data() gives, without the model."""
    assert model.data_from_wire(wire) == to_json_data(model.from_wire(wire))


def test_every_model_makes_its_json_form_from_the_wire() -> None:
    """Each generated model has data_from_wire, so executors never need the model for plain data."""
    for name in connector.models.__all__:
        model = getattr(connector.models, name)
        if hasattr(model, "from_wire"):
            assert model.data_from_wire({}) == to_json_data(model.from_wire({})), name


def test_to_json_is_a_deprecated_alias_of_to_json_data() -> None:
    """The old name still works, on the function, the models and records, with a DeprecationWarning."""
    message = Message.from_wire({"sid": "SM1", "date_updated": "Mon, 01 Jan 2024 23:59:59 +0000"})
    record = Record("Thing", {"count": 3})
    with pytest.warns(DeprecationWarning, match=r"^to_json\(\) is deprecated.*to_json_data\(\)"):
        assert connector.to_json(message) == to_json_data(message)
    with pytest.warns(DeprecationWarning, match=r"Message.to_json_data\(\)"):
        assert message.to_json() == message.to_json_data()
    with pytest.warns(DeprecationWarning, match=r"Record.to_json_data\(\)"):
        assert record.to_json() == {"count": 3}
    # The new name is JSON-ready data, as json.dumps shows.
    assert (
        json.loads(json.dumps(message.to_json_data()))["date_updated"] == "2024-01-01T23:59:59.000Z"
    )


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("Thu, 24 Aug 2023 05:01:45 +0000", dt.datetime(2023, 8, 24, 5, 1, 45, tzinfo=dt.UTC)),
        ("Thu, 24 Aug 2023 07:01:45 +0200", dt.datetime(2023, 8, 24, 5, 1, 45, tzinfo=dt.UTC)),
        ("Thu, 4 Aug 2023 05:01:45 -0000", dt.datetime(2023, 8, 4, 5, 1, 45, tzinfo=dt.UTC)),
        ("2023-08-24T05:01:45Z", dt.datetime(2023, 8, 24, 5, 1, 45, tzinfo=dt.UTC)),
        (None, None),
        ("", None),
    ],
)
def test_dates_parse_fast_and_slow_paths(wire: str | None, expected: dt.datetime | None) -> None:
    """Twilio's RFC 2822 form takes the fast path; other forms still parse, to UTC."""
    assert parse_datetime(wire) == expected


def test_outputs_are_frozen() -> None:
    """Outputs cannot be changed by a downstream step."""
    message = Message.from_wire({"sid": "SM1"})
    with pytest.raises(AttributeError):
        message.sid = "SM2"  # type: ignore[misc]


def test_the_workflow_schema_lists_every_action_for_editors() -> None:
    """`uses` offers each shipped action and built-in as a completion (run nox -s codegen)."""
    from connector._codegen import workflow_schema_text
    from connector.workflow import BUILTIN_CONNECTOR, workflow_schema
    from connector.workflow._builtins import BUILTINS

    path = ROOT / "connector" / "schemas" / "workflow.schema.json"
    text = path.read_text(encoding="utf-8")
    builtins = [f"{BUILTIN_CONNECTOR}/{name}" for name in sorted(BUILTINS)]
    assert workflow_schema_text(default_connector(), text, builtins) == text
    listed = workflow_schema()["$defs"]["step"]["properties"]["uses"]["examples"]
    assert "twilio/wait_for_reply" in listed and "twilio/list_messages" not in listed
