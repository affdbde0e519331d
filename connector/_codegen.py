"""
Generate ``connector/models.py``, frozen attrs classes for the shipped manifest's
definitions (and TypedDicts of their JSON forms), and ``connector/_signatures.pyi``, the
overloads that make ``Connection.call`` and ``Plugin.invoke`` return them, so that type
checkers see every output field; and list the shipped actions as the ``examples`` of
``uses`` in the workflow JSON Schema, which editors offer as completions.

Run ``python -m connector._codegen`` (or ``nox -s codegen``) after changing a
manifest; ``tests/test_models.py`` fails while a checked-in file is stale.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ._convert import attribute_name
from ._manifest import (
    ActionSpec,
    ConnectorSpec,
    DefinitionSpec,
    FieldSpec,
    load_manifest,
    shipped_manifest_paths,
)
from ._types import TYPES


__all__ = [
    "attribute_name",
    "generate",
    "generate_signatures",
    "json_name",
    "marker",
    "workflow_schema_text",
]

#: The line of the workflow schema's ``uses`` that lists its examples, and the built-in
#: actions it lists after the manifest's (built-ins live in ``connector.workflow``).
_USES_EXAMPLES = re.compile(r'^(?P<indent> *)"examples": \["[^\n]*\],?\n', re.M)
_USES = re.compile(
    r'(?P<head>\n(?P<indent> *)"uses": \{\n(?:(?P=indent)  [^\n]*\n)*?)(?=(?P=indent)\})'
)


def _q(text: str) -> str:
    """A double-quoted Python string literal, as the formatter writes them."""
    return json.dumps(text)


def _annotation(field: FieldSpec) -> str:
    if field.type == "array":
        inner = field.items_ref or TYPES[field.items_type or "object"].annotation
        return f"tuple[{inner}, ...]"
    if field.ref:
        return f"{field.ref} | None"
    if field.enum_class:
        return f"{field.enum_class} | None"
    return f"{TYPES[field.type].annotation} | None"


def _converter(type_: str) -> str:
    """The generated code's name for a type's wire converter (``_t.integer``)."""
    return f"_t.{TYPES[type_].from_wire.__name__}"


def _from_wire(field: FieldSpec) -> str:
    get = f"get({_q(field.path)})"
    if field.type == "array":
        if field.items_ref:
            return f"tuple({field.items_ref}.from_wire(x) for x in {get} or ())"
        return f"tuple({_converter(field.items_type or 'object')}(x) for x in {get} or ())"
    if field.ref:
        return f"_nested({field.ref}, {get})"
    if field.enum_class:
        return f"_enum({field.enum_class}, {get})"
    if field.type == "string":
        # JSON strings need no conversion; skipping the call is measurable per page.
        return get
    return f"{_converter(field.type)}({get})"


def _to_json(field: FieldSpec, value: str) -> str:
    """The JSON form of *value*, an expression holding the field's Python value."""
    if field.type == "array":
        if field.items_ref:
            return f"[x.to_json_data() for x in {value}]"
        return f"[_c.to_json_data(x) for x in {value}]"
    if field.ref:
        return f"None if {value} is None else {value}.to_json_data()"
    if field.enum_class:
        return f"_c.enum_value({value})"
    to_json = TYPES[field.type].to_json
    return value if to_json is None else f"_t.{to_json.__name__}({value})"


def _data_from_wire(field: FieldSpec) -> str:
    """What ``to_json_data`` gives for the field of ``from_wire``, computed in one step."""
    get = f"get({_q(field.path)})"
    if field.items_ref:
        return f"[{field.items_ref}.data_from_wire(x) for x in {get} or ()]"
    if field.ref:
        return f"_nested_data({field.ref}, {get})"
    if field.type == "array":
        return f"[_c.to_json_data(x) for x in {_from_wire(field)}]"
    if field.type != "string" and TYPES[field.type].to_json is TYPES[field.type].from_wire:
        return _from_wire(field)  # already a copy in its JSON form (an object)
    return _to_json(field, _from_wire(field))


def json_name(definition: str) -> str:
    """The name of the TypedDict of a definition's JSON form."""
    return f"{definition}Json"


def _json_annotation(field: FieldSpec) -> str:
    if field.type == "array":
        if field.items_ref:
            return f"list[{json_name(field.items_ref)}]"
        return f"list[{TYPES[field.items_type or 'object'].json_annotation}]"
    if field.ref:
        return f"{json_name(field.ref)} | None"
    if field.enum_class:
        return "str | None"
    return f"{TYPES[field.type].json_annotation} | None"


