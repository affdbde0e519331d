"""The aiohttp transport: real sockets on 127.0.0.1, aioresponses, and the error mapping."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import ACCOUNT_SID, AUTH_TOKEN, CompatAioresponses

from connector import (
    AiohttpTransport,
    ConnectError,
    Connection,
    HttpRequest,
    MessageMayHaveBeenSentError,
    ReadError,
    RetryPolicy,
)
from connector._transport import map_aiohttp_errors


SMS = {"from": "+15005550006", "to": "+15551234567", "body": "hello"}
MESSAGE = {"sid": "SM" + "3" * 32, "status": "queued", "to": "+15551234567"}


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[web.Request]]]:
    """A local server that answers sends once, then drops connections after reading."""
    seen: list[web.Request] = []

    async def messages(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        await request.post()
        if request.headers.get("X-Drop") or len(seen) > 1:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response(MESSAGE, status=201)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server, seen
    await test_server.close()


async def test_real_requests_reach_a_local_server(
    server: tuple[TestServer, list[web.Request]],
) -> None:
    """Form bodies, Basic auth and JSON answers travel over a real socket."""
    test_server, seen = server
    base = str(test_server.make_url("")).rstrip("/")
    async with Connection(ACCOUNT_SID, AUTH_TOKEN, base_url=base, env={}) as conn:
        message = await conn.call("send_text_message", SMS)
    assert message.sid == MESSAGE["sid"]
    assert seen[0].headers["Authorization"].startswith("Basic ")
    assert seen[0].headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_a_dropped_connection_after_a_send_is_never_retried(
    server: tuple[TestServer, list[web.Request]],
) -> None:
    """The server read the send and hung up: the message may exist, so no second request."""
    test_server, seen = server
    base = str(test_server.make_url("")).rstrip("/")
    transport = AiohttpTransport()
    conn = Connection(ACCOUNT_SID, AUTH_TOKEN, base_url=base, env={}, transport=transport)
    async with conn:
        await conn.call("send_text_message", SMS)
        with pytest.raises(MessageMayHaveBeenSentError) as caught:
            await conn.call("send_text_message", SMS)
    assert isinstance(caught.value.cause, ReadError)
    assert len(seen) == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_refused_connection_is_a_connect_error_and_retried() -> None:
    """Nobody listening: ConnectError, retried even for a send, then raised."""
    base = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(attempts=3, backoff=0)
    async with Connection(ACCOUNT_SID, AUTH_TOKEN, base_url=base, env={}, retry=policy) as conn:
        with pytest.raises(ConnectError, match="cannot connect"):
            await conn.call("send_text_message", SMS)


async def test_aioresponses_drives_the_real_transport(mocked_http: CompatAioresponses) -> None:
    """The executor over the real aiohttp transport, with answers mocked by aioresponses."""
    url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    mocked_http.post(url, status=503, payload={"code": 20503, "message": "down", "status": 503})
    mocked_http.get(url, status=200, payload={"messages": [MESSAGE], "next_page_uri": None})
    async with Connection(ACCOUNT_SID, AUTH_TOKEN, env={}) as conn:
        with pytest.raises(MessageMayHaveBeenSentError):
            await conn.call("send_text_message", SMS)
        page = await conn.call("list_messages_v2", {})
    assert [m.sid for m in page.value] == [MESSAGE["sid"]]


async def test_timeouts_from_aioresponses_are_read_errors(mocked_http: CompatAioresponses) -> None:
    """A read timeout on a GET is retried, then surfaces as ReadError."""
    url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE['sid']}.json"
    mocked_http.get(url, exception=aiohttp.SocketTimeoutError("read timed out"), repeat=True)
    policy = RetryPolicy(attempts=2, backoff=0)
    async with Connection(ACCOUNT_SID, AUTH_TOKEN, env={}, retry=policy) as conn:
        with pytest.raises(ReadError, match="timed out waiting"):
            await conn.call("get_message", {"MessageId": MESSAGE["sid"]})


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), ConnectError),
        (
            aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
                OSError(111, "Connection refused"),
            ),
            ConnectError,
        ),
        (aiohttp.SocketTimeoutError("read"), ReadError),
        (aiohttp.ServerDisconnectedError(), ReadError),
        (aiohttp.ClientPayloadError("truncated"), ReadError),
        (aiohttp.ClientOSError(104, "reset"), ReadError),
        (aiohttp.ClientResponseError(None, (), status=500), ReadError),  # type: ignore[arg-type]
        (TimeoutError(), ReadError),
    ],
)
def test_every_aiohttp_failure_maps_to_a_connector_error(
    raised: BaseException, expected: type[Exception]
) -> None:
    """aiohttp exceptions become ConnectError (never sent) or ReadError (maybe processed)."""
    with pytest.raises(expected) as caught, map_aiohttp_errors("POST", "https://api.twilio.com/x"):
        raise raised
    assert caught.value.__cause__ is raised
    assert caught.value.method == "POST"  # type: ignore[attr-defined]


def test_every_aiohttp_client_error_is_mapped() -> None:
    """Each public aiohttp.ClientError subclass is translated, none escapes."""
    classes = {
        obj
        for name in dir(aiohttp)
        if isinstance(obj := getattr(aiohttp, name), type) and issubclass(obj, aiohttp.ClientError)
    }
    assert len(classes) > 10
    for cls in classes:
        with pytest.raises((ConnectError, ReadError)), map_aiohttp_errors("GET", "http://x/"):
            raise cls.__new__(cls)


def test_request_repr_shows_method_and_url_only() -> None:
    """An HttpRequest's repr carries no headers."""
    request = HttpRequest("GET", "https://api.twilio.com/x", None, {"Authorization": "Basic abc"})
    assert "abc" not in repr(request)
    assert json.dumps({"r": repr(request)})
