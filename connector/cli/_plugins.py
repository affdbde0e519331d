# SPDX-License-Identifier: MIT
"""
``plugins``: list the installed connector plugins.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import EXIT_FAILED, EXIT_OK, print_json


__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``plugins``."""
    parser = sub.add_parser(
        "plugins",
        help="list installed connector plugins",
        description=(
            "List the connector plugins installed in the entry-point group "
            "'workflow_connectors'. Every one is loaded, so broken ones show up, each "
            "blamed on its distribution; the others are still listed (exit 1 if any is "
            "broken)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_plugins)


def _plugins(ns: argparse.Namespace) -> int:
    from ..plugin import ENTRY_POINT_GROUP, PluginLoadError, find_plugins, load_plugin

    rows: list[dict[str, Any]] = []
    for info in find_plugins():
        row: dict[str, Any] = {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "entry_point": info.entry_point,
        }
        try:
            loaded = load_plugin(info)
        except PluginLoadError as exc:
            row.update(ok=False, error=str(exc))
        else:
            row.update(
                ok=True,
                id=loaded.id,
                title=loaded.title,
                actions=[action.id for action in loaded.spec.actions.values()],
            )
        rows.append(row)
    if ns.json:
        print_json(rows)
    else:
        for row in rows:
            where = f"{row['distribution']} {row['version']}".strip()
            if row["ok"]:
                count = len(row["actions"])
                print(f"{row['name']:<16} {where:<40} {row['title']} ({count} actions)")
            else:
                print(f"{row['name']:<16} {where:<40} BROKEN: {row['error']}")
        if not rows:
            print(f"no plugins installed in entry-point group {ENTRY_POINT_GROUP!r}")
    return EXIT_OK if all(row["ok"] for row in rows) else EXIT_FAILED