def _json_dict(definition: DefinitionSpec) -> list[str]:
    name = json_name(definition.name)
    doc = f'"""The JSON form of :class:`{definition.name}` (``to_json_data()``, ``Plugin.invoke``)."""'
    if all(f.path.isidentifier() and not keyword.iskeyword(f.path) for f in definition.fields):
        return [
            "",
            "",
            f"class {name}(TypedDict):",
            f"    {doc}",
            "",
            *[f"    {f.path}: {_json_annotation(f)}" for f in definition.fields],
        ]
    # Keys such as "from" or "@odata.nextLink" need the functional form.
    return [
        "",
        "",
        f"{name} = TypedDict(",
        f"    {_q(name)},",
        "    {",
        *[f"        {_q(f.path)}: {_json_annotation(f)}," for f in definition.fields],
        "    },",
        ")",
        doc,
    ]


def _quote_doc(text: str) -> str:
    return " ".join(text.split()).replace("\\", "\\\\").replace('"""', r"\"\"\"")


def _class(definition: DefinitionSpec) -> list[str]:
    lines = [
        "",
        "",
        "@attrs.frozen",
        f"class {definition.name}:",
        '    """',
        f"    {_quote_doc(definition.description or definition.title)}",
        '    """',
        "",
    ]
    for field in definition.fields:
        attr = attribute_name(field.path)
        default = "()" if field.type == "array" else "None"
        lines.append(f"    {attr}: {_annotation(field)} = {default}")
        doc = field.description or field.title
        if attr != field.path:
            doc = f"{doc} (JSON: ``{field.path}``)".strip()
        lines.append(f'    """{_quote_doc(doc)}"""')
    lines += [
        "",
        "    @classmethod",
        f"    def from_wire(cls, data: Mapping[str, Any]) -> {definition.name}:",
        '        """Build from a decoded Twilio response."""',
        "        get = data.get",
        "        return cls(",
    ]
    for field in definition.fields:
        lines.append(f"            {attribute_name(field.path)}={_from_wire(field)},")
    lines += [
        "        )",
        "",
        "    @classmethod",
        "    def data_from_wire(cls, data: Mapping[str, Any]) -> dict[str, Any]:",
        '        """',
        "        The JSON form of a decoded Twilio response, as ``from_wire(data).to_json_data()``",
        "        gives it, without building the model: what an executor that keeps plain data",
        "        (a workflow's journal) wants.",
        '        """',
        "        get = data.get",
        "        return {",
    ]
    for field in definition.fields:
        lines.append(f"            {_q(field.path)}: {_data_from_wire(field)},")
    lines += [
        "        }",
        "",
        "    def to_json_data(self) -> dict[str, Any]:",
        '        """',
        "        Return the JSON form for downstream steps: plain data (dicts, lists, strings,",
        "        numbers, booleans, ``None``) with ISO 8601 dates, ready for ``json.dumps``.",
        '        """',
        "        return {",
    ]
    for field in definition.fields:
        lines.append(
            f"            {_q(field.path)}: {_to_json(field, 'self.' + attribute_name(field.path))},"
        )
    lines += [
        "        }",
        "",
        "    def to_json(self) -> dict[str, Any]:",
        '        """Deprecated: :meth:`to_json_data` under its old name (it returns data, not text)."""',
        "        _c.warn_to_json(type(self).__name__)",
        "        return self.to_json_data()",
    ]
    return lines


