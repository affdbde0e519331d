# SPDX-License-Identifier: MIT
"""
``twilio-connector run``, ``validate`` and ``runs``.

Exit codes: 0 every step succeeded, 1 a step failed, 2 the workflow (or the command
line) is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .._connection import Connection, default_connector
from ..errors import ConnectorError, InvalidInputError
from ._checks import check_workflow
from ._journal import Journal, default_journal_path
from ._model import Workflow, WorkflowError, load_workflow
from ._progress import BarProgress, LineProgress
from ._runner import RunError, RunResult, StepResult, new_run_id, resolve_inputs, run_workflow


__all__ = ["run_main", "runs_main", "validate_main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def _rate_limit(value: str) -> tuple[int, float] | bool:
    if value.lower() in ("off", "none", "false"):
        return False
    calls, sep, seconds = value.partition("/")
    try:
        limit = (int(calls), float(seconds if sep else "1"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected CALLS/SECONDS or 'off', got {value!r}"
        ) from None
    if limit[0] < 1 or limit[1] <= 0:
        raise argparse.ArgumentTypeError("CALLS and SECONDS must be above 0")
    return limit


#: Share of an explicit rate limit's period added as a margin (see with_margin).
RATE_MARGIN = 0.005


def with_margin(
    rate_limit: tuple[int, float] | bool | None,
) -> tuple[int, float] | bool | None:
    """
    Stretch an explicit ``(calls, seconds)`` limit's period by 0.5%.

    The limiter holds at most *calls* in any window of its own clock, but requests reach
    the server with a few milliseconds of jitter, enough to put one call too many in the
    server's window now and then (11 429s in 10,000 sends at 6000/60 s without it).
    """
    if isinstance(rate_limit, tuple):
        calls, seconds = rate_limit
        return (calls, seconds * (1 + RATE_MARGIN))
    return rate_limit


def _state_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="PATH",
        type=Path,
        help=f"the run journal (SQLite; default: {default_journal_path()})",
    )


def _print_problems(problems: Sequence[Any], stream: TextIO) -> None:
    for problem in problems:
        print(f"{problem}", file=stream)
    count = len(problems)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=stream)


def _load_checked(file: str) -> Workflow:
    """Load and check a workflow; raise WorkflowError with every problem."""
    workflow = load_workflow(file)
    problems = check_workflow(workflow, default_connector())
    if problems:
        raise WorkflowError(problems)
    return workflow


def validate_main(argv: Sequence[str]) -> int:
    """
    Run ``twilio-connector validate WORKFLOW.yaml...``: the static checks, nothing more.

    Args:
        argv: Arguments after the subcommand name.

    Returns:
        0 when every workflow is valid, 2 otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="twilio-connector validate",
        description="Check workflows without running them; problems are printed as FILE:LINE:COLUMN.",
    )
    parser.add_argument("workflows", nargs="+", metavar="WORKFLOW.yaml")
    args = parser.parse_args(list(argv))
    status = EXIT_OK
    for file in args.workflows:
        try:
            workflow = _load_checked(file)
        except WorkflowError as exc:
            _print_problems(exc.problems, sys.stderr)
            status = EXIT_INVALID
            continue
        count = len(workflow.steps)
        print(f"{file}: ok ({count} step{'s' if count != 1 else ''})")
    return status


def _parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise WorkflowError([])  # replaced by argparse's error below
        inputs[key] = value
    return inputs


