# SPDX-License-Identifier: MIT
"""
One connection per process for each set of credentials, shared by every task thread.

Prefect runs tasks on worker threads (the default ``ThreadPoolTaskRunner``) while a
:class:`~connector.Connection` and its limiter belong to one event loop. Each set of
credentials therefore gets one :class:`~connector.BlockingConnection` per process: its
event loop thread owns the connection, its limiter and an
:class:`~connector.workflow.ActionRunner`, and every task thread calls through it, so
200 mapped sends are paced by one limit. Across processes only a Redis-held limit is
shared; without one, each process spends a budget of its own.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import attrs

from .._blocking import BlockingConnection
from .._connect import open_connection
from .._connection import Connection
from ..plugin import installed
from ..workflow import ActionRunner


__all__ = ["ConnectionOptions", "Shared", "close_all", "shared"]


def _masked(values: object) -> str:
    return "None" if values is None else "<masked>"


@attrs.frozen
class ConnectionOptions:
    """
    Everything a connection is opened from; equal options share one connection.

    Attributes:
        connector: The connector id.
        values: Connection values given explicitly (the environment is then not read
            for credentials), or ``None`` to follow the environment and its emulator rule.
        env: The environment variables that decide the connection, when *values* is
            ``None`` (a snapshot, so a change of them opens another connection).
        rate_limit: ``(calls, seconds)``, ``False`` for none, ``None`` for the manifest's.
        redis_url: Hold the limit in this Redis, shared by every process.
        pacing: Sender pacing as JSON text (the mapping :meth:`Pacing.from_config
            <connector.Pacing.from_config>` reads, written with sorted keys so that
            equal settings compare equal), ``False`` for none, ``None`` for the
            default rates.
        consent_ledger: Where the consent ledger is; ``None`` for the core's default.
    """

    connector: str
    values: tuple[tuple[str, str], ...] | None = attrs.field(repr=_masked)
    env: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=_masked)
    rate_limit: tuple[int, float] | bool | None = None
    redis_url: str | None = attrs.field(default=None, repr=_masked)
    pacing: str | Literal[False] | None = None
    consent_ledger: str | None = attrs.field(default=None, repr=_masked)

    def open(
        self, announce: Callable[[str], None] | None = None
    ) -> AbstractAsyncContextManager[Connection]:
        """Open a connection with these options (``async with``), by the emulator rule."""
        return open_connection(
            connector=installed().get(self.connector).spec,
            values=None if self.values is None else dict(self.values),
            env=dict(self.env),
            rate_limit=self.rate_limit,
            redis_url=self.redis_url,
            pacing=json.loads(self.pacing) if isinstance(self.pacing, str) else self.pacing,
            ledger=self.consent_ledger,
            announce=announce,
        )


@attrs.frozen
class Shared:
    """
    A process's connection for one set of options.

    Attributes:
        connection: Calls from any thread go through it.
        runner: Runs sends so that a retry never sends twice; it lives on the
            connection's loop, like the connection.
    """

    connection: BlockingConnection
    runner: ActionRunner


_lock = threading.Lock()
_open: dict[ConnectionOptions, Shared] = {}
_owner = os.getpid()
_hooked = False


def shared(options: ConnectionOptions, announce: Callable[[str], None] | None = None) -> Shared:
    """
    The process's connection for *options*, opened on first use.

    Raises:
        ConfigurationError: Incomplete credentials, or the emulator refused.
        InvalidInputError: A connection value is missing or malformed.
    """
    global _owner
    with _lock:
        if os.getpid() != _owner:
            # A forked child: the parent's event loop threads did not come along.
            _open.clear()
            _owner = os.getpid()
        found = _open.get(options)
        if found is None:
            _hook_exit()
            connection = BlockingConnection(lambda: options.open(announce)).__enter__()
            found = _open[options] = Shared(connection, ActionRunner(connection.connection))
        return found


def close_all() -> None:
    """Close every shared connection of this process (and stop their loop threads)."""
    with _lock:
        opened = list(_open.values())
        _open.clear()
    for item in opened:
        item.connection.close()


def _hook_exit() -> None:
    global _hooked
    if _hooked:
        return
    # Each connection's loop runs in a ThreadPoolExecutor thread, which the interpreter
    # joins before atexit callbacks run: an open one would hang the exit. threading's
    # own exit hooks run before that join (last registered first), so close them there.
    register: Callable[[Callable[[], None]], Any] = getattr(
        threading, "_register_atexit", atexit.register
    )
    register(close_all)
    _hooked = True


def environment(
    names: tuple[str, ...], env: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """The set ones of *names* in *env* (``os.environ`` unless given), sorted."""
    source = os.environ if env is None else env
    return tuple(sorted((name, source[name]) for name in names if source.get(name)))