def generate(spec: ConnectorSpec) -> str:
    """Return the source of the models module for *spec*."""
    enums: dict[str, tuple[str, ...]] = {}
    for definition in spec.definitions.values():
        for field in definition.fields:
            if field.enum_class and field.enum:
                enums[field.enum_class] = field.enum
    names = sorted([*enums, *spec.definitions, *map(json_name, spec.definitions), marker(spec)])
    lines = [
        '"""',
        f"Typed outputs of the {spec.title} connector.",
        "",
        "Generated by ``python -m connector._codegen`` from the manifest; do not edit.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import datetime as dt",
        "import decimal",
        "from collections.abc import Mapping",
        "from typing import Any, TypedDict, TypeVar",
        "",
        "import attrs",
        "",
        "from . import _convert as _c",
        "from . import _types as _t",
        "",
        "",
        "__all__ = [",
        *[f"    {_q(name)}," for name in names],
        "]",
        "",
        '_E = TypeVar("_E", bound=_c.OpenEnum)',
        "",
        "",
        "def _enum(cls: type[_E], value: Any) -> _E | None:",
        "    # A dict lookup first: calling an Enum class costs thirty times more.",
        "    if value is None:",
        "        return None",
        "    member: _E | None = cls._value2member_map_.get(value)  # type: ignore[assignment]",
        "    return cls(value) if member is None else member",
        "",
        "",
        "def _nested(cls: Any, value: Any) -> Any:",
        "    # An object field that follows a definition: its model, or None when absent.",
        "    return cls.from_wire(value) if isinstance(value, Mapping) else None",
        "",
        "",
        "def _nested_data(cls: Any, value: Any) -> Any:",
        "    # The same field's JSON form, without the model.",
        "    return cls.data_from_wire(value) if isinstance(value, Mapping) else None",
    ]
    lines += [
        "",
        "",
        f"class {marker(spec)}:",
        '    """',
        f"    The {spec.title} connector as a type parameter: ``Connection[{marker(spec)}]``, what",
        "    ``Connection()`` makes, returns these models for the manifest's action ids.",
        '    """',
    ]
    for name, values in enums.items():
        lines += [
            "",
            "",
            f"class {name}(_c.OpenEnum):",
            '    """Known values; unknown ones are kept as pseudo-members."""',
            "",
        ]
        for value in values:
            lines.append(f"    {attribute_name(value).upper()} = {_q(value)}")
    for definition in _ordered(spec):
        lines += _class(definition)
    for definition in _ordered(spec):
        lines += _json_dict(definition)
    lines += [
        "",
        "",
        "DEFINITIONS: Mapping[str, Any] = {",
        *[f"    {_q(name)}: {name}," for name in spec.definitions],
        "}",
        '"""The generated class of each definition, by name."""',
        "",
    ]
    return "\n".join(lines)


def marker(spec: ConnectorSpec) -> str:
    """The name of the class that stands for the connector in ``Connection[...]``."""
    return spec.id.capitalize()


def _returns(spec: ConnectorSpec, action: ActionSpec) -> str:
    return action.returns or "None"


def _returns_json(spec: ConnectorSpec, action: ActionSpec) -> str:
    return json_name(action.returns) if action.returns else "None"


def _items(spec: ConnectorSpec, action: ActionSpec) -> str:
    assert action.paging is not None and action.returns is not None
    field = next(
        f for f in spec.definitions[action.returns].fields if f.path == action.paging.items
    )
    return field.items_ref or TYPES[field.items_type or "object"].annotation


def _overloads(
    spec: ConnectorSpec,
    name: str,
    params: list[str],
    returns: Callable[[ConnectorSpec, ActionSpec], str],
    *,
    prefix: str = "async def",
    paging_only: bool = False,
    generic: str = "Any",
) -> list[str]:
    """One overload per action id (bare and prefixed), then one for any connection."""
    out = []
    for action in spec.actions.values():
        if paging_only and action.paging is None:
            continue
        ids = f"Literal[{_q(action.id)}, {_q(f'{spec.id}/{action.id}')}]"
        out += [
            "@overload",
            f"{prefix} {name}(",
            f"    self: {params[0]}[{marker(spec)}],",
            f"    action_id: {ids},",
            *[f"    {p}," for p in params[1:]],
            f") -> {returns(spec, action)}: ...",
        ]
    out += [
        "@overload",
        f"{prefix} {name}(",
        f"    self: {params[0]}[object],",
        "    action_id: str,",
        *[f"    {p}," for p in params[1:]],
        f") -> {generic}: ...",
    ]
    return out


