# SPDX-License-Identifier: MIT
"""
``twilio-connector listen``: receive Twilio's webhooks and run the workflows they
trigger.

Exit codes: 0 stopped normally (Ctrl-C or SIGTERM), 2 invalid workflows, options or
missing auth token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TextIO

from .._connection import Connection
from ..workflow import (
    Journal,
    Problem,
    Workflow,
    WorkflowError,
    default_journal_path,
    load_workflow,
)
from ..workflow._cli import _connection as workflow_connection
from ..workflow._cli import _print_problems, _rate_limit, with_margin
from ._server import MESSAGES_PATH, STATUS_PATH, Listener
from ._triggers import MESSAGE_RECEIVED


__all__ = ["listen_main"]

EXIT_OK = 0
EXIT_INVALID = 2
#: The number the embedded emulator routes to the listener when no trigger names one.
DEFAULT_NUMBER = "+15005550006"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twilio-connector listen",
        description=(
            "Receive Twilio's signed webhooks (incoming messages, status callbacks) and "
            "run the workflows whose on: they match. Every request must carry a valid "
            "X-Twilio-Signature. Without Twilio credentials an embedded emulator is "
            "started and wired to the listener."
        ),
    )
    parser.add_argument("workflows", nargs="+", metavar="WORKFLOW.yaml")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any)")
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL Twilio calls, up to the listener's root (e.g. "
        "https://hooks.example.com/twilio when a proxy forwards it here); signatures "
        "are checked against it. Default: the bound address",
    )
    parser.add_argument(
        "--max-runs", type=int, default=10, help="runs executing at once (default 10)"
    )
    parser.add_argument(
        "--auth-token-env",
        metavar="NAME",
        help="the environment variable holding the auth token that signs webhooks "
        "(default: the workflow's connection.env.auth_token, else TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--shared-key-env",
        metavar="NAME",
        help="an environment variable holding a webhook shared key, also accepted",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        metavar="CALLS/SECONDS",
        help="pace every call of every run (overrides connection.rate_limit)",
    )
    parser.add_argument(
        "--state",
        metavar="PATH",
        type=Path,
        help=f"the run journal (SQLite; default: {default_journal_path()})",
    )
    return parser


def listen_main(argv: Sequence[str]) -> int:
    """
    Run ``twilio-connector listen WORKFLOW.yaml...`` until interrupted.

    Args:
        argv: Arguments after the subcommand name.

    Returns:
        0 when stopped, 2 for invalid workflows or options, or no auth token.
    """
    args = _parser().parse_args(list(argv))
    if args.max_runs < 1:
        print("twilio-connector listen: --max-runs must be at least 1", file=sys.stderr)
        return EXIT_INVALID
    problems: list[Problem] = []
    workflows: list[Workflow] = []
    for file in args.workflows:
        try:
            workflows.append(load_workflow(file))
        except WorkflowError as exc:
            problems.extend(exc.problems)
    if problems:
        _print_problems(problems, sys.stderr)
        return EXIT_INVALID
    connections = {w.connection for w in workflows}
    if len(connections) > 1:
        print(
            "twilio-connector listen: the workflows name different connections; "
            "run one listener per connection",
            file=sys.stderr,
        )
        return EXIT_INVALID
    spec = workflows[0].connection
    use_emulator = not (spec is not None and spec.env) and not _has_credentials()
    shared_key = os.environ.get(args.shared_key_env) if args.shared_key_env else None
    if args.shared_key_env and not shared_key:
        print(f"twilio-connector listen: {args.shared_key_env} is not set", file=sys.stderr)
        return EXIT_INVALID
    if use_emulator:
        auth_token = secrets.token_hex(16)
    else:
        token_env = args.auth_token_env or (spec.env.get("auth_token") if spec else None)
        token_env = token_env or "TWILIO_AUTH_TOKEN"
        auth_token = os.environ.get(token_env, "")
        if not auth_token:
            # API keys authenticate REST calls, but Twilio signs webhooks with the
            # account's auth token: without it nothing could be verified.
            print(
                f"twilio-connector listen: {token_env} is not set. Twilio signs webhooks "
                "with the account's auth token (also when the API is used with an API "
                "key), and the listener accepts only signed requests; set it, or name "
                "the variable with --auth-token-env",
                file=sys.stderr,
            )
            return EXIT_INVALID
    logging.basicConfig(
        level=logging.INFO, format="twilio-connector listen: %(message)s", stream=sys.stderr
    )
    rate_limit = args.rate_limit
    if rate_limit is None and spec is not None:
        rate_limit = spec.rate_limit
    journal_path = args.state or default_journal_path()
    try:
        with Journal(journal_path) as journal:
            listener = Listener(
                workflows,
                journal,
                auth_token=auth_token,
                public_url=args.public_url,
                shared_key=shared_key,
                max_runs=args.max_runs,
                env=dict(os.environ),
            )
            asyncio.run(
                _serve(
                    listener,
                    args.host,
                    args.port,
                    with_margin(rate_limit),
                    auth_token if use_emulator else None,
                    sys.stderr,
                )
            )
    except WorkflowError as exc:
        _print_problems(exc.problems, sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:
        print(f"twilio-connector listen: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _has_credentials() -> bool:
    from ..cli import has_credentials

    return has_credentials()


async def _serve(
    listener: Listener,
    host: str,
    port: int,
    rate_limit: tuple[int, float] | bool | None,
    emulator_token: str | None,
    out: TextIO,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    await listener.start(host, port)
    try:
        async with _open_connection(listener, rate_limit, emulator_token, out) as conn:
            await listener.begin(conn)
            print(
                f"twilio-connector listen: listening on {listener.url}; point Twilio's "
                f"incoming-message webhook at {listener.public_url}{MESSAGES_PATH} and "
                f"StatusCallback at {listener.public_url}{STATUS_PATH}; journal "
                f"{listener.journal.path}",
                file=out,
            )
            await stop.wait()
    finally:
        await listener.stop()


@contextlib.asynccontextmanager
async def _open_connection(
    listener: Listener,
    rate_limit: tuple[int, float] | bool | None,
    emulator_token: str | None,
    out: TextIO,
) -> AsyncIterator[Connection]:
    """
    The connection runs use: the workflows' own, or, with *emulator_token*, an
    embedded emulator that signs with that token and posts incoming messages here.
    """
    workflow = next(iter(listener.workflows.values()))
    if emulator_token is None:
        async with workflow_connection(workflow, rate_limit) as conn:
            yield conn
        return
    from ..emulator import EmulatorConfig, EmulatorServer

    numbers = sorted(
        {
            number
            for w in listener.workflows.values()
            if w.trigger is not None and w.trigger.uses == MESSAGE_RECEIVED
            for number in w.trigger.to
        }
    ) or [DEFAULT_NUMBER]
    webhook = listener.public_url + MESSAGES_PATH
    incoming: dict[str, str] = dict.fromkeys(numbers, webhook)
    config = EmulatorConfig(
        auth_token=emulator_token,
        incoming=incoming,  # type: ignore[arg-type]  # attrs' dict converter confuses mypy
        delivery_delay=1.0,
    )
    async with (
        EmulatorServer(config) as emulator,
        Connection(
            emulator.account_sid,
            emulator.auth_token,
            base_url=emulator.base_url,
            rate_limit=rate_limit,
            env={},
        ) as conn,
    ):
        print(
            "twilio-connector listen: no Twilio credentials (TWILIO_ACCOUNT_SID) set; "
            f"started an embedded emulator at {emulator.base_url}, which posts incoming "
            f"messages for {', '.join(numbers)} to this listener. Try:\n"
            f"  twilio-connector inbound --emulator-url {emulator.base_url} "
            f'--to "{numbers[0]}" --from "+15551230000" --body "hello"',
            file=out,
        )
        yield conn
