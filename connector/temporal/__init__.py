# SPDX-License-Identifier: MIT
"""
Run the connector's YAML workflows durably on Temporal (the ``temporal`` extra).

Every action call is one ``invoke_action`` activity; a generic workflow interprets the
YAML, fan-out included. Start workers with ``twilio-connector worker --temporal
HOST:PORT`` and submit runs with ``twilio-connector run WORKFLOW.yaml --engine
temporal``. See ``docs/scaling.md``.
"""

from __future__ import annotations

from ._activities import ActionCall, ConnectorActivities
from ._client import submit_workflow
from ._worker import create_worker, run_worker
from ._workflow import ConnectorWorkflow, WorkflowRun


__all__ = [
    "ActionCall",
    "ConnectorActivities",
    "ConnectorWorkflow",
    "WorkflowRun",
    "create_worker",
    "run_worker",
    "submit_workflow",
]
