"""BlockingConnection: one connection, one event loop thread, calls from many threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal
from virtual_clock import VirtualClockLoop

import connector
from connector import BlockingConnection, Connection, HttpRequest, HttpResponse, MockTransport


ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
SMS = {"from": "+15005550006", "body": "hi"}


def recording_connection(arrivals: list[float], limit: tuple[int, float]) -> Connection:
    def answer(request: HttpRequest) -> HttpResponse:
        arrivals.append(asyncio.get_running_loop().time())
        body = {"sid": "SM" + "0" * 32, "status": "queued", "to": "+15551234567"}
        return HttpResponse(201, json.dumps(body).encode())

    return Connection(
        ACCOUNT_SID,
        "token",
        base_url="https://api.twilio.com",
        transport=MockTransport(answer),
        rate_limit=limit,
        env={},
    )


def test_calls_from_many_threads_share_one_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 threads sending through one BlockingConnection never exceed its 5-per-second limit."""
    arrivals: list[float] = []
    # The portal's loop runs on a virtual clock: the limiter's waits take no real time.
    real_start = start_blocking_portal
    monkeypatch.setattr(
        "connector._blocking.start_blocking_portal",
        lambda: real_start(
            backend_options={"loop_factory": lambda: VirtualClockLoop(threads=True)}
        ),
    )
    with (
        BlockingConnection(lambda: recording_connection(arrivals, (5, 1.0))) as conn,
        concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool,
    ):
        sends = [
            pool.submit(conn.call, "send_text_message", {**SMS, "to": f"+1555123{n:04d}"})
            for n in range(40)
        ]
        results = [future.result() for future in sends]
    assert all(str(r.status) == "queued" for r in results)
    assert len(arrivals) == 40
    for start in arrivals:
        in_window = [t for t in arrivals if start <= t < start + 1.0]
        assert len(in_window) <= 5
    # Paced by the limit, not serialised: 40 calls at no more than 5/s take at least 7
    # virtual seconds (the first 5 go at once).
    assert 7.0 <= max(arrivals) - min(arrivals) < 15.0


def test_paginate_and_run_work_from_a_thread() -> None:
    """paginate collects every item; run() awaits any coroutine with the connection."""
    pages = {
        None: {
            "messages": [{"sid": "SM1"}, {"sid": "SM2"}],
            "next_page_uri": "/2010-04-01/Accounts/"
            + ACCOUNT_SID
            + "/Messages.json?Page=1&PageToken=x",
        },
        "x": {"messages": [{"sid": "SM3"}], "next_page_uri": None},
    }

    def answer(request: HttpRequest) -> HttpResponse:
        token = "x" if "PageToken=x" in request.url else None
        return HttpResponse(200, json.dumps(pages[token]).encode())

    def opener() -> Connection:
        return Connection(
            ACCOUNT_SID,
            "token",
            base_url="https://api.twilio.com",
            transport=MockTransport(answer),
            env={},
        )

    async def first_page(conn: Connection) -> Any:
        return await conn.call("list_messages_v2", {})

    with BlockingConnection(opener) as conn:
        items = conn.paginate("list_messages_v2", {})
        page = conn.run(first_page)
    assert [m.sid for m in items] == ["SM1", "SM2", "SM3"]
    assert len(page.value) == 2


def test_a_closed_blocking_connection_says_so() -> None:
    """Calling before opening (or after closing) is a clear error, not a hang."""
    conn = BlockingConnection(
        lambda: connector.Connection(env={}, account_sid=ACCOUNT_SID, auth_token="t")
    )
    with pytest.raises(RuntimeError, match="open the BlockingConnection first"):
        conn.call("get_message", {"MessageId": "SM" + "0" * 32})
