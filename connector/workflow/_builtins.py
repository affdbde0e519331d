# SPDX-License-Identifier: MIT
"""
Built-in actions, used as ``uses: workflow/<action>``: small file operations that
workflows need around the connector's actions.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs


__all__ = ["BUILTINS", "BUILTIN_CONNECTOR", "Builtin", "target_path"]

BUILTIN_CONNECTOR = "workflow"


@attrs.frozen
class Builtin:
    """
    A built-in action.

    Attributes:
        id: Its id (``write_jsonl``).
        description: What it does.
        inputs: Input name -> (type, required).
        outputs: Output field -> type.
        run: Takes the inputs and the workflow's directory, returns the outputs.
    """

    id: str
    description: str
    inputs: Mapping[str, tuple[str, bool]]
    outputs: Mapping[str, str]
    run: Callable[[Mapping[str, Any], Path], dict[str, Any]]

    def check(self, inputs: Mapping[str, Any]) -> list[str]:
        """Return the problems with *inputs* (types are checked for given values)."""
        problems = []
        for key, value in inputs.items():
            if key not in self.inputs:
                problems.append(f"{key}: unknown input; known inputs: {', '.join(self.inputs)}")
                continue
            kind = self.inputs[key][0]
            if kind == "array" and not isinstance(value, list):
                problems.append(f"{key}: must be a list")
            elif kind == "string" and not isinstance(value, str):
                problems.append(f"{key}: must be a string")
        for key, (_, required) in self.inputs.items():
            if required and key not in inputs:
                problems.append(f"{key}: is required")
        return problems


def _open_private(path: Path) -> TextIO:
    """Open *path* for writing, truncated, readable and writable by its owner only."""
    # What workflows write holds phone numbers and message bodies (an export, an event).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if sys.platform != "win32":
            os.fchmod(fd, 0o600)  # also when an earlier attempt left the file behind
        return os.fdopen(fd, "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def target_path(name: str, base_dir: Path) -> Path:
    """Where a built-in writes *name*: relative to the workflow's directory, ``~`` expanded."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def _write_jsonl(inputs: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    path = target_path(inputs["path"], base_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name first, so a crash never leaves half a file behind.
    partial = path.with_name(path.name + ".partial")
    with _open_private(partial) as f:
        for item in inputs["items"]:
            f.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
    partial.replace(path)
    return {"path": str(path), "count": len(inputs["items"])}


def _write_json(inputs: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    path = target_path(inputs["path"], base_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with _open_private(partial) as f:
        f.write(json.dumps(inputs["value"], ensure_ascii=False, indent=2) + "\n")
    partial.replace(path)
    return {"path": str(path)}


BUILTINS: Mapping[str, Builtin] = {
    "write_jsonl": Builtin(
        "write_jsonl",
        "Write a list to a JSON Lines file (one item per line), relative to the workflow.",
        {"path": ("string", True), "items": ("array", True)},
        {"path": "string", "count": "integer"},
        _write_jsonl,
    ),
    "write_json": Builtin(
        "write_json",
        "Write any value to a JSON file, relative to the workflow.",
        {"path": ("string", True), "value": ("any", True)},
        {"path": "string"},
        _write_json,
    ),
}
