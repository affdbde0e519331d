# SPDX-License-Identifier: MIT
"""
The shipped JSON Schema of workflow files (``connector/schemas/workflow.schema.json``).

Editors can use it for completion; the loader validates every document against it
before the cross-checks that a schema cannot express.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema


__all__ = ["workflow_schema", "workflow_validator"]


def workflow_schema() -> dict[str, Any]:
    """Return the workflow JSON Schema (draft 2020-12) as a dict."""
    text = resources.files("connector").joinpath("schemas/workflow.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def workflow_validator() -> jsonschema.Draft202012Validator:
    """Return a validator for workflow documents (built once)."""
    return jsonschema.Draft202012Validator(workflow_schema())
