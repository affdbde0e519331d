# SPDX-License-Identifier: MIT
"""
Workflows: YAML files that chain the connector's actions, checked statically, run with
one shared connection, and journaled so a run resumes without sending anything twice.

See ``docs/workflows.md`` for the format.
"""

from __future__ import annotations

from ..errors import ExpressionError, Problem, RunError, WorkflowError
from ._checks import check_workflow
from ._expressions import Template, WorkflowFunctions
from ._journal import DeliveryRecord, ItemRecord, Journal, RunRecord, default_journal_path
from ._model import (
    ConnectionSpec,
    InputSpec,
    StepSpec,
    TriggerOn,
    WaitSpec,
    Workflow,
    load_workflow,
)
from ._runner import (
    ItemResult,
    Progress,
    RunResult,
    StepResult,
    new_run_id,
    resolve_inputs,
    run_workflow,
    trigger_payload,
)
from ._schema import workflow_schema


__all__ = [
    "ConnectionSpec",
    "DeliveryRecord",
    "ExpressionError",
    "InputSpec",
    "ItemRecord",
    "ItemResult",
    "Journal",
    "Problem",
    "Progress",
    "RunError",
    "RunRecord",
    "RunResult",
    "StepResult",
    "StepSpec",
    "Template",
    "TriggerOn",
    "WaitSpec",
    "Workflow",
    "WorkflowError",
    "WorkflowFunctions",
    "check_workflow",
    "default_journal_path",
    "load_workflow",
    "new_run_id",
    "resolve_inputs",
    "run_workflow",
    "trigger_payload",
    "workflow_schema",
]
