# SPDX-License-Identifier: MIT
"""
``listen``: receive Twilio's webhooks and run the workflows they trigger.

Exit codes: 0 stopped normally (Ctrl-C or SIGTERM), 2 invalid workflows, options, a
port that cannot be bound, or a missing auth token.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shlex
import sys
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, TextIO

from ._common import (
    EXIT_INVALID,
    EXIT_OK,
    add_consent_option,
    add_emulator_switch,
    add_state_option,
    bind_failure,
    complain,
    environ,
    print_problems,
    rate_limit,
    run_async,
    workflow_connection,
    workflow_connectors,
)


if TYPE_CHECKING:
    from .._connect import Target
    from .._connection import Connection
    from ..consent import RedisLedger, SQLiteLedger
    from ..receiving import Listener

__all__ = ["register"]

#: The number the embedded emulator routes to the listener when no trigger names one.
DEFAULT_NUMBER = "+15005550006"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``listen``."""
    parser = sub.add_parser(
        "listen",
        help="run workflows on signed webhooks",
        description=(
            "Receive Twilio's signed webhooks (incoming messages, status callbacks) and "
            "run the workflows whose on: they match. Every request must carry a valid "
            "X-Twilio-Signature. Without Twilio credentials, the running emulator (else "
            "one embedded here) is wired to the listener."
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
        type=rate_limit,
        metavar="CALLS/SECONDS",
        help="pace every call of every run (overrides connection.rate_limit)",
    )
    add_state_option(parser)
    add_consent_option(parser)
    add_emulator_switch(parser)
    # The listener's log (runs started and finished, refused requests) is its output.
    parser.set_defaults(handler=_listen, default_log_level="info")


def _listen(args: argparse.Namespace) -> int:
    import secrets

    from .._connect import Target, choose_target
    from ..errors import ConfigurationError, Problem
    from ..receiving import Listener
    from ..workflow import Journal, Workflow, WorkflowError, default_journal_path, load_workflow

    if args.max_runs < 1:
        complain("listen", "--max-runs must be at least 1")
        return EXIT_INVALID
    problems: list[Problem] = []
    workflows: list[Workflow] = []
    for file in args.workflows:
        try:
            workflows.append(load_workflow(file))
        except WorkflowError as exc:
            problems.extend(exc.problems)
    if problems:
        print_problems(problems)
        return EXIT_INVALID
    # By equality: a block holds mappings, so it has no hash.
    if any(w.connection != workflows[0].connection for w in workflows[1:]):
        complain(
            "listen",
            "the workflows name different connections; run one listener per connection",
        )
        return EXIT_INVALID
    env = environ()
    spec = workflows[0].connection
    try:
        if spec is not None and spec.env:
            target = choose_target({}, emulator=True) if args.emulator else Target(False)
        else:
            target = choose_target(env, emulator=args.emulator)
    except ConfigurationError as exc:
        complain("listen", exc)
        return EXIT_INVALID
    shared_key = env.get(args.shared_key_env) if args.shared_key_env else None
    if args.shared_key_env and not shared_key:
        complain("listen", f"{args.shared_key_env} is not set")
        return EXIT_INVALID
    if target.running is not None:
        # The running emulator signs its webhooks with its own token.
        auth_token = target.running.auth_token
    elif target.emulator:
        auth_token = secrets.token_hex(16)
    else:
        token_env = args.auth_token_env or (spec.env.get("auth_token") if spec else None)
        token_env = token_env or "TWILIO_AUTH_TOKEN"
        auth_token = env.get(token_env, "")
        if not auth_token:
            # API keys authenticate REST calls, but Twilio signs webhooks with the
            # account's auth token: without it nothing could be verified.
            complain(
                "listen",
                f"{token_env} is not set. Twilio signs webhooks with the account's auth "
                "token (also when the API is used with an API key), and the listener "
                "accepts only signed requests; set it, or name the variable with "
                "--auth-token-env",
            )
            return EXIT_INVALID
    limit = args.rate_limit
    if limit is None and spec is not None:
        limit = spec.rate_limit
    journal_path = args.state or default_journal_path()
    try:
        with Journal(journal_path) as journal:
            consent = _consent_ledger(args, env)
            listener = Listener(
                workflows,
                journal,
                connectors=workflow_connectors(*workflows),
                auth_token=auth_token,
                public_url=args.public_url,
                shared_key=shared_key,
                max_runs=args.max_runs,
                env=dict(env),
                consent=consent,
            )
            run_async(
                _serve(
                    listener,
                    args.host,
                    args.port,
                    limit,
                    target,
                    auth_token,
                    sys.stderr,
                    args,
                    consent,
                )
            )
    except WorkflowError as exc:
        print_problems(exc.problems)
        return EXIT_INVALID
    except (ValueError, ConfigurationError) as exc:
        complain("listen", exc)
        return EXIT_INVALID
    except OSError as exc:
        line = bind_failure(exc, args.host, args.port)
        if line is None:
            raise
        complain("listen", line)
        return EXIT_INVALID
    except KeyboardInterrupt:
        pass
    return EXIT_OK


async def _serve(
    listener: Listener,
    host: str,
    port: int,
    limit: tuple[int, float] | bool | None,
    target: Target,
    auth_token: str,
    out: TextIO,
    args: argparse.Namespace,
    consent: SQLiteLedger | RedisLedger | None = None,
) -> None:
    import asyncio
    import signal

    from ..receiving import MESSAGES_PATH, STATUS_PATH

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    await listener.start(host, port)
    try:
        async with (
            _open_connection(listener, limit, target, auth_token, out) as conn,
            contextlib.AsyncExitStack() as stack,
        ):
            connectors = workflow_connectors(*listener.workflows.values())
            # Steps that call other connectors get their connections (never the emulator).
            others = {
                connector_id: await stack.enter_async_context(
                    workflow_connection(workflow, connectors[connector_id], {}, args, "listen")
                )
                for workflow in listener.workflows.values()
                for connector_id in workflow.connector_ids
                if connector_id != "twilio"
            }
            await listener.begin(conn, connections=others)
            complain(
                "listen",
                f"listening on {listener.url}; point Twilio's incoming-message webhook at "
                f"{listener.public_url}{MESSAGES_PATH} and StatusCallback at "
                f"{listener.public_url}{STATUS_PATH}; journal {listener.journal.path}",
                out,
            )
            await stop.wait()
    finally:
        await listener.stop()
        if consent is not None:
            await consent.aclose()


@contextlib.asynccontextmanager
async def _open_connection(
    listener: Listener,
    limit: tuple[int, float] | bool | None,
    target: Target,
    auth_token: str,
    out: TextIO,
) -> AsyncIterator[Connection]:
    """
    The connection runs use: the workflows' own; or an emulator whose incoming messages
    to the triggers' numbers are posted here, signed with *auth_token*: the running
    ``twilio-connector emulator`` (told where to post while the listener runs), else
    one embedded here.
    """
    from .._connect import announcement, open_connection
    from ..receiving import MESSAGE_RECEIVED, MESSAGES_PATH

    workflow = next(iter(listener.workflows.values()))
    spec = workflow.connection
    env = environ()
    values = spec.values(env) if spec is not None and spec.env else None
    pacing = spec.pacing if spec is not None else None
    if not target.emulator:
        async with open_connection(
            values=values,
            env=env,
            emulator=False,
            rate_limit=limit,
            pacing=pacing,
            ledger=listener.consent,
        ) as conn:
            yield conn
        return
    numbers = sorted(
        {
            number
            for w in listener.workflows.values()
            if w.trigger is not None and w.trigger.uses == MESSAGE_RECEIVED
            for number in w.trigger.to
        }
    ) or [DEFAULT_NUMBER]
    webhook = listener.public_url + MESSAGES_PATH
    announce = functools.partial(complain, "listen", stream=out)
    if target.running is not None:
        async with (
            open_connection(
                env={},
                emulator=True,
                rate_limit=limit,
                pacing=pacing,
                ledger=listener.consent,
            ) as conn,
            _incoming_webhooks(conn.base_url, numbers, webhook),
        ):
            announce(announcement(target, conn.base_url))
            announce(_hint(listener, conn.base_url, numbers, running=True))
            yield conn
        return
    options = {
        "auth_token": auth_token,
        "incoming": dict.fromkeys(numbers, webhook),
        "delivery_delay": 1.0,
    }
    async with open_connection(
        values=values,
        env=env,
        emulator=True,
        rate_limit=limit,
        pacing=pacing,
        emulator_options=options,
        ledger=listener.consent,
    ) as conn:
        announce(announcement(target, conn.base_url))
        announce(_hint(listener, conn.base_url, numbers, running=False))
        yield conn


def _hint(listener: Listener, base_url: str, numbers: list[str], *, running: bool) -> str:
    """How to text the listener through the emulator, with a body its triggers accept."""
    from ..receiving import MESSAGE_RECEIVED

    patterns = [
        w.trigger.body_matches
        for w in listener.workflows.values()
        if w.trigger is not None
        and w.trigger.uses == MESSAGE_RECEIVED
        and w.trigger.body_matches is not None
        and (not w.trigger.to or numbers[0] in w.trigger.to)
    ]
    body, note = "hello", ""
    if patterns and not any(p.search(body) for p in patterns):
        body = "..."
        note = f"  (a body its trigger's body_matches accepts: {patterns[0].pattern})"
    where = "the running emulator" if running else "the emulator"
    return (
        f"{where} posts incoming messages for {', '.join(numbers)} to this listener; "
        f"reply as a handset in its inbox ({base_url}/), or try:\n"
        f"  twilio-connector inbound --emulator-url {base_url} --to {shlex.quote(numbers[0])} "
        f'--from +15551230000 --body "{body}"{note}'
    )


@contextlib.asynccontextmanager
async def _incoming_webhooks(
    base_url: str, numbers: list[str], webhook: str
) -> AsyncIterator[None]:
    """Have a running emulator post incoming messages for *numbers* to *webhook*, until exit."""
    import aiohttp

    url = base_url.rstrip("/") + "/emulator/incoming"
    async with aiohttp.ClientSession(trust_env=False) as session:
        for number in numbers:
            try:
                async with session.post(url, json={"number": number, "url": webhook}) as answer:
                    refused = (
                        "" if answer.status == 200 else f"{answer.status} {await answer.text()}"
                    )
            except (aiohttp.ClientError, OSError) as exc:
                refused = str(exc) or type(exc).__name__
            if refused:
                raise ValueError(
                    f"the emulator at {base_url} cannot post {number}'s incoming messages "
                    f"here: {refused}"
                )
        try:
            yield
        finally:
            # Only the numbers still posted here: another listener may have taken one.
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as answer:
                    current = (await answer.json()).get("incoming", {})
                for number in numbers:
                    if current.get(number) == webhook:
                        async with session.post(url, json={"number": number, "url": ""}):
                            pass


def _consent_ledger(
    args: argparse.Namespace, env: Mapping[str, str]
) -> SQLiteLedger | RedisLedger | None:
    """``--consent`` or ``TWILIO_CONSENT_LEDGER``, opened; ``None``: the journal's."""
    from ..consent import LEDGER_VARIABLE, open_ledger

    location = args.consent or env.get(LEDGER_VARIABLE)
    if not location:
        return None
    return open_ledger(location, account=env.get("TWILIO_ACCOUNT_SID", ""))
