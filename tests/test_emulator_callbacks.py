"""The callback dispatcher on its own: retry backoff and what it logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from connector.emulator._callbacks import CallbackDispatcher


@pytest.fixture
async def failing_url() -> AsyncIterator[str]:
    """A receiver on 127.0.0.1 that answers 500 to every POST."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/cb", fail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/cb"
    await runner.cleanup()


async def test_retries_back_off_doubling_from_the_configured_delay(failing_url: str) -> None:
    """A failing receiver is retried after backoff, 2 x backoff, 4 x backoff, then given up."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    dispatcher = CallbackDispatcher("token", attempts=4, backoff=0.5, timeout=5.0, sleep=record)
    try:
        dispatcher.enqueue("SM1", failing_url, [("MessageStatus", "sent")])
        await dispatcher.drain()
    finally:
        await dispatcher.close()
    assert waits == [0.5, 1.0, 2.0]
    assert [attempt.attempt for attempt in dispatcher.log["SM1"]] == [1, 2, 3, 4]
    assert all(attempt.status == 500 for attempt in dispatcher.log["SM1"])
    assert (dispatcher.stats.failed, dispatcher.stats.attempts_failed) == (1, 4)


async def test_failure_log_hides_the_webhook_password(
    failing_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback URL with Basic-auth credentials is logged with its password masked."""
    url = failing_url.replace("http://", "http://hook-user:s3cr3t-pw@")
    dispatcher = CallbackDispatcher("token", attempts=1, backoff=0.0, timeout=5.0)
    try:
        with caplog.at_level(logging.INFO, logger="connector.emulator.callbacks"):
            dispatcher.enqueue("SM1", url, [("MessageStatus", "sent")])
            await dispatcher.drain()
    finally:
        await dispatcher.close()
    assert dispatcher.log["SM1"][0].status == 500
    assert "callback to http://hook-user:***@127.0.0.1" in caplog.text
    assert "s3cr3t-pw" not in caplog.text
