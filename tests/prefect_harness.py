"""
The Prefect tests' fixtures, as a pytest plugin their modules name
(``pytest_plugins = ["prefect_harness"]``): one temporary Prefect server for the whole
session, and Twilio emulators served from an event loop thread of their own (flows run
synchronously in the test's thread).

Not a conftest.py: the core tests import helpers ``from conftest``, which a second
conftest under ``tests/`` would shadow. The test modules skip themselves where Prefect
is not installed (``nox -s tests``); ``nox -s prefect`` runs them. They import nothing
from here at run time: pytest rewrites a plugin's asserts only if it imports it first.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from connector.emulator import ALWAYS_VALID_FROM, EmulatorServer
from connector.testing import test_config


# Before Prefect is imported: no telemetry, and no ~/.prefect (nox sets both too).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))

#: The sender every emulated account owns.
FROM = ALWAYS_VALID_FROM


@attrs.define
class Emulator:
    """A running emulator, driven from the test's thread."""

    server: EmulatorServer
    portal: BlockingPortal

    def credentials(self, **fields: Any) -> Any:
        """A TwilioCredentials block for this emulator."""
        from connector.prefect import TwilioCredentials

        return TwilioCredentials(
            account_sid=self.server.account_sid,
            auth_token=self.server.auth_token,
            base_url=self.server.base_url,
            **fields,
        )

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock (in its own loop thread)."""
        self.portal.call(self.server.advance, seconds)

    def messages(self, **filters: Any) -> list[dict[str, Any]]:
        """The stored messages as Twilio JSON, newest first."""
        return list(self.portal.call(lambda: self.server.messages(**filters)))

    def stats(self) -> dict[str, Any]:
        """The emulator's counters."""
        return dict(self.portal.call(self.server.stats))


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[dt.datetime]:
    """
    One temporary Prefect server and database for every Prefect test of the session;
    the value is when it had started.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield dt.datetime.now(dt.UTC)


@pytest.fixture(scope="session")
def prefect_port(prefect_server: dt.datetime) -> int:
    """The port of the test harness's Prefect server."""
    from urllib.parse import urlsplit

    from prefect.settings import PREFECT_API_URL

    port = urlsplit(PREFECT_API_URL.value()).port
    assert port is not None
    return port


@pytest.fixture
def prefect_test(prefect_port: int) -> Iterator[None]:
    """
    What every Prefect test runs in (``pytestmark = pytest.mark.usefixtures("prefect_test")``;
    a plugin's autouse fixtures would reach the core tests too): the session's Prefect
    server, and the test's shared connections closed after it.

    Prefect's own clients sometimes leave a socket to its server for the garbage
    collector (after a failed async flow, say); that is Prefect's, so it is not an error.
    Sockets to anything else (the emulators) still are.
    """
    from connector.prefect._shared import close_all

    to_server = rf"raddr=\('127\.0\.0\.1', {prefect_port}\)>"
    warnings.filterwarnings("ignore", rf"unclosed <socket\.socket .*{to_server}", ResourceWarning)
    warnings.filterwarnings(
        "ignore",
        rf"Exception ignored in: <socket\.socket .*{to_server}",
        pytest.PytestUnraisableExceptionWarning,
    )
    yield
    close_all()


@pytest.fixture(scope="session")
def emulator_portal() -> Iterator[BlockingPortal]:
    """An event loop thread that serves the emulators."""
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture
def start_emulator(emulator_portal: BlockingPortal) -> Iterator[Any]:
    """Start emulators with test settings (overridable); all are stopped after the test."""
    from connector.prefect._shared import close_all

    started: list[EmulatorServer] = []

    def start(**overrides: Any) -> Emulator:
        server = EmulatorServer(test_config(**overrides))
        emulator_portal.call(server.start)
        started.append(server)
        return Emulator(server, emulator_portal)

    try:
        yield start
    finally:
        close_all()  # the connections to them first
        for server in reversed(started):
            emulator_portal.call(server.stop)


@pytest.fixture
def emulator(start_emulator: Any) -> Emulator:
    """An emulator with test settings: no throttle, instant delivery, a still clock."""
    emulator: Emulator = start_emulator()
    return emulator
