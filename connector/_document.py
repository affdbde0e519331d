# SPDX-License-Identifier: MIT
"""
YAML documents, parsed once, with the line and column of every value kept.

Manifests, workflows and ``call --inputs`` files are all read by :func:`read_document`.
It composes the YAML into a node tree with libyaml's C parser (PyYAML's pure-Python
parser when PyYAML was built without libyaml), checks the tree against fixed limits,
then constructs the Python data from that same tree; the tree is kept so that a place
in the data (a JSON path such as ``steps[0].with.to``) can be turned back into a line
and a column (:meth:`Document.locate`).

The limits are checked before any value is built, so a hostile document fails in
milliseconds and in little memory:

- :data:`MAX_BYTES` of text, counted in UTF-8 bytes; a larger file is not read past it;
- expanding aliases may add at most :data:`MAX_ALIAS_NODES` nodes and :data:`MAX_BYTES`
  characters of scalars. An alias (``*name``) stands for a whole copy of the node its
  anchor (``&name``) marks, so each alias adds the nodes of that copy (every scalar,
  sequence and mapping, keys included, copies inside the copy expanded too) and the
  characters of its scalars: the count is how much larger the document becomes once
  read as a tree, as a JSON Schema validator, an encoder or a template compiler reads
  it. A "billion laughs" passes the node limit within its first few lines; a document
  without aliases adds nothing, whatever its size; one alias of a long text many
  times over passes the text limit. An alias inside the node it names (a recursive
  document) is refused as well;
- :data:`MAX_DEPTH` collections nested in one another, aliases expanded: libyaml
  stops at 1,000 written levels, but aliases can nest a document deeper than any
  recursion limit with a handful of nodes.

Every failure is a :class:`DocumentError` carrying one located
:class:`~connector.errors.Problem`; the loaders turn it into their own error
(:class:`~connector.errors.ManifestError`, :class:`~connector.errors.WorkflowError`,
the command line's exit status 2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import attrs
import yaml

from .errors import ConnectorError, Problem


if TYPE_CHECKING:
    import jsonschema


__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "Document",
    "DocumentError",
    "dotted",
    "locate",
    "read_document",
]

#: The largest document read, in bytes of UTF-8 (10 MiB); also the most characters of
#: scalars that expanding its aliases may add.
MAX_BYTES: Final = 10 * 1024 * 1024
#: The most nodes that expanding a document's aliases may add (see the module docstring).
MAX_ALIAS_NODES: Final = 100_000
#: The deepest nesting of collections (sequences and mappings), aliases expanded.
MAX_DEPTH: Final = 100

# libyaml's parser is about ten times faster than the pure-Python one, which remains
# the fall-back for builds of PyYAML without libyaml.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Where = Sequence[str | int]


class DocumentError(ConnectorError):
    """
    A YAML document cannot be read: the file is missing, not UTF-8, not YAML, or past
    the limits. The loaders re-raise it as their own error, so it never reaches users.

    Attributes:
        problem: What is wrong, and where.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


@attrs.frozen
class Document:
    """
    A parsed YAML document.

    Attributes:
        file: The file it was read from (or the name given to its text).
        text: Its text.
        data: The Python data: dicts, lists, strings, numbers, booleans, ``None`` (and
            dates, for YAML timestamps).
        root: The node tree the data was built from (``None`` for an empty document).
    """

    file: str
    text: str
    data: Any
    root: yaml.Node | None = attrs.field(eq=False, repr=False)

    def locate(self, path: Where, *, key: bool = False) -> tuple[int | None, int | None]:
        """The 1-based line and column of *path* (see :func:`locate`)."""
        return locate(self.root, path, key=key)

    def problem(self, message: str, path: Where = (), *, key: bool = False) -> Problem:
        """
        Build a :class:`~connector.errors.Problem` at *path*.

        Args:
            message: What is wrong.
            path: Where, as keys and indexes from the root.
            key: Locate the key that *path* ends with (a misspelt key), not its value.
        """
        line, column = locate(self.root, path, key=key)
        return Problem(self.file, line, column, dotted(path), message)

    def schema_problems(
        self,
        errors: Iterable[jsonschema.ValidationError],
        describe: Callable[[jsonschema.ValidationError], str],
    ) -> list[Problem]:
        """
        Turn JSON Schema errors into located problems, in document order.

        Args:
            errors: The validator's errors about :attr:`data`.
            describe: The message for an error (each format words its errors).

        Returns:
            One problem per error, at the value the error is about.
        """
        problems = [self.problem(describe(e), list(e.absolute_path)) for e in errors]
        return sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.where))


