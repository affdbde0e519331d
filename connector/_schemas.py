"""
JSON Schemas of each action's inputs and output, for hosts that render forms or check
expressions. They describe the JSON form: what a workflow writes as inputs, and what
downstream steps read from ``to_json_data``.
"""

from __future__ import annotations

from typing import Any

from ._manifest import ActionSpec, ConnectorSpec, FieldSpec, ParamSpec, Rule
from ._types import FORMATS, TYPES, Invalid
from ._validation import compile_param


__all__ = ["input_schema", "output_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _also_null(prop: dict[str, Any]) -> dict[str, Any]:
    """*prop*, also admitting ``null`` (an input that is not given)."""
    if "enum" in prop:
        prop["enum"] = [*prop["enum"], None]
    if "anyOf" in prop:
        prop["anyOf"] = [*prop["anyOf"], {"type": "null"}]
    if "type" in prop:
        types = prop["type"]
        prop["type"] = [*([types] if isinstance(types, str) else types), "null"]
    return prop


def _property(param: ParamSpec) -> dict[str, Any]:
    compiled = compile_param(param)
    prop = dict(compiled.schema)
    try:
        compiled.coerce("")
        takes_empty = True
    except Invalid:
        takes_empty = False
    # The validator reads null, and "" for a required input, as "not given": fine when
    # the input is optional or has a default, an error otherwise.
    if param.required and param.default is None:
        if takes_empty:
            prop["minLength"] = max(prop.get("minLength", 0), 1)
    else:
        prop = _also_null(prop)
        if param.required and not takes_empty:
            prop = {"anyOf": [prop, {"const": ""}]}
    return prop


def _given(param: ParamSpec, *, empty: list[Any]) -> dict[str, Any] | None:
    """A schema that holds when the input is given (None: it always is, by default)."""
    if param.default is not None and compile_param(param).coerce(param.default) not in empty:
        return None
    by_name = [
        {"required": [name], "properties": {name: {"not": {"enum": empty}}}} for name in param.names
    ]
    return by_name[0] if len(by_name) == 1 else {"anyOf": by_name}


def _rule(action: ActionSpec, rule: Rule) -> dict[str, Any] | None:
    if rule.kind == "at_least_one":
        # An empty list counts as not given.
        given = [_given(action.parameter(k), empty=[None, []]) for k in rule.keys]
        if any(g is None for g in given):
            return None
        return {"anyOf": given}
    assert rule.subject is not None
    needed = [g for k in rule.keys if (g := _given(action.parameter(k), empty=[None]))]
    if not needed:
        return None
    then = needed[0] if len(needed) == 1 else {"allOf": needed}
    subject = _given(action.parameter(rule.subject), empty=[None])
    return then if subject is None else {"if": subject, "then": then}


def input_schema(action: ActionSpec) -> dict[str, Any]:
    """
    The JSON Schema of an action's inputs.

    It accepts exactly what the connector's validator accepts, including the text forms
    of numbers and booleans that command lines and YAML produce, and the cross-input
    rules. Each property keeps the manifest's title and description, plus ``x-wire``
    (where the value goes), ``x-visibility`` and ``x-secret``.
    """
    properties: dict[str, Any] = {}
    for param in action.parameters:
        prop = _property(param)
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
        if param.aliases:
            # twilio-python's names are accepted too (never two names of one input).
            prop["x-aliases"] = list(param.aliases)
            for alias in param.aliases:
                properties[alias] = {
                    **{k: v for k, v in prop.items() if k != "x-aliases"},
                    "x-alias-of": param.key,
                }
    if action.paging is not None:
        properties[action.paging.next_link] = {
            "type": ["string", "null"],
            "title": "Next page link",
            "description": "The next-page link of a previous page, to fetch that page.",
            "x-visibility": "internal",
        }
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "title": f"{action.id} inputs",
        "type": "object",
        "properties": properties,
        # A default fills a required input that is not given.
        "required": [
            p.key for p in action.parameters if p.required and p.default is None and not p.aliases
        ],
        "additionalProperties": False,
    }
    rules: list[dict[str, Any]] = [
        # A required input with aliases is given by any one of its names.
        {"anyOf": [{"required": [name]} for name in p.names]}
        for p in action.parameters
        if p.required and p.default is None and p.aliases
    ]
    rules += [
        {"not": {"required": [first, second]}}
        for p in action.parameters
        for i, first in enumerate(p.names)
        for second in p.names[i + 1 :]
    ]
    rules += [r for r in (_rule(action, rule) for rule in action.rules) if r is not None]
    if rules:
        schema["allOf"] = rules
    if action.deprecated:
        schema["deprecated"] = True
    return schema


def _field(field: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any]
    if field.type == "array":
        if field.items_ref is not None:
            items: dict[str, Any] = {"$ref": f"#/$defs/{field.items_ref}"}
        else:
            items = dict(TYPES[field.items_type or "object"].output_schema)
        out = {"type": "array", "items": items}
    elif field.ref is not None:
        out = {"anyOf": [{"$ref": f"#/$defs/{field.ref}"}, {"type": "null"}]}
    else:
        out = dict(TYPES[field.type].output_schema)
    if field.format is not None and field.format in FORMATS:
        out.update(FORMATS[field.format].output_schema)
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
        needed += [name for f in definition.fields for name in (f.items_ref, f.ref) if name]
    return {
        "$schema": _DIALECT,
        "title": f"{action.id} output",
        "$ref": f"#/$defs/{action.returns}",
        "$defs": defs,
    }
