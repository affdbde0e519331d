# SPDX-License-Identifier: MIT
"""
Connections for code without an event loop: threads, synchronous frameworks, task
runners that call tasks on worker threads.

A :class:`~connector.Connection` and its rate limiter belong to one event loop. A
:class:`BlockingConnection` runs that loop in a background thread (anyio's blocking
portal) and hands calls to it from any thread, so every thread shares the one
connection and its one limit: 200 threads sending at once are paced exactly as 200
tasks on one loop would be.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal


if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["BlockingConnection"]


class BlockingConnection:
    """
    A connection usable from any thread, without ``async``.

    Use it as a context manager; it opens the connection in its own event loop thread
    and closes both on exit::

        with BlockingConnection(lambda: open_connection(env=os.environ)) as conn:
            message = conn.call("send_text_message", {...})

    Args:
        opener: Returns the async context manager that opens the connection (for
            example ``lambda: open_connection(...)``, or a :class:`~connector.Connection`
            made inside it); it is called in the background loop.
    """

    def __init__(self, opener: Callable[[], AbstractAsyncContextManager[Connection]]) -> None:
        self._opener = opener
        self._stack = contextlib.ExitStack()
        self._portal: BlockingPortal | None = None
        self._connection: Connection | None = None

    def __enter__(self) -> Self:
        portal = self._stack.enter_context(start_blocking_portal())
        try:
            opened = portal.wrap_async_context_manager(_opened(self._opener))
            self._connection = self._stack.enter_context(opened)
        except BaseException:
            self._stack.close()
            raise
        self._portal = portal
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and stop its event loop thread."""
        self._portal = None
        self._connection = None
        self._stack.close()

    @property
    def connection(self) -> Connection:
        """The underlying connection (use it only from its own loop)."""
        if self._connection is None:
            raise RuntimeError("open the BlockingConnection first: `with BlockingConnection(...)`")
        return self._connection

    def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._portal is None:
            raise RuntimeError("open the BlockingConnection first: `with BlockingConnection(...)`")
        return self._portal.call(function, *args)

    def call(self, action_id: str, inputs: Mapping[str, Any] | None = None) -> Any:
        """:meth:`Connection.call <connector.Connection.call>`, from any thread."""
        return self._run(self.connection.call, action_id, inputs)

    def paginate(
        self,
        action_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        max_items: int | None = None,
    ) -> list[Any]:
        """Every item of every page (see :meth:`Connection.paginate <connector.Connection.paginate>`)."""

        async def collect() -> list[Any]:
            return [
                item
                async for item in self.connection.paginate(action_id, inputs, max_items=max_items)
            ]

        result: list[Any] = self._run(collect)
        return result

    def run(self, function: Callable[[Connection], Any]) -> Any:
        """
        Run ``await function(connection)`` in the connection's loop and return its result,
        for anything beyond one call (a workflow run, a status wait).
        """

        async def apply() -> Any:
            return await function(self.connection)

        return self._run(apply)


@contextlib.asynccontextmanager
async def _opened(
    opener: Callable[[], AbstractAsyncContextManager[Connection]],
) -> AsyncIterator[Connection]:
    async with opener() as connection:
        yield connection
