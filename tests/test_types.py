"""The type registry: the action validator and the host JSON Schemas accept the same values."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import pytest

from connector import ActionSpec, InvalidInputError, ParamSpec, default_connector
from connector._manifest import ItemSpec
from connector._schemas import input_schema
from connector._types import (
    FORMATS,
    TYPES,
    anchored,
    coerce_workflow_input,
    compile_input,
    is_workflow_input,
    numeral_pattern,
)
from connector._validation import compile_action


FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER

SID = "SM" + "0" * 32

# JSON values, each good or bad for some type, format or constraint.
VALUES: list[Any] = [
    # strings that are phone numbers, senders or channel addresses, or nearly
    "+15551234567",
    "+4",
    "+123456789012345",
    "+1234567890123456",
    "15551234567",
    "+05551234567",
    "+1 555 123",
    "whatsapp:+15551234567",
    "whatsapp:5551234",
    "whatsapp:notaphone",
    "whatsapp:+1555:x",
    "WhatsApp:+15551234567",
    "messenger:1234567",
    "messenger:",
    "rcs:my-agent",
    "MyShop",
    "My Shop 24",
    "TwelveLetter",
    "12345",
    "12",
    "123456789",
    "007",
    # URLs
    "https://x.io/a.png",
    "http://x.io",
    "HTTPS://X.IO/a",
    "https://user@x.io:8080/p?q=1#f",
    "https://[::1]/a",
    "https://x.io/café",
    "ftp://x.io/a",
    "https://",
    "https:///a",
    "https://x.io/a b",
    "https://x.io:port/",
    "//x.io/a",
    "x.io/a",
    # numerals
    "0",
    "1",
    "-1",
    "+25",
    "0025",
    " 25",
    "25 ",
    "1_000",
    "60",
    "1000",
    "1001",
    "36000",
    "36001",
    "1.5",
    "0.05",
    "0.5",
    ".5",
    "5.",
    ".",
    "-0",
    "-0.0",
    "-0.5",
    "-5",
    "-10",
    "-11",
    "0.24",
    "0.25",
    "2.75",
    "2.7501",
    "1e3",
    "nan",
    "Infinity",
    "٣",
    # booleans as text
    "true",
    "True",
    "TRUE",
    "tRuE",
    "yes",
    "on",
    "ON",
    "off",
    "no",
    "false",
    "y",
    # dates and date-times
    "2024-01-02",
    "2024-02-29",
    "2023-02-29",
    "2024-1-2",
    "20240102",
    "0000-01-01",
    "2026-05-01T12:00:00Z",
    "2026-05-01T12:00:00+02:00",
    "2026-05-01T12:00:00.123456789-05:30",
    "2026-05-01T12:00:00",
    "2026-05-01 12:00:00Z",
    "2026-05-01t12:00:00z",
    "2026-05-01T12:00Z",
    "2026-05-01T24:00:00Z",
    "2026-05-01T12:00:60Z",
    "2026-05-01T12:00:00+05:60",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    # SIDs and enums
    SID,
    "MM" + "f" * 32,
    "SM" + "0" * 31,
    "MG" + "a" * 32,
    "HX" + "b" * 32,
    "AP" + "c" * 32,
    "fixed",
    "retain",
    "discard",
    "obfuscate",
    "enable",
    "disable",
    "canceled",
    # JSON text, free text, empties, newlines
    '{"1": "Ana"}',
    "not json",
    "",
    " ",
    "hello world",
    "x" * 1600,
    "x" * 1601,
    "25\n",
    "+15551234567\n",
    SID + "\n",
    "2024-01-02\n",
    "2026-05-01T12:00:00Z\n",
    "true\n",
    # text that cannot be sent: NUL, lone surrogates (undecodable bytes); emoji can
    "a\x00b",
    "\x00",
    "\udcff",
    "ok\ud800x",
    "https://x.io/a\x00",
    "+15551234567\udcff",
    '{"1": "\x00"}',
    "😀 emoji",
    # numbers
    0,
    1,
    -1,
    -5,
    -10,
    2,
    12,
    25,
    60,
    100,
    1000,
    1001,
    12345,
    36000,
    36001,
    99999999,
    100000000,
    2**53 - 1,
    2**53,
    0.0,
    1.0,
    1.5,
    0.05,
    0.5,
    -0.5,
    0.25,
    2.75,
    12345.0,
    1e300,
    # everything else
    True,
    False,
    None,
    [],
    ["https://x.io/a"],
    ["https://x.io/a", "http://y.io/b"],
    ["https://x.io/a"] * 10,
    ["https://x.io/a"] * 11,
    ["ftp://x.io/a"],
    ["a", "b"],
    [1, 2],
    [None],
    [""],
    [["nested"]],
    {},
    {"1": "Ana"},
]


def param(key: str = "v", type: str = "string", **more: Any) -> ParamSpec:
    """A form parameter; ``items`` may be given as a dict of ItemSpec fields."""
    items = more.pop("items", None)
    return ParamSpec(
        key=key,
        title=key,
        type=type,
        location="form",
        wire_name=key,
        items=ItemSpec(**items) if items is not None else None,
        **more,
    )


# One probe per type, format and kind of constraint.
PROBES: dict[str, ParamSpec] = {
    "string": param(),
    "string, required": param(required=True),
    "string, lengths 2..5": param(min_length=2, max_length=5),
    "string, max_length 0": param(max_length=0),
    "string, min_length 20": param(min_length=20),
    "string, pattern": param(pattern="^[A-Z]{2}[0-9]+$"),
    "string, digits pattern": param(pattern="[0-9]{2}"),
    "string, enum": param(enum=("fixed", "12", "007", 5)),
    "string, enum, required": param(enum=("fixed", "retain"), required=True),
    "string, required with a default": param(required=True, default="hi"),
    "phone": param(format="phone"),
    "phone, required": param(format="phone", required=True),
    "sender": param(format="sender"),
    "sender, max_length 4": param(format="sender", max_length=4),
    "sender, pattern": param(format="sender", pattern="^[0-9]+$"),
    "uri": param(format="uri"),
    "uri, max_length 20": param(format="uri", max_length=20),
    "integer": param(type="integer"),
    "integer, 1..1000": param(type="integer", minimum=1, maximum=1000),
    "integer, at least 0.5": param(type="integer", minimum=0.5),
    "integer, -10..-2": param(type="integer", minimum=-10, maximum=-2),
    "integer, empty range": param(type="integer", minimum=5, maximum=3),
    "integer, enum": param(type="integer", enum=(1, 5, "12", 1000)),
    "integer, required with a default": param(type="integer", required=True, default=3),
    "number": param(type="number"),
    "number, at least 0": param(type="number", minimum=0),
    "number, 0.25..2.75": param(type="number", minimum=0.25, maximum=2.75),
    "number, at most -0.5": param(type="number", maximum=-0.5),
    "number, enum": param(type="number", enum=(0.5, 2, 1000)),
    "boolean": param(type="boolean"),
    "boolean, enum": param(type="boolean", enum=(True,)),
    "date": param(type="date"),
    "date, enum": param(type="date", enum=("2024-01-02", "2024-02-29")),
    "datetime": param(type="datetime"),
    "datetime, enum": param(type="datetime", enum=("2026-05-01T12:00:00Z",)),
    "object": param(type="object"),
    "json": param(type="object", format="json"),
    "json on a string": param(format="json"),
    "constraints that do not apply": param(type="integer", min_length=3, pattern="x"),
    "array of uri, at most 10": param(
        type="array", items={"type": "string", "format": "uri"}, max_items=10
    ),
    "array of strings, at least 2": param(type="array", items={"type": "string"}, min_items=2),
    "array of integers 1..60": param(
        type="array", items={"type": "integer", "minimum": 1, "maximum": 60}
    ),
    "array of enum strings": param(type="array", items={"type": "string", "enum": ["a", "b"]}),
    "array of booleans, required": param(type="array", items={"type": "boolean"}, required=True),
    "array of dates": param(type="array", items={"type": "date"}),
}


def probe_action(*params: ParamSpec, **more: Any) -> ActionSpec:
    return ActionSpec(
        id="probe",
        title="Probe",
        description="",
        method="POST",
        path="/probe",
        parameters=params,
        returns=None,
        **more,
    )


def disagreements(action: ActionSpec, instances: Iterator[dict[str, Any]]) -> list[str]:
    """Each instance that one side accepts and the other refuses, described."""
    schema = input_schema(action)
    jsonschema.Draft202012Validator.check_schema(schema)
    by_schema = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    validate = compile_action(action).validate
    found = []
    for instance in instances:
        try:
            validate(instance)
            ours = True
        except InvalidInputError:
            ours = False
        theirs = by_schema.is_valid(instance)
        if ours != theirs:
            found.append(f"{action.id} {instance!r}: validator {ours}, schema {theirs}")
    return found


@pytest.mark.parametrize("name", list(PROBES))
def test_validator_and_schema_agree_on_every_type_and_format(name: str) -> None:
    """For each type, format and constraint, the JSON Schema accepts what the validator does."""
    spec = PROBES[name]
    instances = itertools.chain([{}], ({"v": value} for value in VALUES))
    assert disagreements(probe_action(spec), instances) == []


# Valid inputs of each shipped action, which the test then varies one key at a time.
BASES: dict[str, dict[str, Any]] = {
    "get_message": {"MessageId": SID},
    "list_messages": {},
    "list_messages_v2": {},
    "send_text_message": {"from": "+15005550006", "to": "+15551234567", "body": "hello"},
    "send_message": {"from": "+15005550006", "to": "+15551234567", "body": "hello"},
    "update_message": {"MessageId": SID, "body": ""},
    "delete_message": {"MessageId": SID},
    "list_message_media": {"MessageId": SID},
    "download_media": {
        "url": f"/2010-04-01/Accounts/AC{'0' * 32}/Messages/{SID}/Media/ME{'0' * 32}"
    },
    "wait_for_reply": {
        "to": "+15551234567",
        "from": "+15005550006",
        "after": "2026-05-01T12:00:00Z",
        "keywords": ["A", "B"],
        "timeout": 3600,
    },
}


def shipped_cases() -> Iterator[tuple[ActionSpec, dict[str, Any]]]:
    """Every shipped action with each of its inputs set to each value, or left out."""
    for action in default_connector().actions.values():
        base = BASES[action.id]
        yield action, base
        keys = [p.key for p in action.parameters]
        if action.paging is not None:
            keys.append(action.paging.next_link)
        for key in keys:
            yield action, {k: v for k, v in base.items() if k != key}
            for value in VALUES:
                yield action, {**base, key: value}
        for param in action.parameters:
            for alias in param.aliases:
                # twilio-python's name instead of the key, and both at once.
                without = {k: v for k, v in base.items() if k != param.key}
                for value in VALUES:
                    yield action, {**without, alias: value}
                    yield action, {**base, alias: value}


def test_validator_and_schema_agree_on_every_shipped_action() -> None:
    """Every input of every shipped action: the host schema accepts what the validator does."""
    actions = default_connector().actions
    assert set(BASES) == set(actions)
    cases: dict[str, list[dict[str, Any]]] = {}
    for action, instance in shipped_cases():
        cases.setdefault(action.id, []).append(instance)
    found = [d for i, batch in cases.items() for d in disagreements(actions[i], iter(batch))]
    assert found == []
    assert all(compile_action(actions[i]).validate(BASES[i]) is not None for i in BASES)


def test_rules_across_inputs_are_in_the_schema() -> None:
    """at_least_one and requires rules, with defaults counting as given, hold in both."""
    a, b, c = param("a"), param("b", type="array", items={"type": "string"}), param("c")
    with_default = param("d", default="x")
    from connector._manifest import Rule

    action = probe_action(
        a,
        b,
        c,
        with_default,
        rules=(
            Rule("at_least_one", ("a", "b")),
            Rule("requires", ("c",), "a"),
            Rule("requires", ("a",), "d"),
        ),
    )
    values: list[Any] = [None, "", "x", [], ["x"]]
    instances = (
        {k: v for k, v in zip("abc", combo, strict=True) if v is not ...}
        for combo in itertools.product([..., *values], repeat=3)
    )
    assert disagreements(action, instances) == []


@pytest.mark.parametrize("name", ["phone", "sender", "uri"])
def test_format_numerals_are_the_integers_whose_digits_match(name: str) -> None:
    """A format's numeral range is exactly the integers whose digits its pattern admits."""
    fmt = FORMATS[name]
    assert fmt.regex is not None
    pattern = re.compile(anchored(fmt.regex))
    samples = [*range(1200), *range(99_999_000, 100_001_000), 2**53 - 1, 10**12]
    for n in samples:
        in_range = fmt.numerals is not None and fmt.numerals[0] <= n <= fmt.numerals[1]
        assert bool(pattern.search(str(n))) == in_range, n


