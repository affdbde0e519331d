# SPDX-License-Identifier: MIT
"""
``run``, ``validate`` and ``runs``: workflows from the command line.

Exit codes: 0 every step succeeded, 1 a step failed, 2 the workflow (or the command
line, or the settings) is invalid, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..temporal import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    add_consent_option,
    add_emulator_switch,
    add_state_option,
    complain,
    environ,
    fail,
    key_value,
    print_json,
    print_problems,
    problem_fields,
    rate_limit,
    run_async,
    workflow_connection,
    workflow_connectors,
)


if TYPE_CHECKING:
    from ..workflow import Journal, Problem, RunResult, StepResult, Workflow

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run``, ``validate`` and ``runs``."""
    parser = sub.add_parser(
        "run",
        help="run a workflow (resume one with --run-id)",
        description=(
            "Run a workflow. Without Twilio credentials it runs against an emulator (the "
            "running one, else a throwaway embedded one). Each run is journaled; resume an "
            "interrupted run with --run-id."
        ),
    )
    parser.add_argument("workflow", metavar="WORKFLOW.yaml")
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a workflow input",
    )
    parser.add_argument("--run-id", help="resume this run (or start one with this id)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--trigger-json",
        metavar="JSON",
        help="for a workflow with on: run it once with this event (a JSON object, or "
        "@FILE); `twilio-connector listen` runs it for each event received",
    )
    parser.add_argument(
        "--rate-limit",
        type=rate_limit,
        metavar="CALLS/SECONDS",
        help="pace every call of the run (overrides the workflow's connection.rate_limit)",
    )
    add_state_option(parser)
    add_consent_option(parser)
    add_emulator_switch(parser)
    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=("local", "temporal"),
        default="local",
        help="run here (default), or submit to Temporal workers and wait for the result",
    )
    engine.add_argument(
        "--temporal",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help=f"Temporal frontend, with --engine temporal (default {DEFAULT_ADDRESS})",
    )
    engine.add_argument(
        "--task-queue",
        default=DEFAULT_TASK_QUEUE,
        help=f"the workers' task queue, with --engine temporal (default {DEFAULT_TASK_QUEUE})",
    )
    engine.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help="Temporal namespace, with --engine temporal"
    )
    engine.add_argument(
        "--redis",
        metavar="URL",
        help="with --engine temporal: the workers' Redis (redis://HOST:PORT/DB), where large "
        "CSV files go for the workers to read; per-item results are read back with "
        "`runs export RUN_ID --redis URL`",
    )
    parser.set_defaults(handler=_run_command)

    validate = sub.add_parser(
        "validate",
        help="check a workflow without running it",
        description=(
            "Check workflows without running them: every problem of each file in one "
            "pass, printed as FILE:LINE:COLUMN: place: message (a misspelt key with the "
            "key it most likely is). Exit 2 if any is found."
        ),
    )
    validate.add_argument("workflows", nargs="+", metavar="WORKFLOW.yaml")
    validate.add_argument(
        "--json",
        action="store_true",
        help="print the findings as JSON on stdout: {ok, problems, files: [{file, ok, "
        "steps, problems: [{field, message, file, line, column}]}]}",
    )
    validate.set_defaults(handler=_validate)

    runs = sub.add_parser(
        "runs",
        help="list recent workflow runs and their state; export a run's items",
        description=(
            "List recent workflow runs (runs), or stream one run's per-item results "
            "(runs export RUN_ID) as CSV or JSON lines."
        ),
    )
    runs.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    runs.add_argument("--json", action="store_true", help="print JSON")
    add_state_option(runs)
    runs.set_defaults(handler=_runs)
    verbs = runs.add_subparsers(dest="runs_command", metavar="export")
    export = verbs.add_parser(
        "export",
        help="stream a run's per-item results (CSV or JSON lines)",
        description=(
            "Write every item of a run's steps, one per row: step, index, key (the "
            "recipient), state, sid, status, error_code, error, attempts, started, "
            "finished, reconciled, and output (other than messages, as JSON). Rows are "
            "read from the journal as they are written, so a run of a million items "
            "exports in constant memory. With --redis, the run is a Temporal run and "
            "its items are read from the workers' Redis instead."
        ),
    )
    export.add_argument("run_id", metavar="RUN_ID")
    export.add_argument("--step", help="only this step's items")
    export.add_argument(
        "--format", choices=("csv", "jsonl"), default="csv", help="CSV (default) or JSON lines"
    )
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    export.add_argument(
        "--redis",
        metavar="URL",
        help="a Temporal run: read its items from the workers' Redis (redis://HOST:PORT/DB)",
    )
    add_state_option(export)
    export.set_defaults(handler=_export)


