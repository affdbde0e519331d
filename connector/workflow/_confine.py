# SPDX-License-Identifier: MIT
"""
Paths built from outside data stay inside the workflow's directory.

A trigger's fields and a ``for_each`` item come from outside the workflow (a webhook,
a CSV file, an API answer), so a file name built from them (``failed-${{
trigger.MessageSid }}.json``, ``read_json(item.file)``) may not leave the workflow's
directory, or the output directory named by ``TWILIO_CONNECTOR_OUTPUT_DIR``, once
``..`` and symbolic links are resolved. Names written literally in the workflow or
given as run inputs keep the documented rules (relative to the workflow, or absolute).
Which templates read such data is known statically (:func:`reads_untrusted`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._expressions import Template, read_paths


__all__ = ["OUTPUT_DIR_ENV", "UNTRUSTED_ROOTS", "confine", "reads_untrusted"]

#: The variable naming a directory that paths built from outside data may also use.
OUTPUT_DIR_ENV = "TWILIO_CONNECTOR_OUTPUT_DIR"
#: The context names whose values come from outside the workflow.
UNTRUSTED_ROOTS = frozenset({"trigger", "item"})


class PathOutsideError(ValueError):
    """A path built from outside data leaves the directories it may use."""


def confine(path: Path, base_dir: Path) -> Path:
    """
    Check that *path* stays inside *base_dir* or the output directory.

    Args:
        path: The path, absolute or relative to the current directory.
        base_dir: The workflow's directory.

    Returns:
        *path* unchanged.

    Raises:
        PathOutsideError: It resolves (after ``..`` and symbolic links) elsewhere.
    """
    resolved = path.resolve()
    roots = [base_dir.resolve()]
    output = os.environ.get(OUTPUT_DIR_ENV)
    if output:
        roots.append(Path(output).expanduser().resolve())
    if any(resolved.is_relative_to(root) for root in roots):
        return path
    allowed = f"the workflow's directory {roots[0]}"
    if len(roots) > 1:
        allowed += f" or {OUTPUT_DIR_ENV} ({roots[1]})"
    raise PathOutsideError(
        f"path {path} is built from trigger or item data and resolves to {resolved}, "
        f"outside {allowed}"
    )


def reads_untrusted(template: Template) -> bool:
    """
    Whether *template* may read ``trigger`` or ``item`` (or the whole context, with a
    bare ``@`` or ``*``, which is taken to).

    Args:
        template: A compiled template.

    Returns:
        ``True`` if paths it builds must be confined.
    """
    for expression in template.expressions:
        if any(path and path[0] in UNTRUSTED_ROOTS for path in read_paths(expression)):
            return True
        if _reads_root(expression.parsed, at_root=True):
            return True
    return False


# Nodes whose first child reads the incoming value and whose others read its results.
_CHAINS = frozenset(
    {
        "subexpression",
        "index_expression",
        "flatten",
        "projection",
        "filter_projection",
        "value_projection",
        "pipe",
    }
)


def _reads_root(node: Mapping[str, Any], *, at_root: bool) -> bool:
    """Whether *node* hands the whole root context (not one field of it) to anything."""
    kind = node["type"]
    children = [c for c in node.get("children", []) if isinstance(c, Mapping)]
    if kind in ("current", "identity"):
        return at_root
    if kind == "expref":
        return False  # evaluated against elements, not the root
    if kind in _CHAINS and children:
        first, rest = children[0], children[1:]
        # `@.name` reads one field of the root, which read_paths reports.
        if kind == "subexpression" and first["type"] == "current" and rest:
            return any(_reads_root(c, at_root=False) for c in rest)
        return _reads_root(first, at_root=at_root) or any(
            _reads_root(c, at_root=False) for c in rest
        )
    return any(_reads_root(c, at_root=at_root) for c in children)