def read_document(source: str | Path, *, text: str | None = None) -> Document:
    """
    Read and parse a YAML document, within the limits of this module.

    Args:
        source: The file to read, or a name for *text*.
        text: The YAML itself; when given, *source* only names it.

    Returns:
        The document.

    Raises:
        DocumentError: The file cannot be read, is not UTF-8 or not YAML, or is past a
            limit; the problem says where.
    """
    file = str(source)
    if text is None:
        text = _read(file)
    elif len(text) * 4 > MAX_BYTES and len(text.encode("utf-8")) > MAX_BYTES:
        # Only a text that might be too large is encoded to measure it.
        raise DocumentError(_too_large(file, text.encode("utf-8")))
    loader = None
    try:
        loader = _Loader(text)  # the pure-Python reader checks the characters here
        try:
            root = loader.get_single_node()
        except RecursionError as exc:  # the pure-Python parser recurses once per level
            raise DocumentError(
                Problem(file, None, None, "", f"nested deeper than {MAX_DEPTH} levels")
            ) from exc
        if root is None:
            return Document(file, text, None, None)
        _check_expansion(file, root)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise DocumentError(_yaml_problem(file, text, exc)) from exc
    except ValueError as exc:
        # A scalar that YAML 1.1 types but Python refuses: a timestamp such as
        # 2024-13-45, an integer of more than 4300 digits.
        raise DocumentError(Problem(file, None, None, "", f"not valid YAML: {exc}")) from exc
    finally:
        if loader is not None:
            loader.dispose()
    return Document(file, text, data, root)


def _read(file: str) -> str:
    try:
        with open(file, "rb") as stream:
            # One byte more than the limit tells a file at the limit from a larger one,
            # without reading a huge file into memory.
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DocumentError(Problem(file, None, None, "", f"cannot read: {exc.strerror}")) from exc
    if len(raw) > MAX_BYTES:
        raise DocumentError(_too_large(file, raw))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DocumentError(Problem(file, line, column, "", "not UTF-8 text")) from exc
    # Newlines as text mode reads them, so that a workflow's text (its fingerprint in
    # the run journal) is what it was when files were read with read_text().
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _yaml_problem(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    line: int | None = None
    column: int | None = None
    message = str(exc)
    if isinstance(exc, yaml.MarkedYAMLError):
        message = str(exc.problem or exc.context)
        if exc.problem_mark is not None:
            line, column = exc.problem_mark.line + 1, exc.problem_mark.column + 1
    elif isinstance(exc, yaml.reader.ReaderError):
        message = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        at = exc.position
        if _Loader is not yaml.SafeLoader:  # libyaml counts bytes of UTF-8, not characters
            at = len(text.encode("utf-8")[:at].decode("utf-8", "ignore"))
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
    return Problem(file, line, column, "", f"not valid YAML: {message}")


def _too_large(file: str, raw: bytes) -> Problem:
    # Located at the line where the limit is passed, so the message reads as file:line.
    line = raw.count(b"\n", 0, MAX_BYTES) + 1
    return Problem(
        file, line, None, "", f"larger than {MAX_BYTES // (1024 * 1024)} MiB; not read further"
    )


class _Frame:
    """A collection being walked by :func:`_check_expansion`, with its totals so far."""

    __slots__ = ("chars", "height", "kids", "next", "node", "nodes", "path")

    def __init__(self, node: yaml.Node, path: Where) -> None:
        self.node = node
        self.path = path
        # A mapping's children are its keys and values, in turn.
        self.kids: list[yaml.Node] = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
        )
        self.next = 0
        self.nodes = 1
        self.chars = 0
        self.height = 1

    def child_path(self, index: int) -> Where:
        if not isinstance(self.node, yaml.MappingNode):
            return (*self.path, index)
        if index % 2 == 0:
            return self.path  # a key: a problem there is about its mapping
        key = self.kids[index - 1]
        return (*self.path, str(key.value) if isinstance(key, yaml.ScalarNode) else "?")

    def marker(self, index: int) -> yaml.Node:
        """The node whose start best shows where child *index* is written."""
        if isinstance(self.node, yaml.MappingNode):
            # A value is marked by its key: an alias's node is its anchor's, written
            # elsewhere, while the key sits on the alias's line.
            return self.kids[index - index % 2]
        return self.node