def _checked(file: str) -> tuple[Workflow | None, list[Problem]]:
    """A workflow and every problem found in it: its format's, then the static checks'."""
    from ..workflow import check_workflow, read_workflow

    workflow, problems = read_workflow(file)
    if workflow is not None:
        found = {*problems, *check_workflow(workflow, workflow_connectors(workflow))}
        problems = sorted(found, key=lambda p: (p.line or 0, p.column or 0, p.where, p.message))
    return workflow, problems


def _load_checked(file: str) -> Workflow:
    """Load and check a workflow; raise WorkflowError with every problem."""
    from ..workflow import WorkflowError

    workflow, problems = _checked(file)
    if problems or workflow is None:
        raise WorkflowError(problems)
    return workflow


def _validate(args: argparse.Namespace) -> int:
    from ..errors import ConnectorError

    files = []
    for file in args.workflows:
        try:
            workflow, problems = _checked(file)
        except ConnectorError as exc:  # an installed plugin that does not load
            return fail(args, exc)
        steps = len(workflow.steps) if workflow is not None and not problems else None
        files.append({"file": file, "ok": not problems, "steps": steps, "problems": problems})
    if args.json:
        count = sum(len(entry["problems"]) for entry in files)
        print_json(
            {
                "ok": count == 0,
                "problems": count,
                "files": [{**e, "problems": problem_fields(e["problems"])} for e in files],
            }
        )
    else:
        for entry in files:
            if entry["problems"]:
                print_problems(entry["problems"])
            else:
                count = entry["steps"]
                print(f"{entry['file']}: ok ({count} step{'s' if count != 1 else ''})")
    return EXIT_OK if all(entry["ok"] for entry in files) else EXIT_INVALID


