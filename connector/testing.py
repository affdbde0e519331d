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
- ``twilio_emulator_factory``: an async factory taking :class:`EmulatorConfig` fields as
  keyword arguments (over the same test defaults); every server it starts is stopped
  after the test, last started first.

Requires pytest-asyncio (asyncio mode ``auto`` or tests marked ``asyncio``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from connector.emulator import EmulatorConfig, EmulatorServer, ManualClock


__all__ = ["EmulatorFactory", "test_config", "twilio_emulator", "twilio_emulator_factory"]

EmulatorFactory = Callable[..., Awaitable[EmulatorServer]]


def test_config(**overrides: Any) -> EmulatorConfig:
    """
    Build a configuration with the test defaults, overridden by *overrides*.

    Args:
        **overrides: Any :class:`EmulatorConfig` field.

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
