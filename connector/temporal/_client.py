# SPDX-License-Identifier: MIT
"""
Submitting a YAML workflow to Temporal and reading its result back.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.visitor
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from .._manifest import default_connector
from ..errors import WorkflowError
from ..workflow import (
    ItemResult,
    RunResult,
    StepResult,
    Workflow,
    WorkflowFunctions,
    new_run_id,
    resolve_inputs,
)
from ._workflow import ConnectorWorkflow, WorkflowRun


__all__ = ["bundle_files", "result_from_json", "run_on_temporal", "submit_workflow", "workflow_env"]

#: The workflow functions that read files; their files travel with the run.
FILE_READERS = frozenset({"read_csv", "read_json", "read_lines"})


def _function_calls(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if node.get("type") == "function_expression" and node.get("value") in FILE_READERS:
        yield node
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            yield from _function_calls(child)


def bundle_files(
    workflow: Workflow, inputs: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, str]:
    """
    Read the files a workflow's ``read_csv``/``read_json``/``read_lines`` calls name, so
    that they travel with the run: workers on other machines need not see this disk, and
    the run never changes if a file does.

    A file name may be built from ``inputs`` and ``env`` only (as in
    ``read_csv(inputs.recipients)``), since it is evaluated here, before any step runs.

    Returns:
        The name as the expression gives it -> the file's text.

    Raises:
        WorkflowError: A file name depends on step results, or a file cannot be read.
    """
    functions = WorkflowFunctions(workflow.base_dir)
    interpreter = jmespath.visitor.TreeInterpreter(jmespath.Options(custom_functions=functions))
    context = {"inputs": dict(inputs), "env": workflow.visible_env(env)}
    files: dict[str, str] = {}
    for path, template in workflow.templates.items():
        for expression in template.expressions:
            for call in _function_calls(expression.parsed):
                try:
                    name = interpreter.visit(call["children"][0], context)
                except (IndexError, jmespath.exceptions.JMESPathError):
                    name = None
                if not isinstance(name, str):
                    raise WorkflowError(
                        [
                            workflow.problem(
                                f"with --engine temporal, {call['value']}() needs a file name "
                                "built from inputs or env only (files are sent with the run)",
                                path,
                            )
                        ]
                    )
                file = Path(name).expanduser()
                if not file.is_absolute():
                    file = workflow.base_dir / file
                try:
                    files[name] = file.read_text(encoding="utf-8-sig")
                except OSError as exc:
                    raise WorkflowError(
                        [workflow.problem(f"cannot read {file}: {exc.strerror}", path)]
                    ) from exc
    return files


def workflow_env(workflow: Workflow, env: Mapping[str, str]) -> dict[str, str]:
    """
    The environment variables the workflow declares (only those travel with the run).

    Raises:
        WorkflowError: One of them holds a secret connection value: secrets never enter
            a run's inputs or its history.
    """
    visible = workflow.visible_env(env)
    secrets = {
        env[p.env] for p in default_connector().connection if p.secret and p.env and env.get(p.env)
    }
    leaking = sorted(name for name, value in visible.items() if value in secrets)
    if leaking:
        raise WorkflowError(
            [
                workflow.problem(
                    f"{name} holds a secret connection value; expressions never see secrets",
                    ("env",),
                )
                for name in leaking
            ]
        )
    return visible


def result_from_json(data: Mapping[str, Any]) -> RunResult:
    """Rebuild a :class:`~connector.workflow.RunResult` from the workflow's JSON result."""
    steps = []
    for step in data["steps"]:
        items = tuple(
            ItemResult(
                index=item["index"],
                status=item["status"],
                output=item["output"],
                error=item["error"],
                error_code=item["error_code"],
                reconciled=item["reconciled"],
            )
            for item in step["items"]
        )
        steps.append(
            StepResult(
                id=step["id"],
                uses=step["uses"],
                status=step["status"],
                items=items,
                error=step["error"],
                seconds=step["seconds"],
            )
        )
    return RunResult(data["run_id"], data["status"], data["outputs"], tuple(steps))


async def submit_workflow(
    client: Client,
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    task_queue: str,
    run_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkflowHandle[Any, Any]:
    """
    Start a run of *workflow* on Temporal (the workflow should be checked already).

    The run id is the Temporal workflow id. Submitting a run id that is running
    attaches to that run; one that has finished is not started again (nothing is
    resent): its handle is returned and its result stands.

    Args:
        client: A connected Temporal client.
        workflow: The loaded, checked workflow.
        inputs: Input values (strings are converted to the declared types).
        task_queue: Where the workers poll.
        run_id: The workflow id; a new run id unless given.
        env: What ``env`` reads in expressions; only the variables read are sent.

    Returns:
        The workflow's handle; ``await handle.result()`` gives its JSON result.

    Raises:
        WorkflowError: Bad inputs, or a file the workflow reads cannot be bundled.
    """
    values = resolve_inputs(workflow, inputs)
    env = env or {}
    run = WorkflowRun(
        file=workflow.file,
        text=workflow.text,
        inputs=values,
        env=workflow_env(workflow, env),
        files=bundle_files(workflow, values, env),
        base_dir=str(workflow.base_dir),
    )
    workflow_id = run_id or new_run_id()
    try:
        return await client.start_workflow(
            ConnectorWorkflow.run,
            run,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(workflow_id)


def run_on_temporal(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    address: str,
    task_queue: str,
    namespace: str,
    run_id: str | None,
    env: Mapping[str, str],
) -> RunResult:
    """
    Submit a checked workflow to Temporal and wait for its result (for ``run --engine
    temporal``).

    Args:
        workflow: The loaded, checked workflow.
        inputs: Its inputs.
        address: Temporal's frontend, ``HOST:PORT``.
        task_queue: Where the workers poll.
        namespace: The Temporal namespace.
        run_id: The workflow id; a new run id unless given.
        env: The environment the workflow's ``env`` expressions read.

    Raises:
        WorkflowError: Bad inputs, or a file it reads cannot be bundled.
        RuntimeError: Temporal is unreachable.
    """

    async def submit() -> RunResult:
        client = await Client.connect(address, namespace=namespace)
        handle = await submit_workflow(
            client,
            workflow,
            inputs,
            task_queue=task_queue,
            run_id=run_id,
            env=dict(env),
        )
        print(
            f"twilio-connector: run {handle.id} submitted to Temporal at {address} "
            f"(task queue {task_queue}); waiting for it to finish",
            file=sys.stderr,
            flush=True,
        )
        result: dict[str, Any] = await handle.result()
        return result_from_json(result)

    return asyncio.run(submit())
