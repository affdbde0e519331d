# SPDX-License-Identifier: MIT
"""
``${{ ... }}`` templates over JMESPath.

A string that is exactly one expression keeps the expression's type (a list stays a
list); expressions embedded in longer text are turned into text (``null`` becomes the
empty string, lists and objects become JSON). Nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import functools
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.visitor

from ..errors import ExpressionError


__all__ = [
    "CsvRow",
    "ExpressionError",
    "Template",
    "WorkflowFunctions",
    "compile_template",
    "csv_header",
    "csv_rows",
    "has_expression",
    "read_paths",
]

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


class WorkflowFunctions(jmespath.functions.Functions):
    """
    The functions workflows may call, besides JMESPath's own.

    Relative paths are resolved against the workflow file's directory.

    Args:
        base_dir: The workflow file's directory.
        clock: Returns the current time (UTC); replaced in tests.
        confine: Files must lie in the workflow's directory or the output directory
            (for templates that read ``trigger`` or ``item``; see ``_confine``).
    """

    def __init__(
        self,
        base_dir: Path,
        clock: Callable[[], dt.datetime] | None = None,
        *,
        confine: bool = False,
    ) -> None:
        super().__init__()
        self.base_dir = base_dir
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.confine = confine

    def confined(self) -> WorkflowFunctions:
        """The same functions, reading only inside the directories outside data may use."""
        twin = copy.copy(self)
        twin.confine = True
        return twin

    @functools.cached_property
    def visitor(self) -> jmespath.visitor.TreeInterpreter:
        """The interpreter that evaluates expressions with these functions (one per
        object: building one for each evaluation costs more than most evaluations)."""
        return jmespath.visitor.TreeInterpreter(jmespath.Options(custom_functions=self))

    def _path(self, name: str) -> Path:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        if self.confine:
            from ._confine import confine

            confine(path, self.base_dir)
        return path

    def text(self, name: str) -> str:
        """The text of the file *name* (relative to the workflow's directory)."""
        return self._path(name).read_text(encoding="utf-8-sig")

    def csv_stream(self, name: str) -> tuple[Iterator[CsvRow], int | None]:
        """
        The rows of CSV file *name*, read as they are taken, and about how many there
        are (its lines, less the header; a quoted newline counts one too many).
        """
        path = self._path(name)
        with path.open("rb") as raw:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: raw.read(1 << 20), b""))

        def rows() -> Iterator[CsvRow]:
            with path.open(newline="", encoding="utf-8-sig") as f:
                for row in csv.DictReader(f):
                    yield CsvRow(row, name)

        return rows(), max(0, lines - 1)

    def stream(
        self, template: Template, context: Mapping[str, Any]
    ) -> tuple[Iterator[Any], int | None] | None:
        """
        The items of a ``for_each`` that is exactly ``read_csv(FILE)``, read row by row
        (any other expression is evaluated whole: ``None``).
        """
        if not template.whole:
            return None
        node = next(iter(template.expressions)).parsed
        if node["type"] != "function_expression" or node["value"] != "read_csv":
            return None
        if len(node["children"]) != 1:
            return None
        try:
            name = self.visitor.visit(node["children"][0], context)
        except jmespath.exceptions.JMESPathError as exc:
            raise ExpressionError(template.text, str(exc)) from exc
        if not isinstance(name, str):
            return None
        try:
            return self.csv_stream(name)
        except OSError as exc:
            raise ExpressionError(template.text, f"{exc.strerror}: {exc.filename}") from exc

    @jmespath.functions.signature({"types": ["string"]})
    def _func_read_csv(self, name: str) -> list[CsvRow]:
        """Read a CSV file with a header row into a list of objects."""
        return csv_rows(self.text(name), name)

    @jmespath.functions.signature({"types": ["string"]})
    def _func_read_json(self, name: str) -> Any:
        """Read a JSON file."""
        return json.loads(self.text(name))

    @jmespath.functions.signature({"types": ["string"]})
    def _func_read_lines(self, name: str) -> list[str]:
        """Read a text file into its non-blank lines, stripped."""
        return [line.strip() for line in self.text(name).splitlines() if line.strip()]

    @jmespath.functions.signature()
    def _func_now(self) -> str:
        """The current time, ISO 8601 in UTC."""
        return str(self._clock().isoformat())

    @jmespath.functions.signature()
    def _func_today(self) -> str:
        """Today's date in UTC, ``YYYY-MM-DD``."""
        return str(self._clock().date().isoformat())

    @jmespath.functions.signature({"types": ["number"]})
    def _func_days_ago(self, days: float) -> str:
        """The UTC date *days* days ago, ``YYYY-MM-DD``."""
        return str((self._clock() - dt.timedelta(days=days)).date().isoformat())

    @jmespath.functions.signature({"types": []})
    def _func_string(self, value: Any) -> str:
        """Any value as text (``null`` as the empty string, lists and objects as JSON)."""
        return stringify(value)