def numeral_strings() -> list[str]:
    alphabet = "0123456789.+-"
    short = ["".join(p) for n in range(4) for p in itertools.product(alphabet, repeat=n)]
    return [
        *short,
        *["1000", "1001", "0999", "00001000", "36000", "36001", "+1000", "-1000", "1000.0"],
        *["0.25", "0.250", "0.2500001", "0.24999", "2.75", "2.7501", "-2.75", "-0.000"],
        *["12.5", "12.50", "12.51", "99.999", ".4999", "10.", "1000.01", "-.5", "5\n"],
    ]


BOUNDS = [None, *map(decimal.Decimal, ["0", "1", "0.5", "0.25", "1000", "2.75", "-1", "-0.25"])]
BOUNDS += [*map(decimal.Decimal, ["12", "12.5", "99", "100", "9", "10", "-2.75", "-1000"])]


@pytest.mark.parametrize("fraction", [False, True])
def test_numeral_patterns_bound_values_exactly(fraction: bool) -> None:
    """The pattern of numerals within bounds admits exactly the numerals int()/Decimal() put there."""
    grammar = re.compile(
        r"[+-]?[0-9]+" if not fraction else r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    )
    strings = numeral_strings()
    wrong = []
    for low, high in itertools.product(BOUNDS, repeat=2):
        body = numeral_pattern(low, high, fraction=fraction)
        pattern = re.compile(anchored(body)) if body is not None else None
        for text in strings:
            expected = bool(grammar.fullmatch(text)) and (
                (low is None or decimal.Decimal(text) >= low)
                and (high is None or decimal.Decimal(text) <= high)
            )
            if bool(pattern and pattern.search(text)) != expected:
                wrong.append((low, high, text))
    assert wrong == []


