"""Sphinx configuration: MyST Markdown pages, furo theme, autodoc for the API pages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.ext import napoleon


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "twilio-workflow-connector"
author = "twilio-workflow-connector contributors"
copyright = "2026, twilio-workflow-connector contributors"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "twilio-workflow-connector"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Pages link to files of the repository (examples, manifests) that are not documents.
suppress_warnings = ["myst.xref_missing"]


def _napoleon_except_attributes(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    # Napoleon reads an attribute's docstring as "TYPE: DESCRIPTION", so "The sender.
    # (JSON: ``From``)" would render with "The sender. (JSON" as its type. Our
    # attributes take their types from annotations; their docstrings are prose.
    if what not in ("attribute", "data", "property"):
        napoleon._process_docstring(app, what, name, obj, options, lines)


def setup(app: Sphinx) -> None:
    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)
            app.connect("autodoc-process-docstring", _napoleon_except_attributes)
