# SPDX-License-Identifier: MIT
"""
Where the emulator's webhooks may go: anywhere http(s) but its own listening socket.

A ``StatusCallback`` (or an inbound message's ``Url``) naming the emulator itself would
make it POST to its own admin API from loopback, past the Host/Origin guard:
``http://127.0.0.1:PORT/emulator/reset`` would wipe every message. So a URL whose host
resolves to an address and port the emulator listens on is refused when it is given
(400, as Twilio answers an invalid callback URL), checked again before each delivery,
and filtered out of DNS answers at connect time (a name that resolves elsewhere when
given and to the emulator later). Redirects are never followed. Other loopback ports
(listeners, tests) are fine.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


__all__ = ["OwnSockets"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.partition("%")[0].strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches a listener on 127.0.0.1
    return ip


@functools.lru_cache(maxsize=256)
def _is_local(ip: IPAddress) -> bool:
    """Whether *ip* is an address of this host: only those can be bound."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


class OwnSockets:
    """The addresses and ports the emulator listens on, which no webhook may target."""

    def __init__(self) -> None:
        self._sockets: set[tuple[IPAddress, int]] = set()

    def add(self, host: str, port: int) -> None:
        """
        Record a listening socket (or the local end of a connection to one).

        Args:
            host: Its address (``0.0.0.0`` or ``::`` for every interface).
            port: Its port.
        """
        ip = _ip(host)
        if ip is not None:
            self._sockets.add((ip, port))

    def add_all(self, sockets: Iterable[Any]) -> None:
        """
        Record ``sockname`` tuples, as ``AppRunner.addresses`` lists them.

        Args:
            sockets: ``(host, port, ...)`` tuples; anything else is skipped.
        """
        for sockname in sockets:
            if isinstance(sockname, tuple) and len(sockname) >= 2:
                self.add(str(sockname[0]), int(sockname[1]))

    def is_own(self, host: str, port: int) -> bool:
        """
        Whether connecting to *host*:*port* would reach the emulator itself.

        Args:
            host: An IP address.
            port: A port.

        Returns:
            ``True`` for a listening socket's address, any address of this host when
            the emulator listens on every interface, and ``0.0.0.0``/``::`` (which
            connect to this host).
        """
        ip = _ip(host)
        if ip is None:
            return False
        for bound, bound_port in self._sockets:
            if bound_port != port:
                continue
            if ip == bound or ip.is_unspecified or (bound.is_unspecified and _is_local(ip)):
                return True
        return False

    async def refusal(self, url: str) -> str | None:
        """
        Say why a webhook may not go to *url*, resolving its host off the event loop.

        A host that does not resolve now is not refused: it is checked again at delivery.

        Args:
            url: The webhook URL.

        Returns:
            The reason, or ``None`` when the URL is fine.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "it is not a valid URL"
        if parts.scheme not in ("http", "https"):
            return "only http and https URLs are called"
        host = parts.hostname
        if not host:
            return "it has no host"
        port = port or (443 if parts.scheme == "https" else 80)
        if _ip(host) is not None:
            addresses = [host]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError):
                return None
            addresses = [str(info[4][0]) for info in infos]
        if any(self.is_own(address, port) for address in addresses):
            return f"{host}:{port} is the emulator's own address"
        return None

    def resolver(self) -> AbstractResolver:
        """
        A DNS resolver for webhook deliveries that never answers an own address.

        Returns:
            An aiohttp resolver wrapping the default one.
        """
        return _FilteringResolver(self)


class _FilteringResolver(AbstractResolver):
    """The default resolver, less the addresses of the emulator's own sockets."""

    def __init__(self, own: OwnSockets) -> None:
        self._own = own
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results if not self._own.is_own(r["host"], r["port"])]
        if not kept:
            raise OSError(f"{host}:{port} is the emulator's own address")
        return kept

    async def close(self) -> None:
        await self._inner.close()
