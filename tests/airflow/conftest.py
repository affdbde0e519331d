"""
The Airflow provider's tests (``nox -s airflow``): a temporary ``AIRFLOW_HOME`` with a
SQLite database migrated once per session, DAG files copied into its DAG folder, and
the emulator served from a thread of its own, since ``dag.test()`` blocks the caller.

Without Airflow installed (``nox -s tests``) nothing here is collected.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_support import ThreadedEmulator


# The top-level name only ("airflow.sdk" would import, and set up, Airflow); without
# Airflow, this very directory passes for a namespace package "airflow", with no origin.
_AIRFLOW = importlib.util.find_spec("airflow")
if _AIRFLOW is None or _AIRFLOW.origin is None:
    collect_ignore_glob = ["*"]
else:
    # Airflow reads its settings when first imported: they must be in place before.
    HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
    DAGS = HOME / "dags"
    DAGS.mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    ROOT = Path(__file__).resolve().parents[2]
    # dag.test() runs only DAGs of the DAG folder: the tests' and the examples'.
    for source in [
        *(Path(__file__).parent / "dags").glob("*.py"),
        *(ROOT / "examples" / "airflow").glob("*.py"),
    ]:
        shutil.copy(source, DAGS / source.name)


#: Warnings of Airflow's own dependencies, raised inside dag.test(); the suite's
#: filterwarnings = error stays in force for everything else.
AIRFLOW_WARNINGS = (
    # Airflow's in-process execution API imports starlette's test client.
    "ignore:Using .httpx. with .starlette.testclient. is deprecated",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let the known dependency warnings pass in this directory's tests."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            for spec in AIRFLOW_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """``airflow db migrate`` on SQLite in the session's AIRFLOW_HOME, once."""
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout}\n{result.stderr}")
    yield HOME
    shutil.rmtree(HOME, ignore_errors=True)


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server on a free loopback port, without persistence."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("the shared-limit tests need redis-server: apt-get install -y redis-server")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.02)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