def run_main(argv: Sequence[str]) -> int:
    """
    Run ``twilio-connector run WORKFLOW.yaml``.

    Without credentials (no ``TWILIO_ACCOUNT_SID`` and no ``connection`` in the
    workflow), the embedded emulator serves the run and nothing leaves the machine.

    Args:
        argv: Arguments after the subcommand name.

    Returns:
        0 when every step succeeded, 1 when a step failed, 2 for an invalid workflow.
    """
    parser = argparse.ArgumentParser(
        prog="twilio-connector run",
        description=(
            "Run a workflow. Without Twilio credentials it runs against an embedded "
            "emulator. Each run is journaled; resume an interrupted run with --run-id."
        ),
    )
    parser.add_argument("workflow", metavar="WORKFLOW.yaml")
    parser.add_argument(
        "--input", "-i", action="append", default=[], metavar="KEY=VALUE", help="a workflow input"
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
        type=_rate_limit,
        metavar="CALLS/SECONDS",
        help="pace every call of the run (overrides the workflow's connection.rate_limit)",
    )
    _state_arg(parser)
    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=("local", "temporal"),
        default="local",
        help="run here (default), or submit to Temporal workers and wait for the result",
    )
    engine.add_argument(
        "--temporal",
        default="localhost:7233",
        metavar="HOST:PORT",
        help="Temporal frontend, with --engine temporal (default localhost:7233)",
    )
    engine.add_argument(
        "--task-queue",
        default="twilio-connector",
        help="the workers' task queue, with --engine temporal (default twilio-connector)",
    )
    engine.add_argument(
        "--namespace", default="default", help="Temporal namespace, with --engine temporal"
    )
    args = parser.parse_args(list(argv))
    try:
        given = _parse_inputs(args.input)
    except WorkflowError:
        parser.error("write --input KEY=VALUE")
    if args.engine == "temporal" and (args.state or args.rate_limit is not None):
        parser.error(
            "--state and --rate-limit apply to local runs: on Temporal the history is the "
            "journal and the workers pace the calls (twilio-connector worker --rate-limit)"
        )
    if args.engine == "temporal" and args.trigger_json is not None:
        parser.error(
            "--trigger-json runs a workflow here; it cannot be combined with --engine temporal"
        )
    try:
        workflow = _load_checked(args.workflow)
    except WorkflowError as exc:
        _print_problems(exc.problems, sys.stderr)
        return EXIT_INVALID
    if args.engine == "temporal":
        return _run_temporal(workflow, given, args)
    trigger = None
    if args.trigger_json is not None:
        try:
            trigger = _trigger_json(args.trigger_json)
        except (OSError, ValueError) as exc:
            print(f"twilio-connector run: --trigger-json: {exc}", file=sys.stderr)
            return EXIT_INVALID
    journal_path = args.state or default_journal_path()
    run_id = args.run_id or new_run_id()
    try:
        with Journal(journal_path) as journal:
            record = journal.run(args.run_id) if args.run_id else None
            if record is None:
                resolve_inputs(workflow, given)  # fail on bad inputs before connecting
            verb = "resuming" if record is not None else "starting"
            print(
                f"twilio-connector: {verb} run {run_id} (resume with --run-id {run_id}; "
                f"journal {journal_path})",
                file=sys.stderr,
            )
            result = asyncio.run(_run(workflow, given, journal, run_id, args.rate_limit, trigger))
    except WorkflowError as exc:
        _print_problems(exc.problems, sys.stderr)
        return EXIT_INVALID
    except (RunError, InvalidInputError) as exc:
        print(f"twilio-connector run: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except ConnectorError as exc:
        print(f"twilio-connector run: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"twilio-connector run: interrupted; resume with --run-id {run_id}", file=sys.stderr)
        return 130
    if args.json:
        json.dump(_result_json(result), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_summary(result)
    return EXIT_OK if result.ok else EXIT_FAILED


def _run_temporal(workflow: Workflow, given: Mapping[str, str], args: argparse.Namespace) -> int:
    # Imported here so that local runs never import temporalio (an optional extra).
    try:
        from ..temporal._cli import run_on_temporal
    except ImportError as exc:
        print(
            f"twilio-connector run: --engine temporal needs the temporal extra "
            f"(pip install 'twilio-workflow-connector[temporal]'): {exc}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        result = run_on_temporal(
            workflow,
            given,
            address=args.temporal,
            task_queue=args.task_queue,
            namespace=args.namespace,
            run_id=args.run_id,
        )
    except WorkflowError as exc:
        _print_problems(exc.problems, sys.stderr)
        return EXIT_INVALID
    except RuntimeError as exc:  # temporalio's connection failures
        print(f"twilio-connector run: Temporal at {args.temporal}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            "twilio-connector run: stopped waiting; the run goes on in Temporal",
            file=sys.stderr,
        )
        return 130
    _print_result(result, args.json)
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_result(result: RunResult, as_json: bool) -> None:
    if as_json:
        json.dump(_result_json(result), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_summary(result)


async def _run(
    workflow: Workflow,
    given: Mapping[str, str],
    journal: Journal,
    run_id: str,
    rate_limit: tuple[int, float] | bool | None,
    trigger: Mapping[str, Any] | None = None,
) -> RunResult:
    spec = workflow.connection
    if rate_limit is None and spec is not None:
        rate_limit = spec.rate_limit
    rate_limit = with_margin(rate_limit)
    bars = sys.stderr.isatty()
    progress = BarProgress(sys.stderr) if bars else LineProgress(sys.stderr)
    async with _connection(workflow, rate_limit) as conn:
        with progress:
            return await run_workflow(
                workflow,
                given,
                conn,
                journal,
                run_id=run_id,
                progress=progress,
                env=dict(os.environ),
                trigger=trigger,
            )


def _trigger_json(value: str) -> dict[str, Any]:
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ValueError("the event must be a JSON object")
    return event


@contextlib.asynccontextmanager
async def _connection(
    workflow: Workflow, rate_limit: tuple[int, float] | bool | None
) -> AsyncIterator[Connection]:
    from ..cli import connection_from_env

    spec = workflow.connection
    if spec is None or not spec.env:
        async with connection_from_env(sys.stderr, rate_limit=rate_limit) as conn:
            yield conn
        return
    # The workflow names the variables; an unset one is an error, never a silent
    # fall-back to the emulator.
    missing = [f"{key} ({name})" for key, name in spec.env.items() if not os.environ.get(name)]
    if missing:
        raise RunError(
            f"{workflow.file}: connection.env names unset environment variables: "
            + ", ".join(missing)
        )
    values = {key: os.environ[name] for key, name in spec.env.items()}
    async with Connection(
        values.get("account_sid"),
        values.get("auth_token"),
        api_key=values.get("api_key"),
        api_secret=values.get("api_secret"),
        base_url=values.get("base_url"),
        rate_limit=rate_limit,
    ) as conn:
        yield conn


def _step_counts(step: StepResult) -> dict[str, Any]:
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
            {"index": i.index, "error": i.error, "code": i.error_code}
            for i in step.items
            if i.status == "failed"
        ]
        if errors:
            entry["errors"] = errors[:100]
        steps.append(entry)
    return {
        "run_id": result.run_id,
        "status": result.status,
        "outputs": dict(result.outputs),
        "steps": steps,
    }


def _print_summary(result: RunResult) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"Run {result.run_id}: {result.status}")
    for column in ("Step", "Status", "Calls", "OK", "Failed", "Messages", "Twilio codes"):
        table.add_column(column)
    for step in result.steps:
        if step.resumed:
            table.add_row(step.id, f"{step.status} (earlier)", "", "", "", "", "")
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
        table.add_row(
            step.id, step.status, str(counts["calls"]), ok, str(counts["failed"]), messages, codes
        )
    console.print(table)
    for step in result.steps:
        failures = [i for i in step.items if i.status == "failed"]
        for item in failures[:5]:
            console.print(
                f"[red]{step.id}\\[{item.index}][/red]: {escape(item.error or '')}",
                highlight=False,
            )
        if len(failures) > 5:
            console.print(f"{step.id}: {len(failures) - 5} more failures (see --json)")
        if step.error and not failures:
            console.print(f"[red]{step.id}[/red]: {escape(step.error)}", highlight=False)
    if result.outputs:
        console.print("Outputs:")
        console.print_json(json.dumps(dict(result.outputs), ensure_ascii=False))


def runs_main(argv: Sequence[str]) -> int:
    """
    Run ``twilio-connector runs``: list recent runs with their state.

    Args:
        argv: Arguments after the subcommand name.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(
        prog="twilio-connector runs", description="List recent workflow runs."
    )
    parser.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    _state_arg(parser)
    args = parser.parse_args(list(argv))
    path = args.state or default_journal_path()
    if not path.exists():
        if args.json:
            print("[]")
        else:
            print(f"no runs yet ({path} does not exist)")
        return EXIT_OK
    with Journal(path) as journal:
        records = journal.runs(args.limit)

    def when(stamp: float | None) -> str:
        if stamp is None:
            return ""
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    if args.json:
        out = [
            {
                "run_id": r.run_id,
                "workflow": r.workflow,
                "name": r.name,
                "state": r.state,
                "started": when(r.started),
                "finished": when(r.finished) or None,
                "error": r.error,
            }
            for r in records
        ]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table("Run id", "Workflow", "State", "Started", "Finished", "Error")
    for r in records:
        table.add_row(r.run_id, r.name, r.state, when(r.started), when(r.finished), r.error or "")
    Console(width=None if sys.stdout.isatty() else 140).print(table)
    return EXIT_OK
