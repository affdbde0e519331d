from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import Mock

import aiohttp
import aiolimiter
import attrs
import pytest
from aioresponses import aioresponses


# The emulator fixtures ship as an opt-in pytest plugin so that users can test
# their own workflows against the emulator; the project's tests opt in too.
pytest_plugins = ["connector.testing"]

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "s3cr3t-auth-token-never-shown"
API_KEY = "SK" + "fedcba9876543210" * 2
API_SECRET = "s3cr3t-api-secret-never-shown"


def pytest_report_header() -> list[str]:
    return [
        f"aiohttp {aiohttp.__version__}, attrs {attrs.__version__}, "
        f"aiolimiter {aiolimiter.__version__ if hasattr(aiolimiter, '__version__') else '?'}"
    ]


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


@pytest.fixture(autouse=True)
def _no_twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real credentials, edge or region."""
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_KEY",
        "TWILIO_API_SECRET",
        "TWILIO_BASE_URL",
        "TWILIO_EDGE",
        "TWILIO_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
