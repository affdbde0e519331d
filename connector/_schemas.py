"""
JSON Schemas of each action's inputs and output, for hosts that render forms or check
expressions. They describe the JSON form: what a workflow writes as inputs, and what
downstream steps read from ``to_json``.
"""

from __future__ import annotations

from typing import Any

from ._manifest import ActionSpec, ConnectorSpec, FieldSpec, ItemSpec, ParamSpec


__all__ = ["input_schema", "output_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_PHONE = r"^(\+[1-9][0-9]{0,14}|[a-z][a-z0-9-]*:\S+)$"


def _scalar(spec: ParamSpec | ItemSpec) -> dict[str, Any]:
    out: dict[str, Any]
    if spec.type == "date":
        out = {"type": "string", "format": "date"}
    elif spec.type == "datetime":
        out = {"type": "string", "format": "date-time"}
    elif spec.type == "object" or spec.format == "json":
        out = {"type": ["object", "string"]} if spec.format == "json" else {"type": "object"}
    else:
        out = {"type": spec.type}
    if spec.format == "uri":
        out["format"] = "uri"
    elif spec.format == "phone":
        out["pattern"] = _PHONE
    elif spec.format == "sender":
        out["x-format"] = "sender"
    if spec.pattern is not None:
        out["pattern"] = spec.pattern
    for attr, keyword in (
        ("min_length", "minLength"),
        ("max_length", "maxLength"),
        ("minimum", "minimum"),
        ("maximum", "maximum"),
    ):
        value = getattr(spec, attr)
        if value is not None:
            out[keyword] = value
    if spec.enum is not None:
        out["enum"] = list(spec.enum)
    return out


def input_schema(action: ActionSpec) -> dict[str, Any]:
    """
    The JSON Schema of an action's inputs.

    Each property keeps the manifest's title and description, plus ``x-wire`` (where the
    value goes), ``x-visibility`` and ``x-secret``.
    """
    properties: dict[str, Any] = {}
    for param in action.parameters:
        if param.type == "array":
            assert param.items is not None
            prop: dict[str, Any] = {"type": "array", "items": _scalar(param.items)}
            if param.min_items is not None:
                prop["minItems"] = param.min_items
            if param.max_items is not None:
                prop["maxItems"] = param.max_items
        else:
            prop = _scalar(param)
        prop["title"] = param.title
        if param.description:
            prop["description"] = param.description
        if param.default is not None:
            prop["default"] = param.default
        prop["x-wire"] = {"in": param.location, "name": param.wire_name}
        prop["x-visibility"] = param.visibility
        if param.secret:
            prop["x-secret"] = True
        properties[param.key] = prop
    if action.paging is not None:
        properties[action.paging.next_link] = {
            "type": "string",
            "title": "Next page link",
            "description": "The next-page link of a previous page, to fetch that page.",
            "x-visibility": "internal",
        }
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "title": f"{action.id} inputs",
        "type": "object",
        "properties": properties,
        "required": [p.key for p in action.parameters if p.required],
        "additionalProperties": False,
    }
    if action.deprecated:
        schema["deprecated"] = True
    return schema


def _field(field: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any]
    if field.type == "array":
        if field.items_ref is not None:
            items: dict[str, Any] = {"$ref": f"#/$defs/{field.items_ref}"}
        else:
            items = {"type": field.items_type or "object"}
        out = {"type": "array", "items": items}
    elif field.type == "datetime":
        out = {"type": ["string", "null"], "format": "date-time"}
    elif field.type == "date":
        out = {"type": ["string", "null"], "format": "date"}
    elif field.type == "decimal":
        out = {"type": ["string", "null"], "x-format": "decimal"}
    else:
        out = {"type": [field.type, "null"]}
    if field.format == "uri":
        out["x-format"] = "uri-reference"
    if field.enum is not None:
        # Listed, not enforced: Twilio adds values and outputs keep them.
        out["examples"] = list(field.enum)
    out["title"] = field.title
    if field.description:
        out["description"] = field.description
    return out


def output_schema(connector: ConnectorSpec, action: ActionSpec) -> dict[str, Any]:
    """The JSON Schema of an action's output in its JSON form (``null`` if it has none)."""
    if action.returns is None:
        return {"$schema": _DIALECT, "title": f"{action.id} output", "type": "null"}
    needed: list[str] = [action.returns]
    defs: dict[str, Any] = {}
    while needed:
        name = needed.pop()
        if name in defs:
            continue
        definition = connector.definitions[name]
        defs[name] = {
            "title": definition.title,
            "description": definition.description,
            "type": "object",
            "properties": {f.path: _field(f) for f in definition.fields},
        }
        needed += [f.items_ref for f in definition.fields if f.items_ref]
    return {
        "$schema": _DIALECT,
        "title": f"{action.id} output",
        "$ref": f"#/$defs/{action.returns}",
        "$defs": defs,
    }
