# SPDX-License-Identifier: MIT
"""
:class:`EmulatorServer`: the emulator on a real socket, as an async context manager.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiohttp import web

from connector.emulator._app import STATE_KEY, create_app
from connector.emulator._config import EmulatorConfig
from connector.emulator._media import StoredMedia
from connector.emulator._state import EmulatorState


__all__ = ["EmulatorServer"]


class EmulatorServer:
    """
    Run the emulator on ``config.host:config.port`` for the duration of an ``async with``.

    It prints nothing, so the connector can start one in-process when the user gave no
    Twilio credentials::

        async with EmulatorServer(EmulatorConfig(delivery_delay=0)) as emu:
            client = make_client(emu.base_url, emu.account_sid, emu.auth_token)

    Args:
        config: The configuration; defaults to a loopback server on a free port.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.app = create_app(self.config)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    def __repr__(self) -> str:
        return f"<EmulatorServer {self._base_url or 'not started'}>"

    @property
    def state(self) -> EmulatorState:
        """The emulator's model (store, clock, callbacks, counters)."""
        return self.app[STATE_KEY]

    @property
    def base_url(self) -> str:
        """
        Where the server listens, e.g. ``http://127.0.0.1:41234`` (no trailing slash).

        Raises:
            RuntimeError: Before the server has started.
        """
        if self._base_url is None:
            raise RuntimeError("the emulator is not running")
        return self._base_url

    @property
    def account_sid(self) -> str:
        """The account SID clients must use."""
        return self.config.account_sid

    @property
    def auth_token(self) -> str:
        """The account's auth token."""
        return self.config.auth_token

    async def start(self) -> None:
        """
        Bind the socket and start serving.

        Raises:
            RuntimeError: If already started.
        """
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.state.own_sockets.add_all(runner.addresses)
        host, port = runner.addresses[0][:2]
        if ":" in host:
            host = f"[{host}]"
        self._base_url = f"http://{host}:{port}"
        self.state.media.base_url = self._base_url

    async def stop(self) -> None:
        """Stop serving, deliver nothing further and close the database."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def messages(self, **filters: Any) -> list[dict[str, Any]]:
        """
        Stored messages as Twilio JSON, newest first, optionally filtered.

        Args:
            **filters: Field equality filters on the JSON, e.g. ``to="+15005550006"``,
                ``status="delivered"`` (use ``from_`` for ``from``).

        Returns:
            The matching Message dicts.
        """
        wanted = {key.rstrip("_"): value for key, value in filters.items()}
        rendered = (record.to_json() for record in reversed(self.state.store.all()))
        return [m for m in rendered if all(m.get(k) == v for k, v in wanted.items())]

    def stats(self) -> dict[str, Any]:
        """
        The counters ``GET /emulator/stats`` reports.

        Returns:
            Requests, 429s, faults, messages by status and callback outcomes.
        """
        return self.state.snapshot()

    def advance(self, seconds: float) -> None:
        """
        Move the emulator's clock forward, applying every transition that became due.

        Args:
            seconds: How far to move.
        """
        self.config.clock.advance(seconds)

    async def drain_callbacks(self) -> None:
        """Wait until every queued status callback and inbound webhook has been tried."""
        await self.state.callbacks.drain()

    async def reset(self) -> None:
        """Forget all messages and counters, as ``POST /emulator/reset`` does."""
        await self.state.reset()

    async def inbound(
        self,
        *,
        to: str,
        from_: str,
        body: str = "",
        media_urls: tuple[str, ...] = (),
        media: tuple[tuple[str, bytes], ...] = (),
    ) -> dict[str, Any]:
        """
        Inject an incoming message, as ``POST /emulator/inbound`` does.

        Args:
            to: The account's number that receives it.
            from_: The sender.
            body: Text.
            media_urls: Media URLs.
            media: Media files posted with it, as ``(content type, bytes)`` pairs.

        Returns:
            The stored Message JSON (status ``received``).
        """
        record = self.state.receive(
            to=to,
            from_=from_,
            body=body,
            media_urls=media_urls,
            media_files=[StoredMedia(kind, data) for kind, data in media],
        )
        await self.state.store.commit()
        return record.to_json()
