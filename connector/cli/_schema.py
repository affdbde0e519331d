# SPDX-License-Identifier: MIT
"""
``schema``: print the JSON Schema of workflow files or of connector manifests, for
editors and validators anywhere (not only inside a checkout).
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

from ._common import EXIT_OK


__all__ = ["SCHEMA_URL", "register"]

#: Where each shipped schema is published: its ``$id``, the file on the repository's
#: main branch, so the URL never changes (``{name}`` is ``workflow`` or ``manifest``).
SCHEMA_URL: Final = (
    "https://raw.githubusercontent.com/twilio-workflow-connector/twilio-workflow-connector"
    "/main/connector/schemas/{name}.schema.json"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schema``."""
    parser = sub.add_parser(
        "schema",
        help="print the JSON Schema of workflows or manifests (for editors)",
        description=(
            "Print a JSON Schema (draft 2020-12) on stdout: 'workflow' for workflow "
            "files, 'manifest' for connector manifests; the one of this version. Its $id "
            f"is the published copy, {SCHEMA_URL.format(name='NAME')}."
        ),
    )
    parser.add_argument("name", choices=("workflow", "manifest"), metavar="workflow|manifest")
    parser.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    from importlib import resources

    text = resources.files("connector").joinpath(f"schemas/{args.name}.schema.json").read_text()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK
