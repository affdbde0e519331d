# SPDX-License-Identifier: MIT
"""
Run the connector's YAML workflows durably on Temporal (the ``temporal`` extra).

One generic workflow interprets the YAML with the same interpreter as local runs
(:mod:`connector.workflow`); every action of every connector is an activity of its own
name (``twilio/send_text_message``). Start workers with ``twilio-connector worker
--temporal HOST:PORT`` and submit runs with ``twilio-connector run WORKFLOW.yaml
--engine temporal``. See ``docs/scaling.md``.

Names resolve on first use, so the command line can read the defaults without
importing temporalio.
"""

from __future__ import annotations

import typing as _typing

from ._defaults import (
    DEFAULT_ADDRESS,
    DEFAULT_MAX_CONCURRENT_ACTIVITIES,
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
)


if _typing.TYPE_CHECKING:
    from ._activities import ActionCall, ConnectorActivities
    from ._client import (
        bundle_files,
        result_from_json,
        run_on_temporal,
        stored_items,
        submit_workflow,
    )
    from ._store import RunStore, StoredFile
    from ._worker import create_worker, run_worker
    from ._workflow import BatchWorkflow, ConnectorWorkflow, WorkflowRun


__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_MAX_CONCURRENT_ACTIVITIES",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TASK_QUEUE",
    "ActionCall",
    "BatchWorkflow",
    "ConnectorActivities",
    "ConnectorWorkflow",
    "RunStore",
    "StoredFile",
    "WorkflowRun",
    "bundle_files",
    "create_worker",
    "result_from_json",
    "run_on_temporal",
    "run_worker",
    "stored_items",
    "submit_workflow",
]

_LAZY = {
    "ActionCall": "._activities",
    "ConnectorActivities": "._activities",
    "BatchWorkflow": "._workflow",
    "ConnectorWorkflow": "._workflow",
    "RunStore": "._store",
    "StoredFile": "._store",
    "WorkflowRun": "._workflow",
    "bundle_files": "._client",
    "result_from_json": "._client",
    "create_worker": "._worker",
    "run_on_temporal": "._client",
    "run_worker": "._worker",
    "stored_items": "._client",
    "submit_workflow": "._client",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'connector.temporal' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
