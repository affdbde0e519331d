# SPDX-License-Identifier: MIT
"""
Submitting a YAML workflow to Temporal and reading its result back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import jmespath
import jmespath.exceptions
import jmespath.visitor
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .._manifest import ConnectorSpec, default_connector
from ..errors import WorkflowError
from ..workflow import (
    RunResult,
    Workflow,
    WorkflowFunctions,
    new_run_id,
    resolve_inputs,
)
from ._store import RunStore, StoredFile
from ._workflow import (
    BATCH_SIZE,
    HISTORY_LIMIT,
    ConnectorWorkflow,
    WorkflowRun,
    step_from_json,
)


__all__ = [
    "INLINE_FILES_LIMIT",
    "INLINE_FILE_LIMIT",
    "bundle_files",
    "place_files",
    "result_from_json",
    "run_on_temporal",
    "stored_items",
    "submit_workflow",
    "workflow_env",
]

#: The workflow functions that read files; their files travel with the run.
FILE_READERS = frozenset({"read_csv", "read_json", "read_lines"})


def _function_calls(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if node.get("type") == "function_expression" and node.get("value") in FILE_READERS:
        yield node
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            yield from _function_calls(child)


#: A file larger than this never travels in a run's input (Temporal refuses a payload
#: over 2 MiB): a CSV file that a ``for_each`` streams goes to the store instead.
INLINE_FILE_LIMIT = 256 * 1024
#: The files that travel in a run's input, together, at most.
INLINE_FILES_LIMIT = 1024 * 1024


@attrs.frozen
class _FileRead:
    path: Path  # on this machine
    where: tuple[str | int, ...]  # in the document
    streamed: bool  # only ever read by `for_each: ${{ read_csv(NAME) }}`


def _file_reads(
    workflow: Workflow, inputs: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, _FileRead]:
    """The files the workflow reads: the name as the expression gives it -> how."""
    functions = WorkflowFunctions(workflow.base_dir)
    interpreter = jmespath.visitor.TreeInterpreter(jmespath.Options(custom_functions=functions))
    context = {"inputs": dict(inputs), "env": workflow.visible_env(env)}
    found: dict[str, _FileRead] = {}
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
                # What the interpreter streams row by row (WorkflowFunctions.stream).
                streamed = (
                    path[-1:] == ("for_each",)
                    and template.whole
                    and call is expression.parsed
                    and call["value"] == "read_csv"
                    and len(call["children"]) == 1
                )
                earlier = found.get(name)
                found[name] = _FileRead(
                    file, path, streamed and (earlier is None or earlier.streamed)
                )
    return found


def _read(workflow: Workflow, read: _FileRead) -> str:
    try:
        return read.path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise WorkflowError(
            [workflow.problem(f"cannot read {read.path}: {exc.strerror}", read.where)]
        ) from exc


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
    return {
        name: _read(workflow, read) for name, read in _file_reads(workflow, inputs, env).items()
    }


async def place_files(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    env: Mapping[str, str],
    store: RunStore | None,
) -> tuple[dict[str, str], dict[str, StoredFile]]:
    """
    Decide where each file the workflow reads travels: small files in the run's input
    (as :func:`bundle_files` reads them), a CSV file over ``INLINE_FILE_LIMIT`` that
    a ``for_each`` streams into *store*, read by the workers a batch at a time.

    Returns:
        The files in the input (name -> text) and the stored ones (name -> where).

    Raises:
        WorkflowError: A file is too large for the input and cannot be stored (no
            store, or not read by a ``for_each`` of ``read_csv``), or cannot be read.
    """
    inline: dict[str, str] = {}
    stored: dict[str, StoredFile] = {}
    for name, read in _file_reads(workflow, inputs, env).items():
        try:
            size = read.path.stat().st_size
        except OSError as exc:
            raise WorkflowError(
                [workflow.problem(f"cannot read {read.path}: {exc.strerror}", read.where)]
            ) from exc
        if size <= INLINE_FILE_LIMIT:
            inline[name] = _read(workflow, read)
            continue
        big = (
            f"{read.path} is {size:,} bytes, more than a run's input holds ({INLINE_FILE_LIMIT:,})"
        )
        if not read.streamed:
            raise WorkflowError(
                [
                    workflow.problem(
                        f"{big}; on Temporal only `for_each: ${{{{ read_csv(FILE) }}}}` reads "
                        "larger files (a batch at a time, from the store)",
                        read.where,
                    )
                ]
            )
        if store is None:
            raise WorkflowError(
                [
                    workflow.problem(
                        f"{big}: give --redis URL (the workers' Redis), where it is kept "
                        "for the workers to read a batch at a time",
                        read.where,
                    )
                ]
            )
        stored[name] = await store.put_csv(read.path)
    total = sum(len(text.encode()) for text in inline.values())
    if total > INLINE_FILES_LIMIT:
        raise WorkflowError(
            [
                workflow.problem(
                    f"the files it reads come to {total:,} bytes; a run's input holds at most "
                    f"{INLINE_FILES_LIMIT:,} of them",
                    ("steps",),
                )
            ]
        )
    return inline, stored


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
    """
    Rebuild a :class:`~connector.workflow.RunResult` from the workflow's JSON summary:
    each step with its ``counts``, and its items when the summary has them.
    """
    steps = tuple(step_from_json(step) for step in data["steps"])
    return RunResult(
        data["run_id"],
        data["status"],
        data["outputs"],
        steps,
        output_errors=dict(data.get("output_errors") or {}),
    )


def stored_items(result: RunResult) -> int:
    """How many item records of the run its workers kept in the store."""
    return sum(int((step.counts or {}).get("stored", 0)) for step in result.steps)


async def submit_workflow(
    client: Client,
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    task_queue: str,
    run_id: str | None = None,
    env: Mapping[str, str] | None = None,
    store: RunStore | None = None,
    batch_size: int | None = None,
    history_limit: int | None = None,
    connectors: Mapping[str, ConnectorSpec] | None = None,
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
        store: Where large CSV files go (the workers' Redis); without it, a file over
            ``INLINE_FILE_LIMIT`` is refused.
        batch_size: Items per child workflow of a large step (``BATCH_SIZE``).
        history_limit: Events after which the run continues as new (``HISTORY_LIMIT``).
        connectors: The connectors the steps use, by id (Twilio's unless given): the
            steps whose actions wait for replies run their batches all at once.

    Returns:
        The workflow's handle; ``await handle.result()`` gives its JSON result.

    Raises:
        WorkflowError: Bad inputs, or a file the workflow reads cannot be sent.
    """
    values = resolve_inputs(workflow, inputs)
    env = env or {}
    workflow_id = run_id or new_run_id()
    try:
        # Attaching to a run under way (or finished) stores nothing again.
        return await _existing(client, workflow_id)
    except LookupError:
        pass
    files, stored = await place_files(workflow, values, env, store)
    run = WorkflowRun(
        file=workflow.file,
        text=workflow.text,
        inputs=values,
        env=workflow_env(workflow, env),
        files=files,
        base_dir=str(workflow.base_dir),
        stored=stored,
        batch_size=batch_size or BATCH_SIZE,
        history_limit=history_limit or HISTORY_LIMIT,
        waiting=_waiting(workflow, connectors),
    )
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


