"""
Input validation, compiled once per action from its manifest.

Values arrive from Python, YAML or a command line, so strings are coerced to the
declared type first ("25" to 25, "true" to True, "2024-01-02" to a date). Every problem
is collected and reported at once, before anything touches the network.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from ._manifest import ActionSpec, ItemSpec, ParamSpec
from .errors import InputIssue, InvalidInputError


__all__ = ["CompiledAction", "compile_action", "mask"]

_E164: Final = re.compile(r"\+[1-9][0-9]{0,14}")
_CHANNEL: Final = re.compile(r"([a-z][a-z0-9-]*):(\S+)")
_ALPHANUMERIC_SENDER: Final = re.compile(r"(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_SHORT_CODE: Final = re.compile(r"[0-9]{3,8}")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0"})

_PHONE_RULE: Final = (
    "must be an E.164 number (+ then 1 to 15 digits, not starting with 0) or a channel "
    "address such as whatsapp:+15551234567"
)
_SENDER_RULE: Final = (
    "must be an E.164 number, a short code, an alphanumeric sender ID (1 to 11 letters, "
    "digits or spaces) or a channel address such as whatsapp:+15551234567"
)
_URI_RULE: Final = "must be an absolute http(s) URL"

SECRET_MASK: Final = "***"


class _Invalid(Exception):
    """Raised by a coercer; carries the rule that failed."""

    def __init__(self, rule: str) -> None:
        self.rule = rule


Coercer = Callable[[Any], Any]
Encoder = Callable[[Any], str]


def mask(value: Any, secret: bool) -> Any:
    """Return *value*, or a mask when it is secret."""
    return SECRET_MASK if secret and value is not None else value


def _is_phone(value: str) -> bool:
    if _E164.fullmatch(value):
        return True
    match = _CHANNEL.fullmatch(value)
    if match is None:
        return False
    channel, address = match.groups()
    # WhatsApp and SMS-like channels address phone numbers; other channels use ids.
    return channel != "whatsapp" or _E164.fullmatch(address) is not None


def _is_sender(value: str) -> bool:
    return bool(
        _is_phone(value) or _SHORT_CODE.fullmatch(value) or _ALPHANUMERIC_SENDER.fullmatch(value)
    )


def _is_uri(value: str) -> bool:
    if any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | decimal.Decimal) and not isinstance(value, bool):
        # YAML reads a short code or an all-digit body as a number.
        return str(value)
    raise _Invalid("must be a string")


def _to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise _Invalid("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise _Invalid("must be an integer")


def _to_number(value: Any) -> decimal.Decimal:
    if isinstance(value, bool):
        raise _Invalid("must be a number")
    if isinstance(value, int | float | decimal.Decimal | str):
        try:
            number = decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation:
            raise _Invalid("must be a number") from None
        if number.is_finite():
            return number
    raise _Invalid("must be a number")


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise _Invalid("must be a boolean (true or false)")


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise _Invalid("must be a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _Invalid("must be a date (YYYY-MM-DD)")


def _to_datetime(value: Any) -> dt.datetime:
    rule = "must be an ISO 8601 date-time with a timezone (e.g. 2026-05-01T12:00:00Z)"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Invalid(rule) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _Invalid(rule)
        return value.astimezone(dt.UTC)
    raise _Invalid(rule)


def _to_json_text(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            raise _Invalid("must be an object or a JSON string") from None
        return value
    raise _Invalid("must be an object or a JSON string")


def _to_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise _Invalid("must be an object")


_BASE: Final[dict[str, Coercer]] = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
    "object": _to_object,
}


def _encode(type_: str) -> Encoder:
    if type_ == "boolean":
        return lambda v: "true" if v else "false"
    if type_ == "datetime":
        return lambda v: v.strftime("%Y-%m-%dT%H:%M:%SZ")
    if type_ == "date":
        return lambda v: v.isoformat()
    return str


def _scalar_coercer(spec: ParamSpec | ItemSpec) -> Coercer:
    """Chain the base coercion with the spec's constraints into one function."""
    base = _to_json_text if spec.format == "json" else _BASE[spec.type]
    checks: list[tuple[Callable[[Any], bool], str]] = []
    if spec.format == "phone":
        checks.append((_is_phone, _PHONE_RULE))
    elif spec.format == "sender":
        checks.append((_is_sender, _SENDER_RULE))
    elif spec.format == "uri":
        checks.append((_is_uri, _URI_RULE))
    if spec.pattern is not None:
        compiled = re.compile(spec.pattern)
        checks.append((lambda v: compiled.fullmatch(v) is not None, f"must match {spec.pattern}"))
    if spec.min_length is not None:
        low = spec.min_length
        rule = f"must be at least {low} character{'s' if low != 1 else ''}"
        checks.append((lambda v: len(v) >= low, rule))
    if spec.max_length is not None:
        high = spec.max_length
        checks.append((lambda v: len(v) <= high, f"must be at most {high} characters"))
    if spec.minimum is not None or spec.maximum is not None:
        low_n, high_n = spec.minimum, spec.maximum
        checks.append(
            (
                lambda v: (low_n is None or v >= low_n) and (high_n is None or v <= high_n),
                _range_rule(low_n, high_n),
            )
        )
    if spec.enum is not None:
        allowed = frozenset(spec.enum)
        listed = ", ".join(map(str, spec.enum))
        checks.append((lambda v: v in allowed, f"must be one of: {listed}"))
    if not checks:
        return base
    if len(checks) == 1:
        # The common case (a format or a length) without the loop: this runs per input.
        ((predicate, rule),) = checks

        def coerce_one(value: Any) -> Any:
            value = base(value)
            if not predicate(value):
                raise _Invalid(rule)
            return value

        return coerce_one

    def coerce(value: Any) -> Any:
        value = base(value)
        for predicate, rule in checks:
            if not predicate(value):
                raise _Invalid(rule)
        return value

    return coerce


