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

# `nox -s docs` builds with -n: every cross-reference must resolve, except these.
_UNRESOLVABLE = {
    # The standard library and the dependencies: the build runs offline, so there is no
    # intersphinx inventory to link them to. ("Path" and "dt.datetime" are annotations
    # of class signatures that autodoc leaves unevaluated.)
    "py:class": [
        "Path",
        "asyncio.locks.Event",
        "collections.abc.AsyncIterator",
        "collections.abc.Awaitable",
        "collections.abc.Callable",
        "collections.abc.Collection",
        "collections.abc.Coroutine",
        "collections.abc.Iterable",
        "collections.abc.Iterator",
        "collections.abc.Mapping",
        "collections.abc.Sequence",
        "collections.deque",
        "datetime.datetime",
        "decimal.Decimal",
        "dt.datetime",
        "importlib.metadata.EntryPoint",
        "os.PathLike",
        "pathlib.Path",
        "re.Pattern",
        "AbstractAsyncContextManager",
        "aiohttp.ClientSession",
        "aiohttp.web_app.Application",
        "jmespath.parser.ParsedResult",
        "jmespath.visitor.TreeInterpreter",
        "_asyncio.Future",
        "asyncio.Future",
        "yaml.Node",
        "_pytest.fixtures.FixtureRequest",
        "temporalio.client._client.Client",
        "temporalio.client._workflow.WorkflowHandle",
        "temporalio.worker._worker.Worker",
    ],
    "py:exc": ["pytest.fail.Exception", "temporalio.exceptions.ApplicationError"],
}
_UNRESOLVABLE_OURS = {
    # Internal types that public signatures mention but no public module exports, so
    # there is no page to link to.
    "py:class": [
        "Ingest",  # connector.receiving._poller.Ingest, a Callable alias
        "connector._manifest.ConnectionParamSpec",
        "connector._manifest.ItemSpec",
        "connector._manifest.PagingSpec",
        "connector._manifest.Rule",
        "connector._manifest.Throttle",
        "connector._manifest.TriggerSpec",
        "connector._patterns.BodyPattern",
        # The shared rules of waits for replies, documented with connector.workflow.
        "connector._replies.InboxCursor",
        "connector._replies.Inbound",
        "connector._replies.ReplySettings",
        "connector._pacing.Booking",
        "connector._pacing.Pacer",
        "connector._pacing.SenderBook",
        "connector._pacing.SenderStatus",
        "connector.emulator._records.MessageRecord",
        "connector.emulator._state.EmulatorState",
        "connector.workflow._journal.StepRecord",
        # Type aliases of connector.workflow._interpreter, documented with Interpreter.
        "CallFn",
        "FanOut",
        "StepDelegate",
        # Activity and child-workflow arguments of the Temporal driver.
        "connector.temporal._workflow.BatchRun",
        "connector.temporal._activities.ReadRows",
        "connector.temporal._activities.LookForReplies",
        "connector.temporal._activities.StoreItems",
    ],
}
nitpick_ignore = [
    (role, target)
    for group in (_UNRESOLVABLE, _UNRESOLVABLE_OURS)
    for role, targets in group.items()
    for target in targets
]


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
