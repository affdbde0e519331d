# SPDX-License-Identifier: MIT
"""
Opt-in pytest plugin: Twilio emulator fixtures for testing workflows offline.

Enable it in a ``conftest.py``::

    pytest_plugins = ["connector.testing"]

Fixtures:

- ``twilio_emulator``: an :class:`~connector.emulator.EmulatorServer` on
  ``127.0.0.1:<free port>`` with an in-memory database, no throttle, instant delivery
  (``delivery_delay=0``), callbacks retried without waiting, and a
  :class:`~connector.emulator.ManualClock`; stopped after the test.
- ``twilio_emulator_factory``: an async factory taking
  :class:`~connector.emulator.EmulatorConfig` fields as keyword arguments (over the same
  test defaults); every server it starts is stopped after the test, last started first.

- ``twilio_inbox``: an :class:`Inbox` on ``twilio_emulator``: ``await
  inbox.expect_sms(to=..., body_matches=..., timeout=...)`` returns the message or fails
  listing what did arrive, ``await inbox.reply(...)`` answers as the handset. At
  teardown the test fails if the code under test sent an SMS it never expected; mark
  the test ``@pytest.mark.allow_unexpected_sms`` to allow that.

Requires pytest-asyncio (asyncio mode ``auto`` or tests marked ``asyncio``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from connector.emulator import (
    EmulatorConfig,
    EmulatorServer,
    FaultMode,
    HandsetFault,
    ManualClock,
    MessageQuery,
)


__all__ = [
    "EmulatorFactory",
    "Inbox",
    "pytest_configure",
    "test_config",
    "twilio_emulator",
    "twilio_emulator_factory",
    "twilio_inbox",
]

_ALLOW_MARKER = "allow_unexpected_sms"

EmulatorFactory = Callable[..., Awaitable[EmulatorServer]]


def test_config(**overrides: Any) -> EmulatorConfig:
    """
    Build a configuration with the test defaults, overridden by *overrides*.

    Args:
        **overrides: Any :class:`~connector.emulator.EmulatorConfig` field.

    Returns:
        The configuration.
    """
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "db_path": None,
        "throttle": None,
        "delivery_delay": 0.0,
        "callback_backoff": 0.0,
        "callback_timeout": 5.0,
        "clock": ManualClock(),
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


@pytest_asyncio.fixture
async def twilio_emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Start emulators with custom settings; all are stopped after the test."""
    servers: list[EmulatorServer] = []

    async def start(**overrides: Any) -> EmulatorServer:
        server = EmulatorServer(test_config(**overrides))
        await server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.stop()


@pytest_asyncio.fixture
async def twilio_emulator(twilio_emulator_factory: EmulatorFactory) -> EmulatorServer:
    """A running emulator with test defaults (in memory, no throttle, instant delivery)."""
    return await twilio_emulator_factory()


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's marker."""
    config.addinivalue_line(
        "markers",
        f"{_ALLOW_MARKER}: do not fail when the test leaves SMS it never expected",
    )


def _summary(message: dict[str, Any]) -> str:
    return (
        f"{message['sid']} {message['direction']} {message['from']} -> {message['to']} "
        f"[{message['status']}] {message['body']!r}"
    )


