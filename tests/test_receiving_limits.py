"""The listener cuts off slow clients and bounds its connections; valid webhooks still get in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from connector.receiving import Listener, ServerLimits
from connector.signature import compute_signature
from connector.workflow import Journal, load_workflow


TOKEN = "listener-test-token-0123456789ab"
WORKFLOW = """
name: inbound
on:
  twilio/message_received: {}
steps:
  - {id: save, uses: workflow/write_json, with: {path: out.json, value: 1}}
"""
TIMEOUT = 0.5
PARTIAL_HEADERS = b"POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SLOW_BODY = (
    b"POST /messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nBody="
)

Start = Callable[[ServerLimits], Awaitable[Listener]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start a listener with the given limits; it is stopped after the test."""
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    started: list[Listener] = []
    with Journal(tmp_path / "runs.db") as journal:

        async def make(limits: ServerLimits) -> Listener:
            workflow = load_workflow(tmp_path / "wf.yaml")
            listener = Listener([workflow], journal, auth_token=TOKEN, limits=limits)
            await listener.start()
            started.append(listener)
            return listener

        try:
            yield make
        finally:
            for listener in started:
                await listener.stop()


async def signed_webhook(listener: Listener, index: int) -> int:
    """POST one valid signed incoming-message webhook and return the status."""
    params = {
        "MessageSid": f"SM{index:032x}",
        "From": "+15551230001",
        "To": "+15005550006",
        "Body": "hi",
    }
    url = listener.public_url + "/messages"
    headers = {"X-Twilio-Signature": compute_signature(url, params, TOKEN)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=params, headers=headers) as response,
    ):
        return response.status


async def connect(listener: Listener) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a raw connection to the listener."""
    host, port = listener.url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def dribble(listener: Listener, request: bytes) -> tuple[float, bytes]:
    """
    Send *request*, then a byte whenever the server has been silent for TIMEOUT / 5;
    return the seconds until the server closed the connection, and what it answered.
    """
    reader, writer = await connect(listener)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(request)
    answer = b""
    try:
        for _ in range(50):  # bounded: at most 10 x TIMEOUT
            try:
                # This wait is the server's timeout under test, one byte at a time.
                data = await asyncio.wait_for(reader.read(1024), TIMEOUT / 5)
            except TimeoutError:
                writer.write(b"x")
                continue
            if not data:
                return loop.time() - started, answer
            answer += data
        raise AssertionError("the server never closed the slow connection")
    finally:
        writer.close()


async def test_slow_headers_are_cut_off_and_valid_webhooks_still_succeed(start: Start) -> None:
    """20 clients sending headers a byte at a time are closed after the header timeout."""
    listener = await start(ServerLimits(header_timeout=TIMEOUT, body_timeout=TIMEOUT))
    slow = [asyncio.create_task(dribble(listener, PARTIAL_HEADERS)) for _ in range(20)]
    assert [await signed_webhook(listener, i) for i in range(5)] == [200] * 5
    results = await asyncio.gather(*slow)
    assert all(TIMEOUT * 0.8 <= seconds < TIMEOUT * 6 for seconds, _ in results), results
    assert all(answer == b"" for _, answer in results)


async def test_slow_bodies_are_answered_408_and_closed(start: Start) -> None:
    """A body that does not arrive within the body timeout gets 408 and the connection closes."""
    listener = await start(ServerLimits(header_timeout=TIMEOUT, body_timeout=TIMEOUT))
    results = await asyncio.gather(*(dribble(listener, SLOW_BODY) for _ in range(5)))
    assert all(answer.startswith(b"HTTP/1.1 408") for _, answer in results), results
    assert all(seconds < TIMEOUT * 6 for seconds, _ in results)
    assert listener.guard.timed_out == 5
    assert await signed_webhook(listener, 1) == 200
    assert listener.journal.pending_deliveries(10, workflows=list(listener.workflows))


async def test_connections_beyond_the_cap_close_the_oldest_idle_ones(start: Start) -> None:
    """With 10 connections allowed, 15 stalled ones close the oldest 5; webhooks still get in."""
    listener = await start(ServerLimits(header_timeout=30, body_timeout=30, max_connections=10))
    stalled = []
    for _ in range(15):
        reader, writer = await connect(listener)
        writer.write(PARTIAL_HEADERS)
        await writer.drain()
        stalled.append((reader, writer))
    try:
        # Closed at once by the newer connections, long before the 30 s header timeout.
        for reader, _ in stalled[:5]:
            assert await asyncio.wait_for(reader.read(1024), 5) == b""
        assert await signed_webhook(listener, 2) == 200
        assert listener.guard.evicted >= 6
    finally:
        for _, writer in stalled:
            writer.close()


def test_limits_must_be_positive() -> None:
    """Timeouts and the connection cap must be positive."""
    with pytest.raises(ValueError, match="positive"):
        ServerLimits(header_timeout=0)
    with pytest.raises(ValueError, match="at least 1"):
        ServerLimits(max_connections=0)
