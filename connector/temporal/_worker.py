# SPDX-License-Identifier: MIT
"""
A Temporal worker for the connector: the generic workflow, one activity per action of
the manifest (and the generic one for built-ins), and one connection per process built
from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pkgutil
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .._connect import choose_target, open_connection
from .._connection import Connection, default_connector
from .._pacing import Pacing
from ..errors import ConfigurationError
from ..workflow import Claims
from ._activities import ConnectorActivities, RedisClaims
from ._defaults import DEFAULT_MAX_CONCURRENT_ACTIVITIES, DEFAULT_TASK_QUEUE
from ._store import RunStore
from ._workflow import BatchWorkflow, ConnectorWorkflow


log = logging.getLogger("connector.temporal")

__all__ = ["DEFAULT_TASK_QUEUE", "WorkerConfigError", "create_worker", "run_worker"]


#: The worker cannot start: credentials or options are missing or wrong.
WorkerConfigError = ConfigurationError


def _sandbox_runner() -> SandboxedWorkflowRunner:
    """
    The sandbox, passing through every connector module but the workflow's own.

    The workflow module is re-imported (and so checked) for each run, as Temporal
    intends; the rest of the package (the manifest, jsonschema, aiohttp, rich) is
    deterministic or never called from the workflow, and importing it again per run
    would be slow and trip the sandbox on import-time randomness in third-party code.
    """
    import connector
    import connector.temporal

    workflow_module = ConnectorWorkflow.__module__
    names = {f"connector.{m.name}" for m in pkgutil.iter_modules(connector.__path__)}
    names |= {
        f"connector.temporal.{m.name}" for m in pkgutil.iter_modules(connector.temporal.__path__)
    }
    names -= {"connector.temporal", workflow_module}
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*sorted(names))
    return SandboxedWorkflowRunner(restrictions=restrictions)


def create_worker(
    client: Client,
    task_queue: str,
    activities: ConnectorActivities,
    *,
    max_concurrent_activities: int = DEFAULT_MAX_CONCURRENT_ACTIVITIES,
) -> Worker:
    """
    Build a worker that runs the connector's workflow and its activities.

    Args:
        client: A connected Temporal client.
        task_queue: The task queue to poll.
        activities: The activity object, holding the worker's open connection.
        max_concurrent_activities: Calls run at once by this worker.

    Returns:
        The worker; run it with ``await worker.run()`` or ``async with worker:``.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ConnectorWorkflow, BatchWorkflow],
        activities=activities.activities(),
        max_concurrent_activities=max_concurrent_activities,
        workflow_runner=_sandbox_runner(),
    )


def _check_credentials(env: Mapping[str, str]) -> None:
    # A worker never falls back to a throwaway embedded emulator as `run` does: each
    # worker would then send to its own, and the shared limit would mean nothing. A
    # running `twilio-connector emulator` is one every worker of this machine shares.
    try:
        choose_target(env, embedded=False)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{exc}. A worker needs them (or a running `twilio-connector emulator`, or "
            "TWILIO_BASE_URL for an emulator it shares with the other workers): every "
            "worker must talk to the same account"
        ) from None