def _check_expansion(file: str, root: yaml.Node) -> None:
    """
    Refuse a tree whose aliases expand it by more than :data:`MAX_ALIAS_NODES` nodes
    or :data:`MAX_BYTES` characters of scalars, or nest it deeper than
    :data:`MAX_DEPTH` collections, or that holds an alias to an enclosing node.

    The composer gives an alias the very node object of its anchor, so a node met a
    second time is an alias, and it adds the nodes and characters of its anchor's
    node, aliases within expanded. Each node is walked once, depth first and without
    recursion, and each collection's expanded totals are kept: a billion laughs costs
    a few hundred steps, not a billion.
    """
    if isinstance(root, yaml.ScalarNode):
        return
    # id(collection) -> its nodes, characters and height, aliases expanded.
    done: dict[int, tuple[int, int, int]] = {}
    scalars: set[int] = set()
    added_nodes = added_chars = 0
    open_ = {id(root)}
    stack = [_Frame(root, ())]

    def fail(message: str, frame: _Frame, index: int, marker: yaml.Node | None = None) -> NoReturn:
        mark = (marker or frame.marker(index)).start_mark
        where = dotted(frame.child_path(index))
        raise DocumentError(Problem(file, mark.line + 1, mark.column + 1, where, message))

    def too_many(frame: _Frame, index: int) -> None:
        if added_nodes > MAX_ALIAS_NODES:
            fail(
                f"aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes", frame, index
            )
        if added_chars > MAX_BYTES:
            fail(
                "aliases expand the document by more than "
                f"{MAX_BYTES // (1024 * 1024)} MiB of text",
                frame,
                index,
            )

    while stack:
        frame = stack[-1]
        kids, count = frame.kids, len(frame.kids)
        while frame.next < count:
            index = frame.next
            child = kids[index]
            frame.next += 1
            if type(child) is yaml.ScalarNode:
                # The common case, kept short: most of a document is scalars.
                length = len(child.value)
                frame.nodes += 1
                frame.chars += length
                if id(child) in scalars:
                    added_nodes += 1
                    added_chars += length
                    too_many(frame, index)
                else:
                    scalars.add(id(child))
                continue
            totals = done.get(id(child))
            if totals is not None:
                nodes, chars, height = totals
                added_nodes += nodes
                added_chars += chars
                too_many(frame, index)
                if len(stack) + height > MAX_DEPTH:
                    message = f"nested deeper than {MAX_DEPTH} levels once aliases are expanded"
                    fail(message, frame, index)
                frame.nodes += nodes
                frame.chars += chars
                frame.height = max(frame.height, height + 1)
                continue
            if id(child) in open_:
                message = "an alias refers to a node that contains it (a recursive document)"
                fail(message, frame, index)
            if len(stack) >= MAX_DEPTH:
                fail(f"nested deeper than {MAX_DEPTH} levels", frame, index, child)
            open_.add(id(child))
            stack.append(_Frame(child, frame.child_path(index)))
            break
        else:
            stack.pop()
            open_.discard(id(frame.node))
            done[id(frame.node)] = (frame.nodes, frame.chars, frame.height)
            if stack:
                parent = stack[-1]
                parent.nodes += frame.nodes
                parent.chars += frame.chars
                parent.height = max(parent.height, frame.height + 1)


def dotted(path: Where) -> str:
    """Render a path inside a document as ``actions.get_message.parameters[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def locate(
    node: yaml.Node | None, path: Where, *, key: bool = False
) -> tuple[int | None, int | None]:
    """
    Find the 1-based line and column of *path* in a node tree.

    Args:
        node: The root of the tree.
        path: Keys and indexes from the root.
        key: When *path* ends with a key that is found, where that key is written
            rather than its value.

    Returns:
        Where the deepest node that *path* reaches starts: the value itself, or the
        closest enclosing value when the path goes past what the document holds (a
        missing key is reported at the mapping that lacks it). ``(None, None)`` for an
        empty document.
    """
    best = node
    for index, part in enumerate(path):
        if isinstance(best, yaml.MappingNode):
            # The last of duplicate keys, as the value the data holds is the last one.
            for name, value in reversed(best.value):
                if name.value == str(part):
                    best = name if key and index == len(path) - 1 else value
                    break
            else:
                break
        elif isinstance(best, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(best.value):
                break
            best = best.value[part]
        else:
            break
    if best is None:
        return None, None
    return best.start_mark.line + 1, best.start_mark.column + 1
