# SPDX-License-Identifier: MIT
"""
Workflows: YAML files that chain the connector's actions, checked statically, run with
one shared connection, and journaled so a run resumes without sending anything twice.

See ``docs/workflows.md`` for the format.
"""

from __future__ import annotations

from ..errors import ExpressionError, JournalVersionError, Problem, RunError, WorkflowError
from ._builtins import BUILTIN_CONNECTOR
from ._calls import (
    ActionRunner,
    CallRequest,
    Claims,
    LocalClaims,
    Prior,
    find_sent_message,
)
from ._checks import check_workflow
from ._confine import OUTPUT_DIR_ENV, reads_untrusted
from ._expressions import CsvRow, LazyList, Template, WorkflowFunctions, csv_rows, read_paths
from ._interpreter import (
    Call,
    Clock,
    Interpreter,
    ItemResult,
    Outcome,
    Recorder,
    RunResult,
    StepDelegate,
    StepResult,
)
from ._journal import (
    DELIVERY_LEASE,
    DeliveryRecord,
    ItemRecord,
    Journal,
    RunRecord,
    brief,
    default_journal_path,
    item_record,
)
from ._model import (
    ConnectionSpec,
    InputSpec,
    StepSpec,
    TriggerOn,
    WaitSpec,
    Workflow,
    load_workflow,
    read_workflow,
)
from ._replies import Ended, Inbox, Looked, ReplyWait
from ._runner import (
    LoopClock,
    Progress,
    fan_out,
    item_label,
    new_run_id,
    report_eta,
    resolve_inputs,
    run_workflow,
    trigger_payload,
)
from ._schema import workflow_schema


__all__ = [
    "BUILTIN_CONNECTOR",
    "DELIVERY_LEASE",
    "OUTPUT_DIR_ENV",
    "ActionRunner",
    "Call",
    "CallRequest",
    "Claims",
    "Clock",
    "ConnectionSpec",
    "CsvRow",
    "DeliveryRecord",
    "Ended",
    "ExpressionError",
    "Inbox",
    "InputSpec",
    "Interpreter",
    "ItemRecord",
    "ItemResult",
    "Journal",
    "JournalVersionError",
    "LazyList",
    "LocalClaims",
    "Looked",
    "LoopClock",
    "Outcome",
    "Prior",
    "Problem",
    "Progress",
    "Recorder",
    "ReplyWait",
    "RunError",
    "RunRecord",
    "RunResult",
    "StepDelegate",
    "StepResult",
    "StepSpec",
    "Template",
    "TriggerOn",
    "WaitSpec",
    "Workflow",
    "WorkflowError",
    "WorkflowFunctions",
    "brief",
    "check_workflow",
    "csv_rows",
    "default_journal_path",
    "fan_out",
    "find_sent_message",
    "item_label",
    "item_record",
    "load_workflow",
    "new_run_id",
    "read_paths",
    "read_workflow",
    "reads_untrusted",
    "report_eta",
    "resolve_inputs",
    "run_workflow",
    "trigger_payload",
    "workflow_schema",
]