def _run_command(args: argparse.Namespace) -> int:
    from ..errors import ConnectorError
    from ..workflow import Journal, WorkflowError, default_journal_path, new_run_id, resolve_inputs

    given = dict(args.input)
    if args.engine == "temporal" and (args.state or args.rate_limit is not None):
        return fail(
            args,
            "--state and --rate-limit apply to local runs: on Temporal the history is the "
            "journal and the workers pace the calls (twilio-connector worker --rate-limit)",
        )
    if args.engine == "temporal" and args.consent:
        return fail(
            args,
            "--consent applies to local runs: on Temporal the workers check each send "
            "against theirs (the Redis of `worker --redis`, or TWILIO_CONSENT_LEDGER)",
        )
    if args.engine != "temporal" and args.redis is not None:
        return fail(args, "--redis applies to --engine temporal (a local run keeps its journal)")
    if args.engine == "temporal" and args.trigger_json is not None:
        return fail(
            args,
            "--trigger-json runs a workflow here; it cannot be combined with --engine temporal",
        )
    try:
        workflow = _load_checked(args.workflow)
    except WorkflowError as exc:
        return fail(args, exc)
    if args.engine == "temporal":
        return _run_temporal(workflow, given, args)
    trigger = None
    if args.trigger_json is not None:
        try:
            trigger = _trigger_json(args.trigger_json)
        except (OSError, ValueError) as exc:
            return fail(args, f"--trigger-json: {exc}", kind="invalid_input")
        if workflow.trigger is not None:
            from ..receiving import trigger_mismatch

            # As the listener would: an event the trigger's filters refuse starts nothing.
            reason = trigger_mismatch(workflow.trigger, workflow.trigger.uses, trigger)
            if reason is not None:
                return fail(
                    args,
                    f"--trigger-json: this event would not start {args.workflow} ({reason}); "
                    "nothing ran",
                    kind="invalid_input",
                )
    journal_path = args.state or default_journal_path()
    run_id = args.run_id or new_run_id()
    try:
        with Journal(journal_path) as journal:
            record = journal.run(args.run_id) if args.run_id else None
            if record is None:
                resolve_inputs(workflow, given)  # fail on bad inputs before connecting
            verb = "resuming" if record is not None else "starting"
            complain("run", f"{verb} run {run_id} (journal {journal_path})")
            try:
                result = run_async(_run(workflow, given, journal, run_id, args, trigger))
            except KeyboardInterrupt:
                # Only a run the journal holds can be resumed; one stopped while
                # connecting never started.
                if journal.run(run_id) is None:
                    complain("run", f"interrupted before run {run_id} started")
                else:
                    complain("run", f"interrupted; resume with --run-id {run_id}")
                return EXIT_INTERRUPTED
    except ConnectorError as exc:
        # Invalid workflows, inputs and settings, and refused resumes, exit 2; others 1.
        return fail(args, exc)
    if not result.ok:
        complain(
            "run",
            f"run {run_id} failed; resume with --run-id {run_id} to retry what failed "
            "and run what did not (what succeeded is not repeated)",
        )
    _print_result(result, args.json)
    return EXIT_OK if result.ok else EXIT_FAILED


def _run_temporal(workflow: Workflow, given: Mapping[str, str], args: argparse.Namespace) -> int:
    from ..workflow import WorkflowError

    # Imported here so that local runs never import temporalio (an optional extra).
    try:
        from ..temporal import run_on_temporal
    except ImportError as exc:
        return fail(
            args,
            "--engine temporal needs the temporal extra "
            f"(pip install 'twilio-workflow-connector[temporal]'): {exc}",
            kind="configuration",
        )
    try:
        result = run_on_temporal(
            workflow,
            given,
            address=args.temporal,
            task_queue=args.task_queue,
            namespace=args.namespace,
            run_id=args.run_id,
            env=environ(),
            redis_url=args.redis,
        )
    except WorkflowError as exc:
        return fail(args, exc)
    except RuntimeError as exc:  # temporalio's connection failures
        return fail(args, f"Temporal at {args.temporal}: {exc}", kind="network")
    except KeyboardInterrupt:
        complain("run", "stopped waiting; the run goes on in Temporal")
        return EXIT_INTERRUPTED
    _print_result(result, args.json)
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_result(result: RunResult, as_json: bool) -> None:
    if as_json:
        print_json(_result_json(result))
    else:
        _print_summary(result)


async def _run(
    workflow: Workflow,
    given: Mapping[str, str],
    journal: Journal,
    run_id: str,
    args: argparse.Namespace,
    trigger: Mapping[str, Any] | None = None,
) -> RunResult:
    from ..plugin import TWILIO
    from ..workflow import resolve_inputs, run_workflow
    from ._progress import BarProgress, LineProgress

    env = environ()
    record = journal.run(run_id)
    inputs = dict(record.inputs) if record is not None else resolve_inputs(workflow, given)
    connectors = workflow_connectors(workflow)
    # Bars on a terminal; lines elsewhere, and with --log-json (one JSON object each).
    bars = sys.stderr.isatty() and not args.log_json
    progress = BarProgress(sys.stderr) if bars else LineProgress(sys.stderr)
    async with contextlib.AsyncExitStack() as stack:
        opened = {
            connector_id: await stack.enter_async_context(
                workflow_connection(workflow, connectors[connector_id], inputs, args, "run")
            )
            for connector_id in {TWILIO, *workflow.connector_ids}
        }
        with progress:
            return await run_workflow(
                workflow,
                given,
                opened.pop(TWILIO),
                journal,
                run_id=run_id,
                progress=progress,
                env=dict(env),
                trigger=trigger,
                connections=opened,
            )


