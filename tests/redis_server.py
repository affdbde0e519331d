"""
A private ``redis-server`` for the tests that share limits, pacing or the consent
ledger through Redis, a fixture of the plugin ``tests/conftest.py`` loads for every session:
one server on a free loopback port for the session (started by the first test that asks), without persistence, stopped at the end.
It fails (never skips) when ``redis-server`` is missing: ``.ci/run`` installs it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a private redis-server, running for the whole session."""
    import redis  # only where a test asks for Redis: the core tests do not need it

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed; the Redis tests need it: "
            "apt-get install -y redis-server"
        )
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:  # until it answers (its start, not time, is waited for)
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _, err = process.communicate(timeout=5)
                    pytest.fail(f"redis-server did not start: {err.decode(errors='replace')}")
                time.sleep(0.02)
        yield url
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        finally:
            if process.stderr is not None:
                process.stderr.close()
