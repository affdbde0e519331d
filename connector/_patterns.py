# SPDX-License-Identifier: MIT
"""
The one notion of a pattern over message bodies: regular expressions matched in
linear time, shared by the emulator and the connector.

Message bodies come from outside, and Python's ``re`` backtracks: ``^(a+)+$`` over a
30-character body took about a minute, during which the emulator answered nothing (a
listener, or a run waiting for replies, would stall the same way). Every pattern
searched in a body (the emulator's ``body_matches`` in the admin API and the inbox, a
trigger's ``body_matches``, ``wait_for_reply``'s ``pattern``) is compiled here with RE2
(``google-re2``), whose matching time grows linearly with the text, whatever the
pattern. RE2 takes Python's syntax except what needs backtracking: backreferences
(``\\1``, ``(?P=name)``), lookahead and lookbehind (``(?=``, ``(?!``, ``(?<=``,
``(?<!``), atomic groups and possessive quantifiers; such a pattern is refused with the
reason. ``\\d``, ``\\w``, ``\\s`` and ``\\b`` match ASCII only, and a repetition
count is at most 1000. Patterns given in Python (``expect_sms``) keep ``re``.

The emulator may import this module (``docs/architecture.md``): it imports nothing
else of the package.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2  # type: ignore[import-untyped]


__all__ = ["BodyPattern", "PatternError", "compile_linear"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # refusals are answered, not printed on the server's stderr
_OPTIONS.max_mem = 8 << 20  # the compiled program's memory, so a pattern's size is bounded too


class BodyPattern(Protocol):
    """What a message search needs of a compiled pattern (``re.Pattern`` is one)."""

    @property
    def pattern(self) -> str:
        """The pattern's text."""
        ...

    def search(self, string: str) -> Any:
        """A match object, or ``None``."""
        ...


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


class _Linear:
    """An RE2 pattern with ``re``'s ``pattern`` and ``search``."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    def __repr__(self) -> str:
        return f"re2.compile({self.pattern!r})"

    def search(self, string: str) -> Any:
        try:
            return self._compiled.search(string)
        except UnicodeEncodeError:
            # RE2 reads UTF-8; a lone surrogate cannot be encoded, so stands for U+FFFD.
            return self._compiled.search(string.encode("utf-8", "replace").decode())


def compile_linear(pattern: str) -> BodyPattern:
    """
    Compile *pattern* for linear-time searching.

    Args:
        pattern: A regular expression in the syntax RE2 shares with Python.

    Returns:
        The compiled pattern.

    Raises:
        PatternError: It uses syntax RE2 does not have, or is too large.
    """
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"{reason} (searches use RE2: no backreferences or lookaround)"
        ) from None
    except UnicodeEncodeError:
        raise PatternError("the pattern is not valid text (a lone surrogate)") from None
    return _Linear(pattern, compiled)