def _trigger_json(value: str) -> dict[str, Any]:
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError("the event must be a JSON object")
    return event


def _failures(step: StepResult, limit: int = 100) -> list[dict[str, Any]]:
    """The step's first failures (index, recipient or other key, error, Twilio code)."""
    if step.counts is not None and "failures" in step.counts:
        return list(step.counts["failures"])[:limit]
    found = []
    for item in step.items:
        if item.status == "failed":
            found.append(
                {
                    "index": item.index,
                    "key": item.label,
                    "error": item.error,
                    "code": item.error_code,
                }
            )
            if len(found) == limit:
                break
    return found


def _skips(step: StepResult, limit: int = 100) -> list[dict[str, Any]]:
    """The step's first skipped items (a send to an opted-out recipient), with why."""
    if step.counts is not None:
        return list(step.counts.get("skips", ()))[:limit]
    return [
        {"index": item.index, "key": item.label, "reason": item.error, "code": item.error_code}
        for item in step.items
        if item.status == "skipped"
    ][:limit]


def _step_counts(step: StepResult) -> dict[str, Any]:
    if step.counts is not None:
        # Counted by the journal: a million items are not read again to be counted.
        counts = step.counts
        return {
            "calls": counts["calls"],
            "succeeded": counts["succeeded"],
            "failed": counts["failed"],
            "reconciled": counts["reconciled"],
            "skipped": counts.get("skipped", 0),
            "resumed": counts.get("resumed", 0),
            "message_status": dict(sorted(counts["statuses"].items())),
            "error_codes": {str(k): v for k, v in sorted(counts["error_codes"].items())},
        }
    statuses: Counter[str] = Counter()
    codes: Counter[int] = Counter()
    for item in step.items:
        output = item.output
        if isinstance(output, Mapping) and "status" in output and "sid" in output:
            statuses[str(output["status"])] += 1
            if output.get("error_code"):
                codes[int(output["error_code"])] += 1
        if item.error_code:
            codes[item.error_code] += 1
    return {
        "calls": len(step.items),
        "succeeded": sum(1 for i in step.items if i.status == "succeeded"),
        "failed": sum(1 for i in step.items if i.status == "failed"),
        "reconciled": sum(1 for i in step.items if i.reconciled),
        "skipped": sum(1 for i in step.items if i.status == "skipped"),
        "resumed": sum(1 for i in step.items if i.resumed),
        "message_status": dict(sorted(statuses.items())),
        "error_codes": {str(k): v for k, v in sorted(codes.items())},
    }


def _result_json(result: RunResult) -> dict[str, Any]:
    steps = []
    for step in result.steps:
        entry: dict[str, Any] = {"id": step.id, "uses": step.uses, "status": step.status}
        if step.resumed:
            entry["resumed"] = True
        else:
            entry.update(_step_counts(step))
            entry["seconds"] = round(step.seconds, 3)
        if step.error:
            entry["error"] = step.error
        errors = [
            {"index": f["index"], "item": f.get("key"), "error": f["error"], "code": f["code"]}
            for f in _failures(step)
        ]
        if errors:
            entry["errors"] = errors
        skips = _skips(step)
        if skips:
            entry["skips"] = skips
        steps.append(entry)
    return {
        "run_id": result.run_id,
        "status": result.status,
        "outputs": dict(result.outputs),
        "steps": steps,
    }


