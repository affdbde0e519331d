"""
Every manifest action against Twilio's official OpenAPI spec.

tests/data/messages_openapi.json is the Messages subset of twilio-oai's
spec/json/twilio_api_v2010.json (commit d50069b, MIT licence).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from connector import ActionSpec, ParamSpec, default_connector


SPEC = json.loads((Path(__file__).parent / "data" / "messages_openapi.json").read_text())

# Our type -> the OpenAPI (type, format) pairs it may be sent as.
COMPATIBLE: dict[str, set[tuple[str, str | None]]] = {
    "string": {("string", None), ("string", "phone-number"), ("string", "uri")},
    "integer": {("integer", None)},
    "number": {("number", None)},
    "boolean": {("boolean", None)},
    "date": {("string", "date"), ("string", "date-time")},
    "datetime": {("string", "date-time")},
    "object": {("string", None)},  # sent as a JSON string (ContentVariables)
}
# Seed fields that Twilio stopped returning in 2015 (documented as always null).
REMOVED_BY_TWILIO = {"num_pages", "total"}


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _operation(action: ActionSpec) -> dict[str, Any]:
    for path, item in SPEC["paths"].items():
        if _normalise(path) == _normalise(action.path):
            operation: dict[str, Any] | None = item.get(action.method.lower())
            if operation is not None:
                return operation
    raise AssertionError(f"{action.id}: no {action.method} {action.path} in the official spec")


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _wire_schema(operation: dict[str, Any], param: ParamSpec) -> dict[str, Any] | None:
    if param.location == "form":
        body = operation.get("requestBody", {}).get("content", {})
        form = body.get("application/x-www-form-urlencoded", {}).get("schema", {})
        found: dict[str, Any] | None = form.get("properties", {}).get(param.wire_name)
        return found
    for candidate in operation.get("parameters", []):
        if candidate["name"] == param.wire_name and candidate["in"] == param.location:
            return dict(candidate["schema"])
    return None


def _response_schema(operation: dict[str, Any]) -> dict[str, Any]:
    for code in ("200", "201"):
        if code in operation["responses"]:
            content = operation["responses"][code]["content"]["application/json"]
            return _resolve(content["schema"])
    raise AssertionError("no success response")


# Media actions fetch a file, not a JSON operation (see test_the_media_action_fetches_media).
ACTIONS = [a for a in default_connector().actions.values() if a.kind == "http"]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.id)
def test_each_wire_parameter_exists_with_a_compatible_type(action: ActionSpec) -> None:
    """Each parameter exists for the operation, at its location, with a compatible type."""
    operation = _operation(action)
    for param in action.parameters:
        schema = _wire_schema(operation, param)
        assert schema is not None, f"{action.id}.{param.key}: no {param.location} {param.wire_name}"
        schema = _resolve(schema)
        if param.type == "array":
            assert schema["type"] == "array", f"{action.id}.{param.key}"
            assert param.items is not None
            schema, ours = _resolve(schema["items"]), param.items.type
        else:
            ours = param.type
        wire = (schema["type"], schema.get("format"))
        assert wire in COMPATIBLE[ours] or (wire[0], None) in COMPATIBLE[ours], (
            f"{action.id}.{param.key}: {ours} vs {wire}"
        )
        if "enum" in schema and param.enum is not None:
            assert set(param.enum) <= set(schema["enum"]), f"{action.id}.{param.key}"


@pytest.mark.parametrize(
    "action", [a for a in ACTIONS if a.returns is not None], ids=lambda a: a.id
)
def test_each_output_field_exists_in_the_official_schema(action: ActionSpec) -> None:
    """Each output field (through the action's response map) is in the official response."""
    connector = default_connector()
    assert action.returns is not None
    official = _response_schema(_operation(action))["properties"]
    definition = connector.definitions[action.returns]
    for field in definition.fields:
        wire = action.response.get(field.path, field.path)
        if field.path in REMOVED_BY_TWILIO:
            assert wire not in official and "null" in field.description
            continue
        assert wire in official, f"{action.returns}.{field.path} ({wire}) is not in the spec"
        if field.items_ref is not None:
            item_schema = _resolve(official[wire]["items"])
            for item_field in connector.definitions[field.items_ref].fields:
                assert item_field.path in item_schema["properties"], (
                    f"{field.items_ref}.{item_field.path}"
                )


def test_status_values_match_the_official_enum() -> None:
    """The known statuses and directions are exactly Twilio's."""
    message = {f.path: f for f in default_connector().definitions["Message"].fields}
    schemas = SPEC["components"]["schemas"]
    assert set(message["status"].enum or ()) == set(schemas["message_enum_status"]["enum"])
    assert set(message["direction"].enum or ()) == set(schemas["message_enum_direction"]["enum"])


def test_the_media_action_fetches_media() -> None:
    """download_media's path is the official Media resource's, without its .json: the content URL."""
    (media,) = [a for a in default_connector().actions.values() if a.kind == "media"]
    assert media.method == "GET"
    fetch = _operation(attrs.evolve(media, path=media.path + ".json"))
    assert fetch["operationId"] == "FetchMedia"