def _range_rule(low: float | None, high: float | None) -> str:
    def show(n: float) -> str:
        return str(int(n)) if float(n).is_integer() else str(n)

    if low is not None and high is not None:
        return f"must be between {show(low)} and {show(high)}"
    if low is not None:
        return f"must be at least {show(low)}"
    assert high is not None
    return f"must be at most {show(high)}"


@attrs.frozen
class _CompiledParam:
    spec: ParamSpec
    coerce: Coercer
    encode: Encoder


@attrs.frozen
class CompiledAction:
    """
    An action with its validator and encoder built: the hot path of every call.

    Attributes:
        spec: The action's manifest spec.
        params: Compiled parameters by key.
        link_key: The input that takes a next-page link back, if the action pages.
    """

    spec: ActionSpec
    params: Mapping[str, _CompiledParam]
    link_key: str | None
    _required: tuple[str, ...]
    _defaults: tuple[tuple[str, Any], ...]

    def validate(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """
        Coerce and check *inputs*.

        Returns:
            The cleaned inputs, typed, with defaults applied.

        Raises:
            InvalidInputError: With every problem found.
        """
        issues: list[InputIssue] = []
        clean: dict[str, Any] = {}
        params = self.params
        for key, raw in inputs.items():
            param = params.get(key)
            if param is None:
                if key == self.link_key:
                    if isinstance(raw, str) and raw:
                        clean[key] = raw
                    elif raw not in (None, ""):
                        issues.append(InputIssue(key, "must be a string (a next-page link)", raw))
                    continue
                issues.append(InputIssue(key, self._unknown_rule(key)))
                continue
            if raw is None or (raw == "" and param.spec.required):
                continue  # reported as missing below when required
            try:
                clean[key] = param.coerce(raw)
            except _Invalid as exc:
                issues.append(InputIssue(key, exc.rule, mask(raw, param.spec.secret)))
        for key, default in self._defaults:
            clean.setdefault(key, default)
        for key in self._required:
            if key not in clean and not any(i.key == key for i in issues):
                issues.append(InputIssue(key, "is required"))
        for rule in self.spec.rules:
            if rule.kind == "at_least_one":
                if not any(clean.get(k) not in (None, []) for k in rule.keys):
                    issues.append(InputIssue("/".join(rule.keys), "give at least one of these"))
            elif rule.subject in clean:
                missing = [k for k in rule.keys if k not in clean]
                if missing:
                    issues.append(InputIssue(rule.subject, f"also needs {', '.join(missing)}"))
        if issues:
            raise InvalidInputError(self.spec.id, issues)
        return clean

    def _unknown_rule(self, key: str) -> str:
        known = [*self.params, *([self.link_key] if self.link_key else [])]
        folded = {k.lower().replace("_", ""): k for k in known}
        guess = folded.get(key.lower().replace("_", ""))
        if guess is None:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            guess = close[0] if close else None
        if guess is not None:
            return f"unknown input; did you mean {guess!r}?"
        return f"unknown input; known inputs: {', '.join(known)}"

    def encode(
        self, clean: Mapping[str, Any]
    ) -> tuple[dict[str, str], list[tuple[str, str]], list[tuple[str, str]]]:
        """
        Split cleaned inputs into path values, query pairs and form pairs, as strings.

        Arrays become repeated keys, as Twilio expects.
        """
        path: dict[str, str] = {}
        query: list[tuple[str, str]] = []
        form: list[tuple[str, str]] = []
        params = self.params
        for key, value in clean.items():
            param = params.get(key)
            if param is None:
                continue
            spec = param.spec
            if spec.location == "path":
                path[spec.wire_name] = param.encode(value)
                continue
            target = query if spec.location == "query" else form
            if spec.type == "array":
                target.extend((spec.wire_name, param.encode(item)) for item in value)
            else:
                target.append((spec.wire_name, param.encode(value)))
        return path, query, form

    def masked(self, clean: Mapping[str, Any]) -> dict[str, Any]:
        """Return *clean* with secret values masked, for errors and logs."""
        return {
            k: mask(v, k in self.params and self.params[k].spec.secret) for k, v in clean.items()
        }


def _array_coercer(spec: ParamSpec) -> Coercer:
    assert spec.items is not None
    item = _scalar_coercer(spec.items)
    low, high = spec.min_items, spec.max_items

    def coerce(value: Any) -> list[Any]:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list | tuple):
            raise _Invalid("must be a list")
        if high is not None and len(value) > high:
            raise _Invalid(f"must have at most {high} items")
        if low is not None and len(value) < low:
            raise _Invalid(f"must have at least {low} items")
        out = []
        for i, each in enumerate(value):
            try:
                out.append(item(each))
            except _Invalid as exc:
                raise _Invalid(f"item {i}: {exc.rule}") from None
        return out

    return coerce


def compile_action(spec: ActionSpec) -> CompiledAction:
    """Build the validator and encoder of an action."""
    params = {}
    for p in spec.parameters:
        if p.type == "array":
            assert p.items is not None
            coerce, encode = _array_coercer(p), _encode(p.items.type)
        else:
            coerce, encode = _scalar_coercer(p), _encode("json" if p.format == "json" else p.type)
        params[p.key] = _CompiledParam(p, coerce, encode)
    defaults = [
        (p.key, params[p.key].coerce(p.default)) for p in spec.parameters if p.default is not None
    ]
    return CompiledAction(
        spec=spec,
        params=params,
        link_key=spec.paging.next_link if spec.paging else None,
        required=tuple(p.key for p in spec.parameters if p.required),
        defaults=tuple(defaults),
    )
