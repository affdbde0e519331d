# SPDX-License-Identifier: MIT
"""
How long a webhook may take to arrive, and how many connections the listener keeps.

aiohttp's server waits an hour for a request's headers and has no limit on
connections: 300 clients sending a byte every 2 s held every file descriptor, and
valid signed webhooks timed out. So:

- the request line and headers must arrive within ``header_timeout`` (aiohttp's
  keep-alive timer, which also closes a connection idle that long between requests);
- the body within ``body_timeout`` after the headers, or the answer is 408 and the
  connection is closed;
- at most ``max_connections`` are kept: a new connection closes the oldest one that is
  not running a handler (still sending its headers or body, or idle), so slow clients
  make room instead of locking valid webhooks out. Connections whose request is being
  handled (signature check, journal) are never cut.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web


__all__ = ["ConnectionGuard", "ServerLimits"]

log = logging.getLogger("connector.receiving")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen(kw_only=True)
class ServerLimits:
    """
    The listener's limits on slow or numerous clients.

    Attributes:
        header_timeout: Seconds to receive a request's line and headers (and the most a
            connection stays idle between requests).
        body_timeout: Seconds to receive a request's body once its headers are in.
        max_connections: Connections kept open at once; a new one closes the oldest
            that is not being handled.
        max_body: Largest body accepted, in bytes (Twilio's webhooks are a few KiB).
    """

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 100
    max_body: int = 1024 * 1024

    def __attrs_post_init__(self) -> None:
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise ValueError("header_timeout and body_timeout must be positive")
        if self.max_connections < 1 or self.max_body < 1:
            raise ValueError("max_connections and max_body must be at least 1")


class ConnectionGuard:
    """
    Applies :class:`ServerLimits` to one aiohttp server: a protocol factory that keeps
    the number of connections bounded, and a middleware that times the body.

    Args:
        limits: The limits.
    """

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.evicted = 0
        """Connections closed to make room for a new one."""
        self.timed_out = 0
        """Requests answered 408 because their body was too slow."""
        # Insertion-ordered: the oldest connection first.
        self._open: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self._busy: set[Any] = set()

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """
        Wrap aiohttp's protocol factory so that each accepted connection may evict one.

        Args:
            server: ``AppRunner.server``, after ``setup()``.

        Returns:
            The factory to pass to ``loop.create_server``.
        """

        def make() -> asyncio.Protocol:
            if len(self._open) >= self.limits.max_connections:
                self._evict_one()
            handler = server()
            self._open[handler] = None  # dropped again when its connection is lost
            return _Tracked(handler, self._open)

        return make

    def _evict_one(self) -> None:
        for handler in self._open:
            if handler not in self._busy:
                del self._open[handler]
                self.evicted += 1
                log.warning(
                    "closed a connection that had sent no complete request, to stay within "
                    "%d connections",
                    self.limits.max_connections,
                )
                handler.force_close()
                return

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Read the body within ``body_timeout``, then run *handler* as a busy connection."""
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                await request.read()
        except TimeoutError:
            self.timed_out += 1
            log.warning(
                "refused %s %s from %s: the body did not arrive within %gs",
                request.method,
                request.path,
                request.remote,
                self.limits.body_timeout,
            )
            response = web.Response(status=408, text="request body too slow\n")
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            # Closed now: aiohttp would otherwise linger, reading the rest of the body.
            if request.transport is not None:
                request.transport.close()
            return response
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self._busy.discard(protocol)


class _Tracked(asyncio.Protocol):
    """aiohttp's protocol for one connection, forgotten by the guard when it closes."""

    def __init__(self, inner: Any, open_: collections.OrderedDict[Any, None]) -> None:
        self._inner = inner
        self._open = open_

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._open.pop(self._inner, None)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