def test_every_type_is_described_once() -> None:
    """Each manifest type has its converter, annotation and JSON form; the input types compile."""
    assert set(TYPES) == {
        "string",
        "integer",
        "number",
        "decimal",
        "boolean",
        "datetime",
        "date",
        "object",
    }
    for name, spec in TYPES.items():
        assert spec.from_wire(None) is None
        if spec.compile is not None:
            compile_input(ItemSpec(type=name))


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("boolean", "on", True),
        ("boolean", "OFF", False),
        ("boolean", True, True),
        ("integer", "7", 7),
        ("integer", 7.0, 7),
        ("number", "3", 3),
        ("number", "0.5", 0.5),
        ("number", 3, 3),
        ("number", 2.5, 2.5),
        ("string", 12345, "12345"),
        ("array", '["a", 1]', ["a", 1]),
        ("object", '{"a": 1}', {"a": 1}),
    ],
)
def test_workflow_inputs_coerce_as_action_inputs_do(kind: str, given: Any, expected: Any) -> None:
    """A workflow input is coerced as an action input of its type is, to its JSON form."""
    value = coerce_workflow_input(kind, given)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        ("boolean", True, True),
        ("boolean", "yes", False),
        ("boolean", 1, False),
        ("integer", 3, True),
        ("integer", 3.0, False),
        ("integer", True, False),
        ("number", 3, True),
        ("number", 0.5, True),
        ("string", "x", True),
        ("string", 5, False),
        ("array", [1], True),
        ("array", "[1]", False),
        ("object", {}, True),
    ],
)
def test_workflow_defaults_must_already_have_their_type(kind: str, value: Any, ok: bool) -> None:
    """A workflow's default is taken as written, so it must be its type's JSON form already."""
    assert is_workflow_input(kind, value) is ok


