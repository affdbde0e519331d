# SPDX-License-Identifier: MIT
"""
Host and Origin checks for the unauthenticated inbox and admin routes.

The inbox and ``/emulator/*`` need no credentials because the emulator binds loopback.
That alone does not stop a web page the developer visits from reaching them: with DNS
rebinding, ``evil.example`` resolves to 127.0.0.1 and the browser sends
``Host: evil.example``; a plain cross-site form post sends the right ``Host`` but a
foreign ``Origin``. So those routes answer 403 unless ``Host`` names the loopback
interface (or a configured extra host) and any ``Origin`` does too, whatever the
method: a search is a GET, and a page must not be able to send one either. A request
without ``Origin`` that the browser marks ``Sec-Fetch-Site: cross-site`` or
``same-site`` (an ``<img>`` or ``<script>`` of another page) is refused too, unless it is
a top-level navigation (a link to the inbox). The Twilio API routes are left alone: they
are authenticated, and SDKs call ``http://127.0.0.1:PORT``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from connector.emulator._config import EmulatorConfig
from connector.emulator._records import API_VERSION


__all__ = ["host_guard"]

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_FOREIGN_SITES = frozenset({"cross-site", "same-site"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _split(host: str) -> tuple[str, int | None]:
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name += "]"
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    try:
        return name, int(port) if port else None
    except ValueError:
        return name, -1


class _HostPolicy:
    def __init__(self, config: EmulatorConfig) -> None:
        names = set(_LOOPBACK)
        if config.host not in ("", "0.0.0.0", "::"):  # a specific interface is its own name
            names.add(f"[{config.host}]" if ":" in config.host else config.host.lower())
        self.names = frozenset(names)
        self.any = "*" in config.allowed_hosts
        self.extra = frozenset(_split(h) for h in config.allowed_hosts if h != "*")

    def allows(self, host: str, local_port: int | None) -> bool:
        if self.any:
            return True
        name, port = _split(host)
        if (name, port) in self.extra or (name, None) in self.extra:
            return True
        if name not in self.names:
            return False
        # Browsers omit the port only for the scheme's default.
        return port == local_port or (port is None and local_port == 80)


def host_guard(config: EmulatorConfig) -> Any:
    """
    Build the middleware that answers 403 to foreign ``Host`` or ``Origin`` headers.

    Args:
        config: The emulator configuration (bound host, extra allowed hosts).

    Returns:
        An aiohttp middleware.
    """
    policy = _HostPolicy(config)
    api_prefix = f"/{API_VERSION}/"

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(api_prefix):
            return await handler(request)
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local_port = sockname[1] if isinstance(sockname, tuple) and len(sockname) > 1 else None
        host = request.headers.get("Host", "")
        if not host or not policy.allows(host, local_port):
            return web.Response(status=403, text=f"Host not allowed: {host or '(none)'}\n")
        origin = request.headers.get("Origin")
        if origin is not None:
            netloc = urlsplit(origin).netloc if origin != "null" else ""
            if not netloc or not policy.allows(netloc, local_port):
                return web.Response(status=403, text=f"Origin not allowed: {origin}\n")
        elif (
            request.headers.get("Sec-Fetch-Site") in _FOREIGN_SITES
            and request.headers.get("Sec-Fetch-Mode") != "navigate"
        ):
            site = request.headers["Sec-Fetch-Site"]
            return web.Response(status=403, text=f"Request from another site ({site})\n")
        return await handler(request)

    return middleware
