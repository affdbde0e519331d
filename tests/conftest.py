from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import aiohttp
import attrs
import pytest
from aiohttp import web
from aioresponses import aioresponses

from connector import Connection
from connector.emulator import EmulatorServer


def _installed(name: str) -> bool:
    # A folder of tests named like the package passes for a namespace package: no origin.
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.origin is not None


# Engine integrations are tested in sessions of their own, where the engine is installed
# (`nox -s airflow`, `nox -s prefect`); elsewhere their tests are not collected at all.
collect_ignore = [engine for engine in ("airflow",) if not _installed(engine)]
collect_ignore_glob = [] if _installed("prefect") else ["test_prefect_*.py"]

# The emulator fixtures ship as an opt-in pytest plugin so that users can test
# their own workflows against the emulator; the project's tests opt in too, and to
# tests/redis_server.py for a private Redis where a test asks for one.
pytest_plugins = ["connector.testing", "redis_server"]

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "s3cr3t-auth-token-never-shown"
API_KEY = "SK" + "fedcba9876543210" * 2
API_SECRET = "s3cr3t-api-secret-never-shown"


def pytest_report_header() -> list[str]:
    return [f"aiohttp {aiohttp.__version__}, attrs {attrs.__version__}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Close the report with what the docs' samples came to, when they ran."""
    from docs_samples import TALLY

    tally = terminalreporter.config.stash.get(TALLY, None)
    if tally is not None:
        terminalreporter.write_sep("-", tally.line())


class CompatResponse(aiohttp.ClientResponse):
    """
    aioresponses 0.7.9 builds responses without ``stream_writer``, which aiohttp 3.14
    requires (pnuckowski/aioresponses#289); supply a stand-in.
    """

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", Mock(output_size=0))
        super().__init__(method, url, **kwargs)


class CompatAioresponses(aioresponses):  # type: ignore[misc]
    """aioresponses whose mocked answers use :class:`CompatResponse`."""

    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:
        kwargs.setdefault("response_class", CompatResponse)
        super().add(url, method, **kwargs)


@pytest.fixture
def mocked_http() -> Iterator[CompatAioresponses]:
    """aiohttp with every request answered by registered mocks (none reach the network)."""
    with CompatAioresponses() as mocked:
        yield mocked


@pytest.fixture(scope="session")
def _private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg")


@pytest.fixture(autouse=True)
def _no_twilio_env(monkeypatch: pytest.MonkeyPatch, _private_runtime_dir: Path) -> None:
    """
    Tests never pick up a developer's real credentials, edge or region, nor the
    emulator a developer runs (whose record lives in the user's runtime directory).
    """
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_KEY",
        "TWILIO_API_SECRET",
        "TWILIO_BASE_URL",
        "TWILIO_EDGE",
        "TWILIO_REGION",
        "TWILIO_EMULATOR",
    ):
        monkeypatch.delenv(name, raising=False)
    runtime = _private_runtime_dir / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(_private_runtime_dir / "state"))


class Receiver:
    """A local webhook receiver that records signed form posts and can fail the first N."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.fail_first = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request, answering 500 while failures remain."""
        form = {k: str(v) for k, v in (await request.post()).items()}
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500)
        self.requests.append((str(request.url), form, request.headers["X-Twilio-Signature"]))
        return web.Response(text="<Response/>", content_type="text/xml")


@pytest.fixture
async def conn(twilio_emulator: EmulatorServer) -> AsyncIterator[Connection]:
    """A connection to the test's emulator, without a rate limit."""
    async with Connection(
        twilio_emulator.account_sid,
        twilio_emulator.auth_token,
        base_url=twilio_emulator.base_url,
        env={},
        rate_limit=False,
    ) as opened:
        yield opened


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1, stopped after the test."""
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    recv.url = f"http://{host}:{port}"
    yield recv
    await runner.cleanup()