def _print_summary(result: RunResult) -> None:
    """
    The outputs, then the failed items by name, then the table of steps: the table comes
    last so that a long output (2,000 SIDs) never pushes it off the screen.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    if result.outputs:
        console.print("Outputs:")
        console.print_json(json.dumps(dict(result.outputs), ensure_ascii=False))
    for step in result.steps:
        counts = _step_counts(step)
        failures = _failures(step, limit=5)
        for failure in failures:
            key = failure.get("key")
            name = f"{step.id} {key}" if key else f"{step.id}[{failure['index']}]"
            error = failure.get("error") or ""
            console.print(f"[red]{escape(name)}[/red]: {escape(error)}", highlight=False)
        if counts["failed"] > len(failures):
            console.print(
                f"{step.id}: {counts['failed'] - len(failures)} more failures (see --json)"
            )
        skips = _skips(step, limit=5)
        for skip in skips:
            key = skip.get("key")
            name = f"{step.id} {key}" if key else f"{step.id}[{skip['index']}]"
            reason = skip.get("reason") or ""
            console.print(
                f"[yellow]{escape(name)} skipped[/yellow]: {escape(reason)}", highlight=False
            )
        if counts["skipped"] > len(skips):
            console.print(f"{step.id}: {counts['skipped'] - len(skips)} more skipped (see --json)")
        if step.error and not failures:
            console.print(f"[red]{step.id}[/red]: {escape(step.error)}", highlight=False)
    table = Table(title=f"Run {result.run_id}: {result.status}")
    columns = ("Step", "Status", "Calls", "OK", "Failed", "Skipped", "Messages", "Twilio codes")
    for column in (*columns, "Time"):
        table.add_column(column)
    for step in result.steps:
        if step.resumed:
            table.add_row(step.id, f"{step.status} (earlier)", *[""] * 7)
            continue
        counts = _step_counts(step)
        messages = ", ".join(f"{k} {v}" for k, v in counts["message_status"].items())
        codes = ", ".join(f"{k} x{v}" for k, v in counts["error_codes"].items())
        extra = []
        if counts["reconciled"]:
            extra.append(f"{counts['reconciled']} found by lookup")
        if counts["resumed"]:
            extra.append(f"{counts['resumed']} from earlier")
        ok = str(counts["succeeded"]) + (f" ({'; '.join(extra)})" if extra else "")
        calls = counts["calls"]
        rate = f", {calls / step.seconds:.1f}/s" if calls > 1 and step.seconds > 0 else ""
        table.add_row(
            step.id,
            step.status,
            str(calls),
            ok,
            str(counts["failed"]),
            str(counts["skipped"]),
            messages,
            codes,
            f"{step.seconds:.1f}s{rate}",
        )
    console.print(table)


def _export(args: argparse.Namespace) -> int:
    import csv

    from ..errors import ConfigurationError
    from ..workflow import Journal, default_journal_path

    if args.redis is not None:
        if args.state is not None:
            complain("runs", "--state reads a local journal, --redis a Temporal run's items")
            return EXIT_INVALID
        return _export_temporal(args)
    path = args.state or default_journal_path()
    if not path.exists():
        complain("runs", f"no journal at {path}")
        return EXIT_INVALID
    try:
        journal = Journal(path)
    except ConfigurationError as exc:
        complain("runs", exc)
        return EXIT_INVALID
    with journal, contextlib.ExitStack() as stack:
        if journal.run(args.run_id) is None:
            complain("runs", f"no run {args.run_id!r} in {path}")
            return EXIT_INVALID
        steps = journal.item_steps(args.run_id)
        if args.step is not None:
            if args.step not in steps:
                complain("runs", f"run {args.run_id} has no items of a step {args.step!r}")
                return EXIT_INVALID
            steps = [args.step]
        out = (
            stack.enter_context(args.output.open("w", newline="", encoding="utf-8"))
            if args.output
            else sys.stdout
        )
        columns = list(EXPORT_COLUMNS)
        writer = csv.DictWriter(out, columns) if args.format == "csv" else None
        if writer is not None:
            writer.writeheader()
        for step_id in steps:
            for record in journal.iter_items(args.run_id, step_id):
                row = _export_row(step_id, record)
                if writer is not None:
                    writer.writerow(row)
                else:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return EXIT_OK


def _export_temporal(args: argparse.Namespace) -> int:
    """``runs export RUN_ID --redis URL``: a Temporal run's items, from the workers' store."""
    import csv

    try:
        import redis.exceptions
    except ImportError as exc:
        complain(
            "runs",
            f"--redis needs the redis extra (pip install 'twilio-workflow-connector[redis]'): {exc}",
        )
        return EXIT_INVALID
    from ..temporal import RunStore

    async def export() -> int:
        async with RunStore.from_url(args.redis) as store, contextlib.AsyncExitStack() as stack:
            steps = await store.steps(args.run_id)
            if not steps:
                complain(
                    "runs",
                    f"no items of run {args.run_id!r} in {args.redis} (workers keep them there "
                    "when started with --redis, for a week)",
                )
                return EXIT_INVALID
            if args.step is not None:
                if args.step not in steps:
                    complain("runs", f"run {args.run_id} has no items of a step {args.step!r}")
                    return EXIT_INVALID
                steps = [args.step]
            out = (
                stack.enter_context(args.output.open("w", newline="", encoding="utf-8"))
                if args.output
                else sys.stdout
            )
            writer = csv.DictWriter(out, list(EXPORT_COLUMNS)) if args.format == "csv" else None
            if writer is not None:
                writer.writeheader()
            for step_id in steps:
                async for record in store.iter_items(args.run_id, step_id):
                    row = _export_row(step_id, record)
                    if writer is not None:
                        writer.writerow(row)
                    else:
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return EXIT_OK

    try:
        return run_async(export())
    except (OSError, redis.exceptions.RedisError) as exc:
        complain("runs", f"Redis at {args.redis}: {exc}")
        return EXIT_FAILED


EXPORT_COLUMNS = (
    "step", "index", "key", "state", "sid", "status", "error_code", "error",
    "attempts", "started", "finished", "reconciled", "output",
)  # fmt: skip


def _export_row(step_id: str, record: Any) -> dict[str, Any]:
    output = record.output
    message = isinstance(output, Mapping) and "sid" in output
    return {
        "step": step_id,
        "index": record.index,
        "key": record.key,
        "state": record.state,
        "sid": output.get("sid") if message else None,
        "status": output.get("status") if message else None,
        "error_code": record.error_code,
        "error": record.error,
        "attempts": record.attempts,
        "started": _iso(record.started),
        "finished": _iso(record.finished),
        "reconciled": record.reconciled,
        "output": None if message or output is None else json.dumps(output, ensure_ascii=False),
    }


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat().replace("+00:00", "Z")


def _runs(args: argparse.Namespace) -> int:
    from ..workflow import Journal, default_journal_path

    path = args.state or default_journal_path()
    if not path.exists():
        if args.json:
            print("[]")
        else:
            print(f"no runs yet ({path} does not exist)")
        return EXIT_OK
    from ..errors import ConfigurationError

    try:
        with Journal(path) as journal:
            records = journal.runs(args.limit)
    except ConfigurationError as exc:
        return fail(args, exc)

    def when(stamp: float | None) -> str:
        if stamp is None:
            return ""
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    if args.json:
        from .._types import json_datetime

        def iso(stamp: float | None) -> str | None:
            # ISO 8601 in UTC, as every date the connector writes as JSON.
            return (
                None if stamp is None else json_datetime(dt.datetime.fromtimestamp(stamp, dt.UTC))
            )

        out = [
            {
                "run_id": r.run_id,
                "workflow": r.workflow,
                "name": r.name,
                "state": r.state,
                "started": iso(r.started),
                "finished": iso(r.finished),
                "error": r.error,
            }
            for r in records
        ]
        print_json(out)
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table("Run id", "Workflow", "State", "Started", "Finished", "Error")
    for r in records:
        table.add_row(r.run_id, r.name, r.state, when(r.started), when(r.finished), r.error or "")
    Console(width=None if sys.stdout.isatty() else 140).print(table)
    return EXIT_OK