class Inbox:
    """
    Test-side view of the emulator's inbox: expect the SMS the code sends, reply to them.

    Every outbound API message must be claimed by :meth:`expect_sms` before the test
    ends; :meth:`unexpected` lists the rest (the ``twilio_inbox`` fixture fails on them).

    Args:
        emulator: A running emulator.
    """

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self._claimed: set[str] = set()
        self._last: dict[str, Any] | None = None

    def _sent(self) -> list[dict[str, Any]]:
        return [
            record.to_json()
            for record in self.emulator.state.store.all()
            if record.direction == "outbound-api"
        ]

    async def expect_sms(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        body_matches: str | re.Pattern[str] | None = None,
        timeout: float = 2.0,  # noqa: ASYNC109 -- the documented helper's parameter
    ) -> dict[str, Any]:
        """
        Wait for an SMS sent through the API that matches, and claim it.

        The oldest unclaimed match is returned, so two identical sends need two calls.

        Args:
            to: The recipient.
            from_: The sender.
            body_matches: A regular expression searched in the body.
            timeout: Seconds (real time) to wait for it to arrive.

        Returns:
            The Message JSON.

        Raises:
            pytest.fail.Exception: Nothing matched in time; the message lists what
                did arrive.
        """
        pattern = re.compile(body_matches) if isinstance(body_matches, str) else body_matches
        base = MessageQuery(to=to, from_=from_, body_matches=pattern, direction="outbound-api")
        state = self.emulator.state
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        query = base
        while True:
            record = await state.wait_for(query, max(0.0, deadline - loop.time()))
            if record is None:
                break
            if record.sid not in self._claimed:
                self._claimed.add(record.sid)
                self._last = record.to_json()
                return self._last
            # Already claimed: look further, from just after it.
            query = MessageQuery(
                to=to,
                from_=from_,
                body_matches=pattern,
                direction="outbound-api",
                after_seq=record.seq,
            )
        arrived = [_summary(m) for m in self._sent() if m["sid"] not in self._claimed]
        listing = "\n  ".join(arrived) if arrived else "(none)"
        pytest.fail(
            f"no SMS matching {base.describe()} within {timeout}s; unclaimed SMS sent:\n"
            f"  {listing}",
            pytrace=False,
        )

    async def reply(
        self,
        body: str,
        *,
        to: str | None = None,
        from_: str | None = None,
        media_urls: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """
        Answer as the handset: inject an inbound SMS and wait for its webhook delivery.

        Args:
            body: The text (``STOP``, ``START`` and ``HELP`` act as keywords).
            to: The account's number; defaults to the sender of the last expected SMS.
            from_: The handset; defaults to the recipient of the last expected SMS.
            media_urls: Media URLs.

        Returns:
            The inbound Message JSON.

        Raises:
            ValueError: With no last expected SMS to default *to* / *from_* from.
        """
        last = self._last
        if (to is None or from_ is None) and last is None:
            raise ValueError("reply() needs to= and from_= before any expect_sms()")
        target = to if to is not None else str(last["from"]) if last else ""
        handset = from_ if from_ is not None else str(last["to"]) if last else ""
        message = await self.emulator.inbound(
            to=target, from_=handset, body=body, media_urls=media_urls
        )
        await self.emulator.drain_callbacks()
        return message

    def fail_next(self, handset: str, code: int, *, every: bool = False) -> None:
        """
        Make the next (or with *every*, each) send to *handset* fail with *code*.

        Args:
            handset: The destination number.
            code: 21610 (refused with 400) or 30003-30008 (accepted, then undelivered
                or failed).
            every: Keep failing until :meth:`clear_fault`.
        """
        mode: FaultMode = "always" if every else "next"
        self.emulator.state.rules.set_fault(handset, HandsetFault(code, mode))

    def clear_fault(self, handset: str) -> None:
        """
        Remove the failure switch of *handset*.

        Args:
            handset: The destination number.
        """
        self.emulator.state.rules.set_fault(handset, None)

    def unexpected(self) -> list[dict[str, Any]]:
        """
        SMS sent through the API that no :meth:`expect_sms` claimed.

        Returns:
            Their Message JSON, oldest first.
        """
        return [m for m in self._sent() if m["sid"] not in self._claimed]


@pytest_asyncio.fixture
async def twilio_inbox(
    request: pytest.FixtureRequest, twilio_emulator: EmulatorServer
) -> AsyncIterator[Inbox]:
    """An :class:`Inbox` on ``twilio_emulator`` that fails the test on unexpected SMS."""
    inbox = Inbox(twilio_emulator)
    yield inbox
    if request.node.get_closest_marker(_ALLOW_MARKER) is not None:
        return
    leftovers = inbox.unexpected()
    if leftovers:
        listing = "\n  ".join(_summary(m) for m in leftovers)
        pytest.fail(
            f"the test sent {len(leftovers)} SMS it never expected "
            f"(expect them with twilio_inbox.expect_sms, or mark the test "
            f"@pytest.mark.{_ALLOW_MARKER}):\n  {listing}",
            pytrace=False,
        )