class MissingColumn(ValueError):
    """An expression read a column that the CSV file's header does not have."""


class CsvRow(dict[str, str]):
    """
    One row of a CSV file read by ``read_csv``: reading a column that the header does not
    have is an error, not ``null``, so a misspelt ``item.nmae`` fails the item before
    anything is sent instead of sending "Hi ".
    """

    __slots__ = ("_file",)

    def __init__(self, row: Mapping[str, str], file: str) -> None:
        super().__init__(row)
        self._file = file

    def get(self, key: str, default: Any = None) -> Any:
        # JMESPath reads fields with get(); only a column of the header may be read.
        if key in self:
            return self[key]
        import difflib

        close = difflib.get_close_matches(key, list(self), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise MissingColumn(
            f"{self._file} has no column {key!r}{hint} (columns: {', '.join(self)})"
        )


#: How many items of a step's outputs one expression may read; beyond, a run would hold
#: millions of items in memory: count them with length(), or export them.
READ_LIMIT = 100_000


class LazyList(list[Any]):
    """
    A list read from somewhere else (the journal) a batch at a time: what
    ``steps.<id>.outputs`` is for a step with many items, so that expressions and
    ``for_each`` over it never hold every item in memory.

    It holds no elements of its own; every read goes through *iterate* and *count*. An
    expression may read at most *limit* of its items. Do not subclass it: JMESPath knows
    list types by their class name.

    Args:
        name: What it is, for messages (``steps.send.outputs``).
        count: Returns how many items there are.
        iterate: Returns a fresh iterator over the items.
        limit: How many items an expression may read (``READ_LIMIT`` unless
            given); 0 for a list whose items are kept elsewhere (a Temporal run's large
            steps): only its length can be read, and ``for_each`` over it is refused too.
    """

    def __init__(
        self,
        name: str,
        count: Callable[[], int],
        iterate: Callable[[], Iterator[Any]],
        *,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        self._name = name
        self._count = count
        self._iterate = iterate
        self._limit = limit

    def __len__(self) -> int:
        return self._count()

    def __bool__(self) -> bool:
        return self._count() > 0

    def __iter__(self) -> Iterator[Any]:
        # What JMESPath's projections and filters call: bounded, since they collect.
        return self._bounded()

    def stream(self) -> Iterator[Any]:
        """Every item, for ``for_each`` and the built-ins (no limit: nothing is kept)."""
        return self._bounded() if self._limit == 0 else self._iterate()

    def _bounded(self) -> Iterator[Any]:
        limit = READ_LIMIT if self._limit is None else self._limit
        if not limit:
            # Its items were never here: refuse before asking for any.
            raise TooLarge(
                f"{self._name} has {self._count():,} items, kept outside this run; an "
                f"expression may read at most {limit} of them here. Count them with "
                f"length({self._name}), or read them with `twilio-connector runs export RUN_ID`"
            )
        for count, item in enumerate(self._iterate(), 1):
            if count > limit:
                raise TooLarge(
                    f"{self._name} has {self._count():,} items; an expression may read at "
                    f"most {limit:,} of them. Count them with length({self._name}), or "
                    "read them with `twilio-connector runs export RUN_ID`"
                )
            yield item

    def materialise(self) -> list[Any]:
        """A plain list of every item (refused past ``READ_LIMIT``)."""
        return list(self._bounded())

    def __getitem__(self, index: Any) -> Any:
        return self.materialise()[index]

    def __contains__(self, value: object) -> bool:
        return any(item == value for item in self._bounded())

    def __reversed__(self) -> Iterator[Any]:
        items: list[Any] = self.materialise()
        return iter(items[::-1])

    def __eq__(self, other: object) -> bool:
        return self.materialise() == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"<{self._name}: {self._count()} items>"

    def index(self, value: Any, *args: Any) -> int:
        return self.materialise().index(value, *args)

    def count(self, value: Any) -> int:
        return self.materialise().count(value)

    def copy(self) -> list[Any]:
        return self.materialise()


class TooLarge(ValueError):
    """An expression would read more items of a step's outputs than it may."""


# JMESPath checks function arguments by the class's name: give it ours.
jmespath.functions.TYPES_MAP.update({"CsvRow": "object", "LazyList": "array"})
jmespath.functions.REVERSE_TYPES_MAP["object"] += ("CsvRow",)
jmespath.functions.REVERSE_TYPES_MAP["array"] += ("LazyList",)


def materialise(value: Any) -> Any:
    """*value* with every :class:`LazyList` inside it read into a plain list (bounded)."""
    if isinstance(value, LazyList):
        return [materialise(v) for v in value.materialise()]
    if isinstance(value, CsvRow):
        return dict(value)
    if isinstance(value, dict):
        return {k: materialise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [materialise(v) for v in value]
    return value


def csv_rows(text: str, name: str) -> list[CsvRow]:
    """The rows of CSV *text* with a header row, each a :class:`CsvRow` of file *name*."""
    return [CsvRow(row, name) for row in csv.DictReader(io.StringIO(text, newline=""))]


def csv_header(text: str) -> list[str]:
    """The column names of CSV *text*."""
    return next(csv.reader(io.StringIO(text, newline="")), [])


def stringify(value: Any) -> str:
    """Turn an expression's value into text for an embedded expression."""
    value = materialise(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@attrs.frozen
class Template:
    """
    A compiled template: literal text and JMESPath expressions.

    Attributes:
        text: The original string.
        parts: Literal strings and compiled expressions, in order.
        whole: Whether the string is exactly one expression (so its value keeps its type).
    """

    text: str
    parts: tuple[str | jmespath.parser.ParsedResult, ...]
    whole: bool
    # Per part, the field names of a plain path (``item.phone``), read without JMESPath's
    # tree walk: it is most of what a 100,000-item step renders.
    _paths: tuple[tuple[str, ...] | None, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        paths = tuple(
            None if isinstance(part, str) else _field_path(part.parsed) for part in self.parts
        )
        object.__setattr__(self, "_paths", paths)

    @property
    def expressions(self) -> Iterator[jmespath.parser.ParsedResult]:
        """The compiled expressions."""
        for part in self.parts:
            if not isinstance(part, str):
                yield part

    def render(self, context: Mapping[str, Any], functions: WorkflowFunctions) -> Any:
        """
        Evaluate the template.

        Raises:
            ExpressionError: An expression failed (a bad argument type, an unreadable file).
        """
        visitor = functions.visitor
        values = []
        for part, path in zip(self.parts, self._paths, strict=True):
            if isinstance(part, str):
                values.append(part)
                continue
            try:
                value = (
                    visitor.visit(part.parsed, context) if path is None else _read(path, context)
                )
            except jmespath.exceptions.JMESPathError as exc:
                raise ExpressionError(part.expression, str(exc)) from exc
            except OSError as exc:
                raise ExpressionError(part.expression, f"{exc.strerror}: {exc.filename}") from exc
            except (ValueError, csv.Error) as exc:
                raise ExpressionError(part.expression, str(exc)) from exc
            if self.whole:
                return value
            values.append(stringify(value))
        return "".join(str(v) for v in values)


def _field_path(node: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The names of a JMESPath of plain fields (``a``, ``a.b.c``); ``None`` for others."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] != "subexpression":
        return None
    names: list[str] = []
    for child in node["children"]:
        found = _field_path(child)
        if found is None:
            return None
        names.extend(found)
    return tuple(names)


def _read(path: tuple[str, ...], value: Any) -> Any:
    # As JMESPath reads a field: get() on a mapping (a CsvRow's refuses unknown
    # columns), None on anything else.
    for name in path:
        try:
            value = value.get(name)
        except AttributeError:
            return None
    return value


def has_expression(value: Any) -> bool:
    """Whether *value* is a string holding at least one ``${{ }}``."""
    return isinstance(value, str) and "${{" in value


def compile_template(text: str) -> Template:
    """
    Compile a string that may hold ``${{ }}`` expressions.

    Raises:
        ExpressionError: An expression is not valid JMESPath.
    """
    parts: list[str | jmespath.parser.ParsedResult] = []
    position = 0
    for match in _EXPRESSION.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        source = match.group(1).strip()
        if not source:
            raise ExpressionError(source, "empty expression")
        try:
            parts.append(jmespath.compile(source))
        except jmespath.exceptions.ParseError as exc:
            raise ExpressionError(source, f"not valid JMESPath: {exc.msg}") from exc
        except jmespath.exceptions.LexerError as exc:
            raise ExpressionError(source, f"not valid JMESPath: {exc.message}") from exc
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    if "${{" in "".join(p for p in parts if isinstance(p, str)):
        raise ExpressionError(text, "an unclosed ${{")
    expressions = [p for p in parts if not isinstance(p, str)]
    # Surrounding whitespace does not turn "  ${{ x }} " into text.
    whole = len(expressions) == 1 and all(not p.strip() for p in parts if isinstance(p, str))
    if whole:
        parts = list(expressions)
    return Template(text, tuple(parts), whole)


Path_ = tuple[str, ...]
#: A step into a list's items, in a path returned by :func:`read_paths`.
ITEM = "[]"


def read_paths(parsed: jmespath.parser.ParsedResult | Mapping[str, Any]) -> list[Path_]:
    """
    The root-relative paths an expression (compiled, or a node of its tree) reads, such
    as ``("steps", "send", "outputs", "[]", "sid")`` for ``steps.send.outputs[*].sid``.
    Paths read relative to something unknown (after a pipe, inside a function's result)
    are left out.
    """
    out: list[Path_] = []
    node = parsed if isinstance(parsed, Mapping) else parsed.parsed
    _walk(node, (), out)
    return out


def _walk(node: Mapping[str, Any], base: Path_ | None, out: list[Path_]) -> Path_ | None:
    """Record what *node* reads relative to *base*; return the path it evaluates to."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        if base is None:
            return None
        path = (*base, node["value"])
        out.append(path)
        return path
    if kind == "subexpression":
        current = base
        for child in children:
            current = _walk(child, current, out)
        return current
    if kind in ("current", "identity"):
        return base
    if kind == "index_expression":
        left = _walk(children[0], base, out)
        if left is None:
            return None
        return left if children[1]["type"] == "slice" else (*left, ITEM)
    if kind == "flatten":
        return _walk(children[0], base, out)
    if kind in ("projection", "filter_projection"):
        left = _walk(children[0], base, out)
        element = None if left is None else (*left, ITEM)
        for child in children[1:]:
            _walk(child, element, out)
        return None
    if kind in ("value_projection", "pipe"):
        _walk(children[0], base, out)
        _walk(children[1], None, out)
        return None
    if kind == "expref":
        _walk(children[0], None, out)
        return None
    for child in children:
        if isinstance(child, Mapping):
            _walk(child, base, out)
    return None