def _waiting(workflow: Workflow, connectors: Mapping[str, ConnectorSpec] | None) -> list[str]:
    """The steps whose actions wait for replies (``kind: reply``)."""
    known = dict(connectors) if connectors is not None else {}
    known.setdefault(default_connector().id, default_connector())
    waiting = []
    for step in workflow.steps:
        spec = known.get(step.connector_id)
        action = spec.actions.get(step.action_id) if spec is not None else None
        if action is not None and action.kind == "reply":
            waiting.append(step.id)
    return waiting


async def _existing(client: Client, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """The handle of a run of this id, if one was ever started (LookupError if not)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise LookupError(workflow_id) from None
        raise
    return handle


def run_on_temporal(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    address: str,
    task_queue: str,
    namespace: str,
    run_id: str | None,
    env: Mapping[str, str],
    redis_url: str | None = None,
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
        redis_url: The workers' Redis, where large files go (and where the workers keep
            per-item results).

    Raises:
        WorkflowError: Bad inputs, or a file it reads cannot be sent.
        RuntimeError: Temporal is unreachable.
    """

    async def submit() -> RunResult:
        client = await Client.connect(address, namespace=namespace)
        async with contextlib.AsyncExitStack() as stack:
            store = None
            if redis_url is not None:
                store = await stack.enter_async_context(RunStore.from_url(redis_url))
            handle = await submit_workflow(
                client,
                workflow,
                inputs,
                task_queue=task_queue,
                run_id=run_id,
                env=dict(env),
                store=store,
            )
        print(
            f"twilio-connector: run {handle.id} submitted to Temporal at {address} "
            f"(task queue {task_queue}); waiting for it to finish",
            file=sys.stderr,
            flush=True,
        )
        result = result_from_json(await handle.result())
        if stored_items(result):
            where = f" --redis {redis_url}" if redis_url else " --redis URL"
            print(
                f"twilio-connector: per-item results of run {handle.id}: "
                f"twilio-connector runs export {handle.id}{where}",
                file=sys.stderr,
                flush=True,
            )
        return result

    return asyncio.run(submit())
