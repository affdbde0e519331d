# SPDX-License-Identifier: MIT
"""
``worker``: a Temporal worker for workflows (the ``temporal`` extra).

Its options are defined without importing temporalio, so ``worker --help`` works
whether or not the extra is installed; running it without the extra says which to
install.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Literal

from ..temporal import (
    DEFAULT_ADDRESS,
    DEFAULT_MAX_CONCURRENT_ACTIVITIES,
    DEFAULT_NAMESPACE,
    DEFAULT_TASK_QUEUE,
)
from ._common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, complain, rate_limit, sender_rate


if TYPE_CHECKING:
    from .._pacing import Pacing


__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``worker``."""
    parser = sub.add_parser(
        "worker",
        help="run a Temporal worker for workflows",
        description=(
            "Run a Temporal worker for connector workflows: the generic workflow and one "
            "activity per action, with one connection built from TWILIO_* variables. "
            "Needs the temporal extra (pip install 'twilio-workflow-connector[temporal]')."
        ),
    )
    parser.add_argument(
        "--temporal",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help=f"Temporal frontend (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="Temporal namespace")
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
        type=rate_limit,
        metavar="CALLS/SECONDS",
        help="the account's limit, shared with --redis (default: the manifest's 1200/60)",
    )
    pacing = parser.add_argument_group(
        "sender pacing",
        "How this worker's sends are paced per sender (docs/throughput.md): each kind's "
        "default rate (long code 1/s, short code 100/s...) unless declared.",
    )
    pacing.add_argument(
        "--sender",
        action="append",
        type=sender_rate,
        default=[],
        metavar="SENDER=RATE",
        help="a sender's rate in segments, e.g. +15005550006=10/s (repeat)",
    )
    pacing.add_argument(
        "--pacing-horizon",
        metavar="DURATION",
        help="how much of a sender's work may wait in Twilio's queue (default 1h; 30m, 600s)",
    )
    pacing.add_argument(
        "--no-pacing",
        action="store_true",
        help="send as fast as the call limit allows (Twilio queues what a sender cannot take)",
    )
    parser.add_argument(
        "--max-concurrent-activities",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_ACTIVITIES,
        metavar="N",
        help=f"calls this worker runs at once (default {DEFAULT_MAX_CONCURRENT_ACTIVITIES})",
    )
    parser.set_defaults(handler=_worker_command)


def _worker_command(args: argparse.Namespace) -> int:
    import asyncio

    if args.rate_limit is False:
        complain("worker", "a worker always paces its calls; give CALLS/SECONDS")
        return EXIT_INVALID
    if args.no_pacing and (args.sender or args.pacing_horizon):
        complain("worker", "--no-pacing cannot be combined with --sender or --pacing-horizon")
        return EXIT_INVALID
    try:
        import temporalio  # noqa: F401
    except ImportError:
        complain(
            "worker",
            "needs the temporal extra: pip install 'twilio-workflow-connector[temporal]'",
        )
        return EXIT_INVALID
    return asyncio.run(_worker(args))


async def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import signal

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

    from .._pacing import Pacing
    from ..errors import ConfigurationError
    from ..temporal import run_worker

    pacing: Pacing | Literal[False] | None = None
    if args.no_pacing:
        pacing = False
    elif args.sender or args.pacing_horizon:
        config: dict[str, Any] = {"senders": dict(args.sender)}
        if args.pacing_horizon:
            config["horizon"] = args.pacing_horizon
        try:
            pacing = Pacing.from_config(config)
        except ValueError as exc:
            complain("worker", exc)
            return EXIT_INVALID
    try:
        await run_worker(
            address=args.temporal,
            task_queue=args.task_queue,
            namespace=args.namespace,
            redis_url=args.redis,
            redis_key=args.redis_key,
            rate_limit=args.rate_limit,
            max_concurrent_activities=args.max_concurrent_activities,
            pacing=pacing,
            stop=stop,
            ready=ready,
        )
    except ConfigurationError as exc:
        complain("worker", exc)
        return EXIT_INVALID
    except RuntimeError as exc:  # temporalio's connection failures
        complain("worker", f"cannot reach Temporal: {exc}")
        return EXIT_FAILED
    return EXIT_OK
