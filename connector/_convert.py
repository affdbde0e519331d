"""
Conversions between Twilio's wire values and typed Python values, and from those to
the JSON that downstream workflow steps read.

Twilio sends counts as strings ("1"), prices as strings ("-0.00750") and dates in
RFC 2822 ("Thu, 24 Aug 2023 05:01:45 +0000"). Outputs turn them into ints, Decimals
and aware UTC datetimes, as each type of ``_types`` says; JSON for downstream steps
writes dates as ISO 8601 (``yyyy-MM-ddTHH:mm:ss.fffZ``) and decimals as strings, so
nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import keyword
import re
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from ._manifest import DefinitionSpec
from ._types import TYPES, json_datetime


__all__ = [
    "OpenEnum",
    "Record",
    "attribute_name",
    "build_record",
    "field_value",
    "to_json",
    "to_json_data",
    "warn_to_json",
]


class OpenEnum(enum.StrEnum):
    """
    A string enum that keeps values it does not know.

    Twilio adds statuses from time to time; an unknown value becomes a pseudo-member
    (``MessageStatus("new_status").value == "new_status"``) instead of an error, so an
    old connector keeps working with a newer API.
    """

    @classmethod
    def _missing_(cls, value: object) -> OpenEnum | None:
        if not isinstance(value, str):
            return None
        pseudo = str.__new__(cls, value)
        pseudo._name_ = value.upper().replace("-", "_")
        pseudo._value_ = value
        return pseudo


def enum_value(value: enum.Enum | None) -> Any:
    """Write an enum member as its value."""
    return None if value is None else value.value


@attrs.frozen
class Record:
    """
    The output of an action whose definition has no generated class (for instance from a
    third-party manifest): the converted fields, by their manifest path.

    Attributes:
        definition: The definition's name.
        fields: Converted values by field path.
    """

    definition: str
    fields: Mapping[str, Any]

    def __getitem__(self, path: str) -> Any:
        return self.fields[path]

    def to_json_data(self) -> dict[str, Any]:
        """Return the JSON form as plain data, with the manifest's field paths."""
        return {path: to_json_data(value) for path, value in self.fields.items()}

    def to_json(self) -> dict[str, Any]:
        """Deprecated: :meth:`to_json_data` under its old name (it returns data, not text)."""
        warn_to_json("Record")
        return self.to_json_data()


def warn_to_json(owner: str) -> None:
    """Warn that ``to_json`` is the deprecated name of ``to_json_data``."""
    what = "to_json()" if owner == "connector" else f"{owner}.to_json()"
    warnings.warn(
        f"{what} is deprecated: it returns plain data, not JSON text; call "
        f"{what.replace('to_json', 'to_json_data')} (json.dumps turns that into text)",
        DeprecationWarning,
        stacklevel=3,
    )


def to_json_data(value: Any) -> Any:
    """
    Turn an output (a generated model, a :class:`Record`, a list of them, or a plain
    value) into its JSON form for downstream steps: plain data (dicts, lists, strings,
    numbers, booleans, ``None``) with ISO 8601 dates and decimals as strings, which
    ``json.dumps`` turns into text. (``to_json``, the old name, which said text, is a
    deprecated alias.)
    """
    kind = type(value)
    # Plain data first (most of what a workflow's outputs hold), without the ABC checks
    # below: exact types, so a subclass (an enum, a custom mapping) takes the long way.
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {str(k): to_json_data(v) for k, v in value.items()}
    if kind is list:
        return [to_json_data(v) for v in value]
    if isinstance(value, bool | int | float | str) and not isinstance(value, enum.Enum):
        return value
    method = getattr(value, "to_json_data", None)
    if method is None:
        # Objects of other libraries that follow the old convention.
        method = getattr(value, "to_json", None)
    if method is not None:
        return method()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return json_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_data(v) for v in value]
    raise TypeError(f"cannot turn {type(value).__name__} into JSON")


def to_json(value: Any) -> Any:
    """
    Deprecated: :func:`to_json_data` under its old name, which said JSON text while it
    returns plain data. It warns (``DeprecationWarning``) and will be removed.
    """
    warn_to_json("connector")
    return to_json_data(value)


def attribute_name(path: str) -> str:
    """
    The Python attribute for a field path: ``from`` -> ``from_``,
    ``@odata.nextLink`` -> ``odata_next_link``.
    """
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", path)
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower()
    if not name or name[0].isdigit():
        name = f"f_{name}"
    if keyword.iskeyword(name):
        name += "_"
    return name


def build_record(
    definitions: Mapping[str, DefinitionSpec], name: str, data: Mapping[str, Any]
) -> Record:
    """Convert a decoded response into a :class:`Record` of definition *name*."""
    fields: dict[str, Any] = {}
    for spec in definitions[name].fields:
        value = data.get(spec.path)
        if spec.type == "array":
            items = value or ()
            if spec.items_ref is not None:
                fields[spec.path] = tuple(
                    build_record(definitions, spec.items_ref, x) for x in items
                )
            else:
                convert = TYPES[spec.items_type or "object"].from_wire
                fields[spec.path] = tuple(convert(x) for x in items)
        elif spec.ref is not None:
            fields[spec.path] = (
                build_record(definitions, spec.ref, value) if isinstance(value, Mapping) else None
            )
        else:
            fields[spec.path] = TYPES[spec.type].from_wire(value)
    return Record(name, fields)


def field_value(output: Any, path: str) -> Any:
    """Read the field at manifest *path* from a generated model or a :class:`Record`."""
    if isinstance(output, Record):
        return output.fields.get(path)
    return getattr(output, attribute_name(path))
