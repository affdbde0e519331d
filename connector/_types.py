# SPDX-License-Identifier: MIT
"""
The manifest's types and formats, each described once.

A type (``string``, ``integer``, ``datetime``...) or a format (``phone``, ``uri``...)
says here how an input value is coerced and checked, which JSON values a host may send
for it (a JSON Schema fragment), how it is written on the wire, how a wire value becomes
a Python value in an output, what that value is annotated as in the generated models,
and what its JSON form is. The validator, the host schemas, the code generator, output
conversion and workflow inputs all derive from :data:`TYPES` and :data:`FORMATS`.

Inputs are lenient because they come from command lines and YAML ("25" for 25, "on"
for true, 12345 for the short code "12345"), and the JSON Schemas say exactly that: an
integer input is ``{"type": ["integer", "string"], "pattern": ...}`` whose pattern
admits only the numerals within its bounds. One regular expression per format serves
the validator and the schema alike. Patterns are searched (as JSON Schema does) and
written ``^(?:...)$(?!\\n)``: Python's ``$`` also matches before a final newline, and
the look-ahead makes them mean the same in Python and in ECMAScript.

Calendar validity (no 30 February) is left to the standard ``date`` and ``date-time``
formats, which a host must assert to agree with the validator on those values.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs


if TYPE_CHECKING:
    from ._manifest import ItemSpec, ParamSpec


__all__ = [
    "FORMATS",
    "TYPES",
    "WORKFLOW_INPUT_TYPES",
    "Compiled",
    "FormatSpec",
    "Invalid",
    "TypeSpec",
    "anchored",
    "coerce_workflow_input",
    "compile_input",
    "is_workflow_input",
    "numeral_pattern",
]

Coercer = Callable[[Any], Any]
Encoder = Callable[[Any], str]


class Invalid(ValueError):
    """A value breaks an input's rule; ``rule`` says which, in words."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def anchored(body: str) -> str:
    """A pattern that a search matches only when *body* matches the whole text."""
    return f"^(?:{body})$(?!\\n)"


# -- the formats' regular expressions ------------------------------------------------

