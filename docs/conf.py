"""Sphinx configuration: MyST Markdown pages, furo theme, autodoc for the API page."""

from __future__ import annotations

import sys
from pathlib import Path


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