@contextlib.asynccontextmanager
async def worker_connection(
    *,
    redis_url: str | None = None,
    redis_key: str | None = None,
    rate_limit: tuple[int, float] | None = None,
    env: Mapping[str, str] | None = None,
    pacing: Pacing | Literal[False] | None = None,
) -> AsyncIterator[tuple[Connection, Claims | None]]:
    """
    Open the worker's connection from ``TWILIO_*`` environment variables, or, without
    any, to the running ``twilio-connector emulator`` (never a throwaway one).

    With *redis_url*, the rate limit is held in Redis (:class:`~connector.redis_limiter.RedisLimiter`)
    and shared by every worker using the same key, and reconciled messages are claimed
    there too; otherwise this process paces itself.

    Args:
        redis_url: ``redis://HOST:PORT/DB`` of the shared limit.
        redis_key: The limit's key; the account's (:func:`~connector.redis_limiter.limit_key`)
            unless given.
        rate_limit: ``(calls, seconds)``; the manifest's limit (1200/60 s) unless given.
        env: Where the credentials come from; ``os.environ`` unless given.
        pacing: How sends are paced per sender (:class:`~connector.Pacing`): each
            kind's default rate unless given, ``False`` for none. With *redis_url* the
            senders' queues are estimated in Redis, for every worker alike.

    Raises:
        ConfigurationError: No Twilio account is configured, and no emulator runs.
    """
    source = os.environ if env is None else env
    # Off the event loop: it may ask a running emulator, which this loop may serve.
    await asyncio.to_thread(_check_credentials, source)
    if rate_limit is None:
        throttle = default_connector().throttle
        rate_limit = (throttle.calls, throttle.period) if throttle else None
    async with open_connection(
        env=source,
        embedded=False,
        announce=log.warning,
        rate_limit=rate_limit or False,
        redis_url=redis_url,
        redis_key=redis_key,
        pacing=pacing,
    ) as conn:
        if redis_url is None:
            yield conn, None
            return
        import redis.asyncio

        from ..redis_limiter import limit_key

        key = redis_key or limit_key(conn.account_sid or "")
        claims_client: Any = redis.asyncio.Redis.from_url(redis_url)
        try:
            yield conn, RedisClaims(claims_client, key)
        finally:
            await claims_client.aclose()


@contextlib.asynccontextmanager
async def plugin_connections(env: Mapping[str, str]) -> AsyncIterator[dict[str, Connection]]:
    """
    Open a connection for every other installed connector whose connection values the
    worker's environment holds (the variables its manifest names, or
    ``<CONNECTOR>_<KEY>``); the others are skipped with a log line, and runs that use
    them fail their steps with the connector named.
    """
    from ..errors import InvalidInputError
    from ..plugin import TWILIO, installed

    async with contextlib.AsyncExitStack() as stack:
        opened: dict[str, Connection] = {}
        for connector_id, spec in installed().specs().items():
            if connector_id == TWILIO:
                continue
            try:
                opened[connector_id] = await stack.enter_async_context(
                    open_connection(connector=spec, env=env)
                )
            except InvalidInputError as exc:
                log.info("connector %s is not configured on this worker: %s", connector_id, exc)
        yield opened


async def run_worker(
    *,
    address: str,
    task_queue: str = DEFAULT_TASK_QUEUE,
    namespace: str = "default",
    redis_url: str | None = None,
    redis_key: str | None = None,
    rate_limit: tuple[int, float] | None = None,
    max_concurrent_activities: int = DEFAULT_MAX_CONCURRENT_ACTIVITIES,
    pacing: Pacing | Literal[False] | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """
    Connect to Temporal and run a worker until *stop* is set (or the task is cancelled).

    Args:
        address: Temporal's frontend, ``HOST:PORT``.
        task_queue: The task queue to poll.
        namespace: The Temporal namespace.
        redis_url: Share the rate limit through this Redis (see ``worker_connection``),
            and keep runs' per-item results and large files there (``RunStore``).
        redis_key: The shared limit's key.
        rate_limit: ``(calls, seconds)`` for the whole account.
        max_concurrent_activities: Calls run at once by this worker.
        pacing: How sends are paced per sender (see ``worker_connection``).
        stop: Set it to shut the worker down gracefully.
        ready: Called once the worker polls its task queue.

    Raises:
        ConfigurationError: No Twilio account is configured.
    """
    await asyncio.to_thread(_check_credentials, os.environ)
    client = await Client.connect(address, namespace=namespace)
    async with (
        worker_connection(
            redis_url=redis_url, redis_key=redis_key, rate_limit=rate_limit, pacing=pacing
        ) as (conn, claims),
        plugin_connections(os.environ) as others,
        contextlib.AsyncExitStack() as stack,
    ):
        store = None
        if redis_url is not None:
            store = await stack.enter_async_context(RunStore.from_url(redis_url))
        activities = ConnectorActivities(conn, claims, connections=others, store=store)
        worker = create_worker(
            client, task_queue, activities, max_concurrent_activities=max_concurrent_activities
        )
        async with worker:
            if ready is not None:
                ready()
            await (stop or asyncio.Event()).wait()