def test_coerced_inputs_keep_the_documented_python_types() -> None:
    """Numbers become Decimals, date-times aware UTC datetimes, for the wire."""
    assert compile_input(ItemSpec(type="number")).coerce("0.50") == decimal.Decimal("0.50")
    moment = compile_input(ItemSpec(type="datetime")).coerce("2026-05-01T12:00:00+02:00")
    assert moment == dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC) and moment.tzinfo is dt.UTC


def test_schemas_are_plain_json() -> None:
    """Every shipped input schema is JSON data (hosts serialise it as is)."""
    import json

    for action in default_connector().actions.values():
        schema: Mapping[str, Any] = input_schema(action)
        assert json.loads(json.dumps(schema)) == schema


def test_on_means_true_for_workflow_and_action_inputs_alike() -> None:
    """`--input flag=on` is a boolean for a workflow, as it is for an action."""
    from connector.workflow import WorkflowError, load_workflow, resolve_inputs

    workflow = load_workflow(
        "wf.yaml",
        text="""
name: x
inputs:
  flag: {type: boolean, default: false}
  size: {type: integer}
  price: {type: number}
steps:
  - {id: a, uses: twilio/list_messages_v2, with: {PageSize: "${{ inputs.size }}"}}
""",
    )
    given = {"flag": "on", "size": "+20", "price": "0.5"}
    assert resolve_inputs(workflow, given) == {"flag": True, "size": 20, "price": 0.5}
    action = compile_action(default_connector().actions["send_message"])
    service = {"messaging_service_sid": "MG" + "a" * 32}
    clean = action.validate({**BASES["send_message"], **service, "shorten_urls": "on"})
    assert clean["shorten_urls"] is True
    with pytest.raises(WorkflowError, match="must be of type boolean"):
        resolve_inputs(workflow, {"flag": "maybe"})


def test_workflow_inputs_refuse_text_that_cannot_be_sent() -> None:
    """run --input with an undecodable byte (a lone surrogate) or a NUL is an input error naming it."""
    from connector.workflow import WorkflowError, load_workflow, resolve_inputs

    workflow = load_workflow(
        "wf.yaml",
        text="""
name: x
inputs:
  body: {type: string}
steps:
  - {id: a, uses: twilio/list_messages_v2, with: {To: "${{ inputs.body }}"}}
""",
    )
    with pytest.raises(WorkflowError, match=r"inputs.body: must be of type string: must be valid"):
        resolve_inputs(workflow, {"body": "ab\udcffc"})
    with pytest.raises(WorkflowError, match="must not contain a NUL"):
        resolve_inputs(workflow, {"body": "a\x00b"})
