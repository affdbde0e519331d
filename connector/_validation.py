"""
Input validation, compiled once per action from its manifest.

Values arrive from Python, YAML or a command line, so strings are coerced to the
declared type first ("25" to 25, "true" to True, "2024-01-02" to a date), as each type
of ``_types`` says; the host schemas of ``_schemas`` accept the same values. Every
problem is collected and reported at once, before anything touches the network.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._manifest import ActionSpec, ParamSpec
from ._types import Coercer, Compiled, Encoder, Invalid, compile_input
from .errors import InputIssue, InvalidInputError


__all__ = ["CompiledAction", "compile_action", "compile_param", "mask"]

SECRET_MASK: Final = "***"


def mask(value: Any, secret: bool) -> Any:
    """Return *value*, or a mask when it is secret."""
    return SECRET_MASK if secret and value is not None else value


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
    _aliases: Mapping[str, str] = attrs.field(factory=dict)

    def canonical(self, name: str) -> str:
        """The key an input name stands for (an alias's key; any other name itself)."""
        return self._aliases.get(name, name)

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
        aliases = self._aliases
        for key, raw in inputs.items():
            param = params.get(key)
            if param is None and key in aliases:
                # twilio-python's name for an input (from_, status_callback): the key's.
                canonical = aliases[key]
                if canonical in inputs or any(
                    other in inputs
                    for other, same in aliases.items()
                    if same == canonical and other != key
                ):
                    names = " and ".join(n for n in params[canonical].spec.names if n in inputs)
                    issues.append(InputIssue(key, f"{names} name the same input; give one"))
                    continue
                param = params[canonical]
                if raw is None or (raw == "" and param.spec.required):
                    continue
                try:
                    clean[canonical] = param.coerce(raw)
                except Invalid as exc:
                    issues.append(InputIssue(key, exc.rule, mask(raw, param.spec.secret)))
                continue
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
            except Invalid as exc:
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
        known = [*self.params, *self._aliases, *([self.link_key] if self.link_key else [])]
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
            if spec.location == "local":
                continue  # the executor's own (a media action's URL), never sent
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


def compile_param(spec: ParamSpec) -> Compiled:
    """
    Compile one parameter: a scalar, or an array of scalars. A single value given for
    an array stands for a list of one.
    """
    if spec.type != "array":
        return compile_input(spec)
    assert spec.items is not None
    item = compile_input(spec.items)
    low, high = spec.min_items, spec.max_items
    coerce_item = item.coerce

    def coerce(value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            value = [value]
        if high is not None and len(value) > high:
            raise Invalid(f"must have at most {high} items")
        if low is not None and len(value) < low:
            raise Invalid(f"must have at least {low} items")
        out = []
        for i, each in enumerate(value):
            try:
                out.append(coerce_item(each))
            except Invalid as exc:
                raise Invalid(f"item {i}: {exc.rule}") from None
        return out

    array: dict[str, Any] = {"type": "array", "items": item.schema}
    if low is not None:
        array["minItems"] = low
    if high is not None:
        array["maxItems"] = high
    schema: dict[str, Any] = array
    if (low is None or low <= 1) and (high is None or high >= 1):
        if _SCALAR_ONLY.issuperset(item.schema):
            # The item's keywords apply to strings and numbers only, so one object
            # says both "a list of these" and "one of these".
            types = item.schema["type"]
            schema = {
                "type": ["array", *([types] if isinstance(types, str) else types)],
                **{k: v for k, v in array.items() if k != "type"},
                **{k: v for k, v in item.schema.items() if k != "type"},
            }
        else:
            schema = {"anyOf": [array, item.schema]}
    return Compiled(coerce, schema, item.encode)


# Keywords that constrain strings and numbers only: an array passes them untouched.
_SCALAR_ONLY: Final = frozenset(
    {
        "type",
        "pattern",
        "allOf",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "format",
        "x-format",
    }
)


def compile_action(spec: ActionSpec) -> CompiledAction:
    """Build the validator and encoder of an action."""
    params = {}
    for p in spec.parameters:
        compiled = compile_param(p)
        params[p.key] = _CompiledParam(p, compiled.coerce, compiled.encode)
    defaults = [
        (p.key, params[p.key].coerce(p.default)) for p in spec.parameters if p.default is not None
    ]
    return CompiledAction(
        spec=spec,
        params=params,
        link_key=spec.paging.next_link if spec.paging else None,
        required=tuple(p.key for p in spec.parameters if p.required),
        defaults=tuple(defaults),
        aliases={alias: p.key for p in spec.parameters for alias in p.aliases},
    )
