# SPDX-License-Identifier: MIT
"""
``twilio-connector worker``, and the Temporal half of ``twilio-connector run --engine
temporal``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from temporalio.client import Client

from ..workflow._cli import _rate_limit
from ..workflow._model import Workflow
from ..workflow._runner import RunResult
from ._client import result_from_json, submit_workflow
from ._worker import (
    DEFAULT_MAX_CONCURRENT_ACTIVITIES,
    DEFAULT_TASK_QUEUE,
    WorkerConfigError,
    run_worker,
)


__all__ = ["run_on_temporal", "worker_main"]

#: Temporal's frontend unless told otherwise (the dev server's default).
DEFAULT_ADDRESS = "localhost:7233"


def worker_main(argv: Sequence[str]) -> int:
    """
    Run ``twilio-connector worker``: poll a Temporal task queue until SIGINT/SIGTERM.

    Credentials come from ``TWILIO_*`` environment variables. Start one per machine (or
    several); give all of them the same ``--redis`` to share one rate limit.

    Args:
        argv: Arguments after the subcommand name.

    Returns:
        0 after a graceful shutdown, 2 for a configuration error, 1 if Temporal is
        unreachable.
    """
    parser = argparse.ArgumentParser(
        prog="twilio-connector worker",
        description=(
            "Run a Temporal worker for connector workflows: the generic workflow and the "
            "invoke_action activity, with one connection built from TWILIO_* variables."
        ),
    )
    parser.add_argument(
        "--temporal",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help=f"Temporal frontend (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument("--namespace", default="default", help="Temporal namespace")
    parser.add_argument(
        "--task-queue", default=DEFAULT_TASK_QUEUE, help=f"default {DEFAULT_TASK_QUEUE}"
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="share the rate limit with every worker using this Redis (redis://HOST:PORT/DB)",
    )
    parser.add_argument(
        "--redis-key", metavar="KEY", help="the shared limit's key (default per Account SID)"
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        metavar="CALLS/SECONDS",
        help="the account's limit, shared with --redis (default: the manifest's 1200/60)",
    )
    parser.add_argument(
        "--max-concurrent-activities",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_ACTIVITIES,
        metavar="N",
        help=f"calls this worker runs at once (default {DEFAULT_MAX_CONCURRENT_ACTIVITIES})",
    )
    args = parser.parse_args(list(argv))
    if args.rate_limit is False:
        parser.error("a worker always paces its calls; give CALLS/SECONDS")
    return asyncio.run(_worker(args))


async def _worker(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready() -> None:
        shared = f", rate limit shared through {args.redis}" if args.redis else ""
        print(
            f"twilio-connector worker: polling task queue {args.task_queue!r} on "
            f"{args.temporal} (pid {os.getpid()}{shared})",
            file=sys.stderr,
            flush=True,
        )

    try:
        await run_worker(
            address=args.temporal,
            task_queue=args.task_queue,
            namespace=args.namespace,
            redis_url=args.redis,
            redis_key=args.redis_key,
            rate_limit=args.rate_limit,
            max_concurrent_activities=args.max_concurrent_activities,
            stop=stop,
            ready=ready,
        )
    except WorkerConfigError as exc:
        print(f"twilio-connector worker: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # temporalio's connection failures
        print(f"twilio-connector worker: cannot reach Temporal: {exc}", file=sys.stderr)
        return 1
    return 0


def run_on_temporal(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    address: str,
    task_queue: str,
    namespace: str,
    run_id: str | None,
) -> RunResult:
    """
    Submit a checked workflow to Temporal and wait for its result (for ``run --engine
    temporal``).

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
            env=dict(os.environ),
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