_E164: Final = r"\+[1-9][0-9]{0,14}"
# WhatsApp and SMS-like channels address phone numbers; other channels use ids.
PHONE: Final = rf"{_E164}|whatsapp:{_E164}|(?!whatsapp:)[a-z][a-z0-9-]*:\S+"
SENDER: Final = rf"{PHONE}|[0-9]{{3,8}}|(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9 ]{{1,11}}"
URI: Final = (
    r"[Hh][Tt][Tt][Pp][Ss]?://(?:[^\s/?#@]*@)?(?:[^\s/?#@:\[\]]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]*)?(?:[/?#]\S*)?"
)
DATE: Final = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# RFC 3339, upper-case T and Z. Years 0001 and 9999 are refused so that every accepted
# instant exists in UTC, whatever its offset.
DATETIME: Final = (
    r"(?!000[01]-|9999-)[0-9]{4}-(?:0[1-9]|1[0-2])-[0-9]{2}"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# Text that can be sent: no NUL (C strings and carriers end at it) and no lone surrogate
# (an undecodable byte of a command line, which has no UTF-8 form).
TEXT: Final = r"[^\x00\ud800-\udfff]*"
_INTEGER_TEXT: Final = re.compile(anchored(r"[+-]?[0-9]+"))
_NUMBER_TEXT: Final = re.compile(anchored(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"))
_CANONICAL_COUNT: Final = re.compile(r"0|[1-9][0-9]*")
_DATE: Final = re.compile(anchored(DATE))
_DATETIME: Final = re.compile(anchored(DATETIME))
_BOOLEANS: Final[Mapping[str, bool]] = {
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "1"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "0"), False),
}
# The largest integer every JSON parser reads exactly (RFC 7493): a string input reads
# integers up to it as their digits.
_MAX_COUNT: Final = 2**53 - 1

_PHONE_RULE: Final = (
    "must be an E.164 number (+ then 1 to 15 digits, not starting with 0) or a channel "
    "address such as whatsapp:+15551234567"
)
_SENDER_RULE: Final = (
    "must be an E.164 number, a short code, an alphanumeric sender ID (1 to 11 letters, "
    "digits or spaces) or a channel address such as whatsapp:+15551234567"
)
_URI_RULE: Final = "must be an absolute http(s) URL"
_NUL_RULE: Final = "must not contain a NUL character (\\x00)"
_SURROGATE_RULE: Final = (
    "must be valid Unicode text (it holds an undecodable byte or a lone surrogate)"
)
_DATETIME_RULE: Final = (
    "must be an ISO 8601 date-time with a timezone, as RFC 3339 writes it "
    "(e.g. 2026-05-01T12:00:00Z)"
)


# -- numerals within bounds, as a regular expression --------------------------------


def numeral_pattern(low: Decimal | None, high: Decimal | None, *, fraction: bool) -> str | None:
    """
    The body of a pattern for numerals whose value lies within *low* and *high*.

    Numerals may carry a sign and leading zeros and, when *fraction* is true, a decimal
    point (``+007``, ``-0``, ``.5``, ``5.``), as ``int()`` and ``Decimal()`` read them.
    JSON Schema compares numbers but not numerals, so this is how a schema bounds the
    strings a numeric input accepts.

    Returns:
        The pattern's body, or ``None`` when no numeral is within the bounds.
    """
    zero = Decimal(0)
    positive = _unsigned(max(low, zero) if low is not None else zero, high, fraction)
    negative = _unsigned(
        max(-high, zero) if high is not None else zero,
        -low if low is not None else None,
        fraction,
    )
    return _any_of([_join(r"\+?", positive), _join("-", negative)])


def _any_of(parts: Iterable[str | None]) -> str | None:
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else "(?:" + "|".join(kept) + ")"


def _join(*parts: str | None) -> str | None:
    return None if None in parts else "".join(p for p in parts if p is not None)


def _digit(low: int, high: int) -> str | None:
    if low > high:
        return None
    return str(low) if low == high else f"[{low}-{high}]"


def _digits(count: int) -> str:
    return {0: "", 1: "[0-9]"}.get(count, f"[0-9]{{{count}}}")


def _above(whole: int) -> str | None:
    """Numerals without leading zeros of the integers above *whole*."""
    if whole == 0:
        return "[1-9][0-9]*"
    text = str(whole)
    longer = f"[1-9][0-9]{{{len(text)},}}"
    return _any_of(
        [
            longer,
            *(
                _join(text[:i], _digit(int(d) + 1, 9), _digits(len(text) - i - 1))
                for i, d in enumerate(text)
            ),
        ]
    )


def _below(whole: int) -> str | None:
    """Numerals without leading zeros (zero is the empty one) of the integers below *whole*."""
    if whole == 0:
        return None
    text = str(whole)
    shorter = [""]
    if len(text) > 1:
        shorter.append("[1-9]" + ("" if len(text) == 2 else f"[0-9]{{0,{len(text) - 2}}}"))
    return _any_of(
        [
            *shorter,
            *(
                _join(text[:i], _digit(1 if i == 0 else 0, int(d) - 1), _digits(len(text) - i - 1))
                for i, d in enumerate(text)
            ),
        ]
    )


def _split(bound: Decimal) -> tuple[int, str]:
    """A non-negative bound as its whole part and its fraction's digits."""
    whole = int(bound)
    return whole, format(bound - whole, "f").partition(".")[2].rstrip("0")


def _at_least(bound: Decimal, fraction: bool) -> str | None:
    """
    Unsigned numerals of at least *bound* (above 0): leading zeros, then a larger whole
    part with any fraction, or the same whole part with a fraction no smaller.
    """
    whole, digits = _split(bound)
    any_fraction = r"(?:\.[0-9]*)?" if fraction else ""
    tail: str | None = any_fraction
    if digits:
        tail = None
        if fraction:
            tail = r"\." + str(
                _any_of(
                    [
                        *(
                            _join(digits[:i], _digit(int(d) + 1, 9), "[0-9]*")
                            for i, d in enumerate(digits)
                        ),
                        digits + "[0-9]*",
                    ]
                )
            )
    return _join("0*", _any_of([_join(_above(whole), any_fraction), _join(str(whole or ""), tail)]))


def _at_most(bound: Decimal, fraction: bool) -> str | None:
    """
    Unsigned numerals of at most *bound*: leading zeros, then a smaller whole part with
    any fraction, or the same whole part with a fraction no larger.
    """
    whole, digits = _split(bound)
    any_fraction = r"(?:\.[0-9]*)?" if fraction else ""
    tail = ""
    if fraction and not digits:
        tail = r"(?:\.0*)?"
    elif fraction:
        smaller = [_join(digits[:i], _digit(0, int(d) - 1), "[0-9]*") for i, d in enumerate(digits)]
        prefixes = [digits[:i] for i in range(len(digits))]
        tail = r"(?:\." + str(_any_of([*smaller, *prefixes, digits + "0*"])) + ")?"
    return _join("0*", _any_of([_join(_below(whole), any_fraction), _join(str(whole or ""), tail)]))


def _unsigned(low: Decimal, high: Decimal | None, fraction: bool) -> str | None:
    """Unsigned numerals from *low* (0 or more) to *high*; both bounds by a look-ahead."""
    if high is not None and high < low:
        return None
    # At least one digit: "5", "5." and ".5" but not "." or "".
    start = r"(?=\.?[0-9])" if fraction else "(?=[0-9])"
    above = _at_least(low, fraction) if low > 0 else ""
    below = _at_most(high, fraction) if high is not None else ""
    if above is None or below is None:
        return None
    if above and below:
        return f"{start}(?={above}$){below}"
    return start + (above or below or (r"[0-9]*(?:\.[0-9]*)?" if fraction else "[0-9]+"))


# -- wire values to Python values (outputs) --------------------------------------------

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def string(value: Any) -> str | None:
    """Wire value to ``str``."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


def integer(value: Any) -> int | None:
    """Wire value (``"3"`` or ``3``) to ``int``."""
    if value.__class__ is int or value is None:
        return value
    return int(value) if value != "" else None


def number(value: Any) -> float | None:
    """Wire value to ``float``."""
    if value is None or value == "":
        return None
    return float(value)


def decimal_(value: Any) -> Decimal | None:
    """Wire value (``"-0.00750"``) to ``Decimal``, exactly."""
    if value is None or value == "":
        return None
    return Decimal(str(value))


def boolean(value: Any) -> bool | None:
    """Wire value to ``bool``."""
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def datetime(value: Any) -> dt.datetime | None:
    """
    Wire date to an aware UTC ``datetime``.

    Twilio's RFC 2822 form is parsed by slicing, which is many times faster than
    ``email.utils``; anything else (other offsets, ISO 8601) takes the slow path. The
    same second recurs across a page of messages, so parses are cached.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return _parse_datetime(str(value))


@functools.lru_cache(maxsize=4096)
def _parse_datetime(text: str) -> dt.datetime:
    if len(text) == 31 and text.endswith(" +0000") and text[3:5] == ", ":
        month = _MONTHS.get(text[8:11])
        if month is not None:
            try:
                return dt.datetime(
                    int(text[12:16]),
                    month,
                    int(text[5:7]),
                    int(text[17:19]),
                    int(text[20:22]),
                    int(text[23:25]),
                    tzinfo=dt.UTC,
                )
            except ValueError:
                pass
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def date(value: Any) -> dt.date | None:
    """Wire date (``YYYY-MM-DD``) to ``date``."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def object_(value: Any) -> dict[str, Any] | None:
    """Wire object to a ``dict`` (a copy)."""
    if value is None:
        return None
    return dict(value)


# -- Python values to their JSON form ---------------------------------------------------


def text(value: Any) -> str | None:
    """Write a Decimal or a date as a string."""
    return None if value is None else str(value)


def json_datetime(value: dt.datetime | None) -> str | None:
    """Write a datetime as ``yyyy-MM-ddTHH:mm:ss.fffZ`` in UTC."""
    if value is None:
        return None
    return _json_datetime(value)


# A message carries three dates, and a page or a broadcast repeats the same seconds.
@functools.lru_cache(maxsize=4096)
def _json_datetime(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def json_number(value: float | Decimal | None) -> float | None:
    """
    Write a number as JSON: a Decimal written without a point or an exponent stays an
    integer, so a workflow input given as ``3`` is still ``3``; floats are left alone.
    """
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent == 0 else float(value)
    return value


# -- inputs: coercion and schema, compiled together -------------------------------------


@attrs.frozen
class Compiled:
    """
    One input's rules, compiled: the validator's coercion and the JSON Schema of the
    values it accepts, built from the same constraints so that they agree.

    Attributes:
        coerce: Input value -> typed value; raises :class:`Invalid`.
        schema: The JSON Schema fragment of the accepted JSON values.
        encode: Typed value -> the text sent on the wire.
    """

    coerce: Coercer
    schema: Mapping[str, Any]
    encode: Encoder


Check = tuple[Callable[[Any], bool], str]


def _matches(pattern: str) -> Callable[[str], bool]:
    search = re.compile(pattern).search
    return lambda value: search(value) is not None


def _chain(base: Coercer, checks: list[Check]) -> Coercer:
    """The base coercion followed by each check, failing with the first broken rule."""
    if not checks:
        return base
    if len(checks) == 1:
        # The common case (a format or a length) without the loop: this runs per input.
        ((predicate, rule),) = checks

        def coerce_one(value: Any) -> Any:
            value = base(value)
            if not predicate(value):
                raise Invalid(rule)
            return value

        return coerce_one

    def coerce(value: Any) -> Any:
        value = base(value)
        for predicate, rule in checks:
            if not predicate(value):
                raise Invalid(rule)
        return value

    return coerce


def _bound(value: float | None) -> Decimal | None:
    # As the manifest wrote it: 0.1 means 0.1, not the float nearest to it.
    return None if value is None else Decimal(repr(value))


def _range_rule(low: float | None, high: float | None) -> str:
    def show(n: float) -> str:
        return str(int(n)) if float(n).is_integer() else str(n)

    if low is not None and high is not None:
        return f"must be between {show(low)} and {show(high)}"
    if low is not None:
        return f"must be at least {show(low)}"
    assert high is not None
    return f"must be at most {show(high)}"


def _enum_rule(enum: Iterable[Any]) -> str:
    return f"must be one of: {', '.join(map(str, enum))}"


def _members(spec: ParamSpec | ItemSpec, base: Coercer) -> list[Any]:
    """The enum's members as the base coercion reads them; unreadable ones never match."""
    out = []
    for member in spec.enum or ():
        try:
            out.append(base(member))
        except Invalid:
            continue
    return out


def _is_count(value: Any) -> bool:
    """A JSON integer that a string input reads as its digits (12345 for a short code)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value <= _MAX_COUNT
    if isinstance(value, float):
        return value.is_integer() and 0 <= value <= _MAX_COUNT
    if isinstance(value, Decimal):
        return value.is_finite() and value == value.to_integral_value() and 0 <= value <= _MAX_COUNT
    return False


def _count_range(
    spec: ParamSpec | ItemSpec, numerals: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The integers whose digits a string input accepts, as JSON Schema bounds them."""
    if numerals is None or spec.pattern is not None:
        return None
    low, high = numerals
    if spec.min_length is not None and spec.min_length >= 2:
        if spec.min_length > len(str(_MAX_COUNT)):
            return None
        low = max(low, 10 ** (spec.min_length - 1))
    if spec.max_length is not None and spec.max_length < len(str(_MAX_COUNT)):
        high = min(high, 10**spec.max_length - 1) if spec.max_length else -1
    return (low, high) if low <= high else None


def _surrogate_free(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_checks() -> list[Check]:
    """What every text input must be: sendable (see ``TEXT``)."""
    return [(lambda v: "\x00" not in v, _NUL_RULE), (_surrogate_free, _SURROGATE_RULE)]


def _compile_string(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    patterns: list[str] = []
    checks: list[Check] = _text_checks()
    if fmt is not None and fmt.regex is not None:
        patterns.append(anchored(fmt.regex))
        checks.append((_matches(patterns[-1]), fmt.rule))
    if spec.pattern is not None:
        patterns.append(anchored(spec.pattern))
        checks.append((_matches(patterns[-1]), f"must match {spec.pattern}"))
    low, high = spec.min_length, spec.max_length
    if low:
        shortest = low
        plural = "s" if low != 1 else ""
        checks.append((lambda v: len(v) >= shortest, f"must be at least {low} character{plural}"))
    if high is not None:
        longest = high
        checks.append((lambda v: len(v) <= longest, f"must be at most {high} characters"))
    counts = _count_range(spec, fmt.numerals if fmt is not None else (0, _MAX_COUNT))
    # A pattern cannot be checked against a JSON integer, so such inputs take text only.
    read_counts = spec.pattern is None
    not_text = fmt.rule if fmt is not None else "must be a string"

    def base(value: Any) -> str:
        if isinstance(value, str):
            return value
        if read_counts and _is_count(value):
            # YAML reads a short code or an all-digit body as a number.
            return str(int(value))
        raise Invalid(not_text)

    members = _members(spec, base) if spec.enum is not None else None
    if members is not None:
        checks.append((frozenset(members).__contains__, _enum_rule(spec.enum or ())))
        if not any(_CANONICAL_COUNT.fullmatch(m) for m in members):
            counts = None

    schema: dict[str, Any] = {"type": ["string", "integer"] if counts else "string"}
    if fmt is not None:
        schema["x-format"] = fmt.name
    patterns.append(anchored(TEXT))
    schema["pattern"] = patterns[0]
    if len(patterns) > 1:
        schema["allOf"] = [{"pattern": pattern} for pattern in patterns[1:]]
    if low:
        schema["minLength"] = low
    if high is not None:
        schema["maxLength"] = high
    if counts:
        schema["minimum"], schema["maximum"] = counts
    if members is not None:
        schema["enum"] = [
            *members,
            *(int(m) for m in members if counts and _CANONICAL_COUNT.fullmatch(m)),
        ]
    return Compiled(_chain(base, checks), schema, str)


def _to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid("must be an integer")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.search(value):
        return int(value)
    raise Invalid("must be an integer")


def _to_number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise Invalid("must be a number")
    if isinstance(value, int):
        parsed = Decimal(value)
    elif isinstance(value, float):
        parsed = Decimal(repr(value))
    elif isinstance(value, Decimal):
        parsed = value
    elif isinstance(value, str) and _NUMBER_TEXT.search(value):
        parsed = Decimal(value)
    else:
        raise Invalid("must be a number")
    if not parsed.is_finite():
        raise Invalid("must be a number")
    return parsed


def _compile_numeric(
    spec: ParamSpec | ItemSpec, base: Coercer, json_type: str, *, fraction: bool
) -> Compiled:
    low, high = _bound(spec.minimum), _bound(spec.maximum)
    checks: list[Check] = []
    if low is not None or high is not None:
        checks.append(
            (
                lambda v: (low is None or v >= low) and (high is None or v <= high),
                _range_rule(spec.minimum, spec.maximum),
            )
        )
    schema: dict[str, Any] = {"type": [json_type, "string"]}
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    if spec.enum is None:
        body = numeral_pattern(low, high, fraction=fraction)
    else:
        members = _members(spec, base)
        checks.append((frozenset(members).__contains__, _enum_rule(spec.enum)))
        kept = [m for m in members if (low is None or m >= low) and (high is None or m <= high)]
        body = _any_of(numeral_pattern(m, m, fraction=fraction) for m in kept)
        json_values = [json_number(m) if fraction else int(m) for m in kept]
        schema["anyOf"] = [{"type": "string"}, {"enum": json_values}]
    schema["pattern"] = anchored(body if body is not None else "(?!)")
    return Compiled(_chain(base, checks), schema, str)


def _compile_integer(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    return _compile_numeric(spec, _to_integer, "integer", fraction=False)


def _compile_number(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    return _compile_numeric(spec, _to_number, "number", fraction=True)


def _to_boolean(value: Any) -> bool:
    if value is True or value is False:
        return bool(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = _BOOLEANS.get(value)
        if word is not None:
            return word
    raise Invalid("must be a boolean (true or false)")


def _compile_boolean(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    schema: dict[str, Any] = {
        "type": ["boolean", "integer", "string"],
        "minimum": 0,
        "maximum": 1,
        "pattern": anchored("|".join(_BOOLEANS)),
    }
    checks: list[Check] = []
    if spec.enum is not None:
        members = frozenset(_members(spec, _to_boolean))
        checks.append((members.__contains__, _enum_rule(spec.enum)))
        forms: list[Any] = [b for b in (True, False) if b in members]
        forms += [int(b) for b in forms]
        forms += [word for word, b in _BOOLEANS.items() if b in members]
        schema = {"enum": forms}
    return Compiled(_chain(_to_boolean, checks), schema, lambda v: "true" if v else "false")


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise Invalid("must be a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE.search(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise Invalid("must be a date (YYYY-MM-DD)")


def _compile_date(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    schema: dict[str, Any] = {"type": "string", "format": "date", "pattern": anchored(DATE)}
    checks: list[Check] = []
    if spec.enum is not None:
        members = _members(spec, _to_date)
        checks.append((frozenset(members).__contains__, _enum_rule(spec.enum)))
        schema["enum"] = [m.isoformat() for m in members]
    return Compiled(_chain(_to_date, checks), schema, lambda v: v.isoformat())


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):
        if not _DATETIME.search(value):
            raise Invalid(_DATETIME_RULE)
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise Invalid(_DATETIME_RULE) from None
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise Invalid(_DATETIME_RULE) from None
    raise Invalid(_DATETIME_RULE)


def _compile_datetime(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    schema: dict[str, Any] = {
        "type": "string",
        "format": "date-time",
        "pattern": anchored(DATETIME),
    }
    coerce: Coercer = _to_datetime
    if spec.enum is not None:
        # One instant has many spellings and JSON Schema can list spellings only, so an
        # enum of date-times admits exactly the texts it lists.
        texts = frozenset(m for m in spec.enum if isinstance(m, str))
        rule = _enum_rule(spec.enum)

        def coerce(value: Any) -> dt.datetime:
            if not (isinstance(value, str) and value in texts):
                raise Invalid(rule)
            return _to_datetime(value)

        schema["enum"] = sorted(texts)
    return Compiled(coerce, schema, lambda v: v.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _to_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise Invalid("must be an object")


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _compile_object(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    return Compiled(_to_object, {"type": "object"}, _json_text)


def _to_json_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return _json_text(dict(value))
    if isinstance(value, str):
        # Sent as given: whether a string holds JSON is beyond what a JSON Schema can
        # say, and the validator accepts exactly what the schema does.
        for predicate, rule in _text_checks():
            if not predicate(value):
                raise Invalid(rule)
        return value
    raise Invalid("must be an object or a JSON string")


def _compile_json(spec: ParamSpec | ItemSpec, fmt: FormatSpec | None) -> Compiled:
    schema = {
        "type": ["object", "string"],
        "x-format": "json",
        "contentMediaType": "application/json",
        "pattern": anchored(TEXT),
    }
    return Compiled(_to_json_text, schema, str)


# -- the registry -----------------------------------------------------------------------


@attrs.frozen
class TypeSpec:
    """
    One manifest type, everywhere it appears.

    Attributes:
        name: The manifest's name for it.
        compile: Builds an input's coercion, schema and encoding from its constraints;
            ``None`` for types that only outputs have (``decimal``).
        from_wire: Wire value -> Python value, for outputs (``None`` stays ``None``).
        annotation: The annotation of that Python value in the generated models.
        to_json: Python value -> its JSON form; ``None`` when the value is its own.
        json_annotation: The annotation of the JSON form.
        output_schema: The JSON Schema of an output field's JSON form (``null`` aside).
    """

    name: str
    compile: Callable[[ParamSpec | ItemSpec, FormatSpec | None], Compiled] | None
    from_wire: Callable[[Any], Any]
    annotation: str
    to_json: Callable[[Any], Any] | None
    json_annotation: str
    output_schema: Mapping[str, Any]


@attrs.frozen
class FormatSpec:
    """
    A refinement of a type (``type: string, format: phone``).

    Attributes:
        name: The manifest's name for it.
        types: The types it refines; on other types it is ignored, as JSON Schema ignores
            a format that does not apply.
        rule: What a value must be, in words.
        regex: The body of the pattern the text must match, if any.
        numerals: The integers whose digits match *regex* (``sender``: the short codes
            100 to 99999999), which a string input reads from a JSON integer.
        compile: Replaces the type's input rules altogether (``json``).
        output_schema: What an output field of this format adds to its schema.
    """

    name: str
    types: frozenset[str]
    rule: str
    regex: str | None = None
    numerals: tuple[int, int] | None = None
    compile: Callable[[ParamSpec | ItemSpec, FormatSpec | None], Compiled] | None = None
    output_schema: Mapping[str, Any] = attrs.field(factory=dict)


def _nullable(json_type: str, **more: Any) -> dict[str, Any]:
    return {"type": [json_type, "null"], **more}


TYPES: Final[Mapping[str, TypeSpec]] = {
    spec.name: spec
    for spec in (
        TypeSpec("string", _compile_string, string, "str", None, "str", _nullable("string")),
        TypeSpec("integer", _compile_integer, integer, "int", None, "int", _nullable("integer")),
        TypeSpec(
            "number", _compile_number, number, "float", json_number, "float", _nullable("number")
        ),
        TypeSpec(
            "decimal",
            None,
            decimal_,
            "decimal.Decimal",
            text,
            "str",
            _nullable("string", **{"x-format": "decimal"}),
        ),
        TypeSpec("boolean", _compile_boolean, boolean, "bool", None, "bool", _nullable("boolean")),
        TypeSpec(
            "datetime",
            _compile_datetime,
            datetime,
            "dt.datetime",
            json_datetime,
            "str",
            _nullable("string", format="date-time"),
        ),
        TypeSpec(
            "date", _compile_date, date, "dt.date", text, "str", _nullable("string", format="date")
        ),
        TypeSpec(
            "object",
            _compile_object,
            object_,
            "dict[str, Any]",
            object_,
            "dict[str, Any]",
            _nullable("object"),
        ),
    )
}
"""Every scalar manifest type by name (``array`` is a list of one of them)."""

FORMATS: Final[Mapping[str, FormatSpec]] = {
    spec.name: spec
    for spec in (
        FormatSpec("phone", frozenset({"string"}), _PHONE_RULE, PHONE),
        FormatSpec("sender", frozenset({"string"}), _SENDER_RULE, SENDER, (100, 99_999_999)),
        FormatSpec(
            "uri",
            frozenset({"string"}),
            _URI_RULE,
            URI,
            output_schema={"x-format": "uri-reference"},
        ),
        FormatSpec(
            "json",
            frozenset({"string", "object"}),
            "must be an object or a JSON string",
            compile=_compile_json,
        ),
    )
}
"""Every format by name."""


def compile_input(spec: ParamSpec | ItemSpec) -> Compiled:
    """
    Compile one scalar input (a parameter, or the items of an array parameter).

    Constraints that do not apply to the type (``min_length`` on an integer) are
    ignored, as JSON Schema ignores them; so is ``enum`` on objects.
    """
    fmt = FORMATS.get(spec.format) if spec.format is not None else None
    if fmt is not None and spec.type not in fmt.types:
        fmt = None
    if fmt is not None and fmt.compile is not None:
        return fmt.compile(spec, fmt)
    compile_type = TYPES[spec.type].compile
    assert compile_type is not None, f"{spec.type} is not an input type"
    return compile_type(spec, fmt)


# -- workflow inputs ----------------------------------------------------------------------

WORKFLOW_INPUT_TYPES: Final = ("string", "integer", "number", "boolean", "array", "object")
"""The types a workflow's ``inputs`` may declare."""


@functools.cache
def _plain(kind: str) -> Compiled:
    from ._manifest import ItemSpec

    return compile_input(ItemSpec(type=kind))


def coerce_workflow_input(kind: str, value: Any) -> Any:
    """
    Coerce a workflow input to its type, in JSON form.

    Scalars are coerced as action inputs are (``"on"`` is true in both places); arrays
    and objects given as strings (``--input K=V``) are read as JSON.

    Raises:
        Invalid: The value is not of the type.
    """
    if kind in ("array", "object"):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise Invalid(f"must be JSON text of an {kind}") from None
        if kind == "array":
            if isinstance(value, list | tuple):
                return list(value)
            raise Invalid("must be a list")
        return _to_object(value)
    value = _plain(kind).coerce(value)
    to_json = TYPES[kind].to_json
    return value if to_json is None else to_json(value)


def is_workflow_input(kind: str, value: Any) -> bool:
    """Whether *value* is already a workflow input of type *kind*, in its JSON form."""
    try:
        coerced = coerce_workflow_input(kind, value)
    except Invalid:
        return False
    return type(coerced) is type(value) and coerced == value