def generate_signatures(spec: ConnectorSpec) -> str:
    """Return the source of the stub that types ``Connection.call`` and ``paginate``."""
    models = sorted(
        {
            marker(spec),
            *(a.returns for a in spec.actions.values() if a.returns),
            *(_items(spec, a) for a in spec.actions.values() if a.paging is not None),
        }
    )
    inputs = "inputs: Mapping[str, Any] | None = None"
    models += sorted({json_name(a.returns) for a in spec.actions.values() if a.returns})
    models.sort()
    lines = [
        '"""',
        "Typed signatures of ``Connection.call`` and ``Connection.paginate``: on a",
        f"``Connection[{marker(spec)}]`` (what ``Connection()`` makes) each action id of the",
        f"{spec.title} manifest returns its generated model; on any other connection, ``Any``.",
        f"Likewise ``Plugin.invoke`` and ``invoke_sync`` of a ``Plugin[{marker(spec)}]``",
        "(``connector.plugin.plugin``) return the model's JSON form as a TypedDict.",
        "",
        "Generated by ``python -m connector._codegen`` from the manifest; do not edit.",
        '"""',
        "",
        "from collections.abc import AsyncIterator, Callable, Mapping",
        "from typing import Any, Literal, overload",
        "",
        "from ._connection import Connection, Limiter",
        "from .models import (",
        *[f"    {name}," for name in models],
        ")",
        "from .plugin import Plugin",
        "",
        *_overloads(spec, "call", ["Connection", inputs], _returns),
        *_overloads(
            spec,
            "paginate",
            ["Connection", inputs, "*", "max_items: int | None = None"],
            lambda s, a: f"AsyncIterator[{_items(s, a)}]",
            prefix="def",
            paging_only=True,
            generic="AsyncIterator[Any]",
        ),
        *_overloads(
            spec,
            "invoke",
            [
                "Plugin",
                "inputs: Mapping[str, Any] | None",
                "connection: Mapping[str, str] | Connection",
                "*",
                "limiter: Limiter | None = None",
            ],
            _returns_json,
        ),
        *_overloads(
            spec,
            "invoke_sync",
            [
                "Plugin",
                "inputs: Mapping[str, Any] | None",
                "connection: Mapping[str, str]",
                "*",
                "limiter_factory: Callable[[], Limiter] | None = None",
            ],
            _returns_json,
            prefix="def",
        ),
        "",
    ]
    return "\n".join(lines)


def _ordered(spec: ConnectorSpec) -> list[DefinitionSpec]:
    """Definitions with the ones they refer to first."""
    done: dict[str, DefinitionSpec] = {}

    def visit(definition: DefinitionSpec) -> None:
        if definition.name in done:
            return
        for field in definition.fields:
            for name in (field.items_ref, field.ref):
                if name:
                    visit(spec.definitions[name])
        done[definition.name] = definition

    for definition in spec.definitions.values():
        visit(definition)
    return list(done.values())


def workflow_schema_text(spec: ConnectorSpec, text: str, builtins: list[str]) -> str:
    """
    The workflow JSON Schema *text* with the ``examples`` of a step's ``uses`` listing
    every action of *spec* that is not deprecated, then *builtins*
    (``workflow/write_json``...), one line, the rest of the file as it was.
    """
    names = [f"{spec.id}/{a.id}" for a in spec.actions.values() if not a.deprecated]
    listed = json.dumps([*sorted(names), *builtins])
    found = _USES.search(text)
    if found is None:
        raise ValueError("the workflow schema has no step 'uses' to list examples in")
    head = _USES_EXAMPLES.sub("", found["head"])
    indent = found["indent"] + "  "
    head = head.rstrip("\n")
    if not head.endswith(","):
        head += ","
    return text[: found.start()] + f'{head}\n{indent}"examples": {listed}\n' + text[found.end() :]


def main() -> int:
    """Regenerate ``connector/models.py``, ``connector/_signatures.pyi``, and the workflow schema's action list."""
    manifest = next(p for p in shipped_manifest_paths() if p.stem == "twilio")
    spec = load_manifest(manifest)
    schema = Path(__file__).with_name("schemas") / "workflow.schema.json"
    current = schema.read_text(encoding="utf-8")
    builtins = [u for u in _listed_uses(current) if u.startswith("workflow/")]
    schema.write_text(workflow_schema_text(spec, current, builtins), encoding="utf-8")
    print(f"wrote {schema}", file=sys.stderr)
    for name, source in (
        ("models.py", generate(spec)),
        ("_signatures.pyi", generate_signatures(spec)),
    ):
        target = Path(__file__).with_name(name)
        target.write_text(source, encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    return 0


def _listed_uses(text: str) -> list[str]:
    """The examples the workflow schema lists for ``uses`` now."""
    schema = json.loads(text)
    uses = schema["$defs"]["step"]["properties"]["uses"]
    return list(uses.get("examples", ["workflow/write_json", "workflow/write_jsonl"]))


if __name__ == "__main__":
    raise SystemExit(main())
