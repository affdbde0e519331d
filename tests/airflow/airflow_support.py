"""
The Airflow provider's tests' support, a pytest plugin (``nox -s airflow``): a
temporary ``AIRFLOW_HOME`` with a SQLite database migrated once per session, DAG files
copied into its DAG folder, and the emulator served from a thread of its own, since
``dag.test()`` blocks the caller.

Each test module imports :mod:`airflow_home` first and names this module in
``pytest_plugins``. (It is not a ``conftest.py``: the core tests import their
constants ``from conftest``, and a conftest here would take that name over.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_home import HOME


#: Warnings of Airflow's own dependencies, raised inside dag.test(); the suite's
#: filterwarnings = error stays in force for everything else.
AIRFLOW_WARNINGS = (
    # Airflow's in-process execution API imports starlette's test client.
    "ignore:Using .httpx. with .starlette.testclient. is deprecated",
    # Airflow 3.1 only (the suite also runs there, but is made for 3.3.2).
    "ignore:The .airflow.operators.branch.BaseBranchOperator. attribute is deprecated",
    "ignore:The ..noload.. loader strategy is deprecated",
    "ignore:Using Connection.from_json from .airflow.models. is deprecated",
    "ignore:.HTTP_422_UNPROCESSABLE_ENTITY. is deprecated",
    "ignore:The anyio.abc.BlockingPortal alias is deprecated",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let the known dependency warnings pass in this directory's tests."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            for spec in AIRFLOW_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` on SQLite in the session's AIRFLOW_HOME, once."""
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout}\n{result.stderr}")
    return HOME


@pytest.fixture
def threaded_emulator() -> Iterator[Callable[..., ThreadedEmulator]]:
    """Start emulators (EmulatorConfig fields as keywords) in a thread; all stop after the test."""
    from anyio.from_thread import start_blocking_portal

    from connector.emulator import EmulatorServer
    from connector.testing import test_config

    with start_blocking_portal() as portal:
        started: list[Any] = []

        def start(**overrides: Any) -> ThreadedEmulator:
            server = EmulatorServer(test_config(**overrides))
            portal.call(server.start)
            started.append(server)
            return ThreadedEmulator(portal, server)

        try:
            yield start
        finally:
            for server in reversed(started):
                portal.call(server.stop)


class ThreadedEmulator:
    """
    An emulator served by an event loop in a background thread, for code that blocks
    (``dag.test()``) or runs its own loops (Airflow's inline triggers).
    """

    def __init__(self, portal: Any, server: Any) -> None:
        self._portal = portal
        self.server = server
        self.base_url: str = server.base_url
        self.account_sid: str = server.account_sid
        self.auth_token: str = server.auth_token

    def messages(self, **filters: Any) -> list[dict[str, Any]]:
        """Stored messages, newest first (see ``EmulatorServer.messages``)."""
        result: list[dict[str, Any]] = self._portal.call(
            _sync, lambda: self.server.messages(**filters)
        )
        return result

    def stats(self) -> dict[str, Any]:
        """The emulator's counters."""
        result: dict[str, Any] = self._portal.call(_sync, self.server.stats)
        return result

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock on."""
        self._portal.call(_sync, lambda: self.server.advance(seconds))

    def connection(self, **extra: Any) -> str:
        """``AIRFLOW_CONN_...`` JSON for this emulator, with *extra* in the extra."""
        return json.dumps(
            {
                "conn_type": "twilio",
                "login": self.account_sid,
                "password": self.auth_token,
                "extra": {"base_url": self.base_url, **extra},
            }
        )


async def _sync(function: Callable[[], Any]) -> Any:
    return function()
