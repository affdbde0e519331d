"""download_media: only Twilio's API gets credentials, the media store none; retries, limits, files."""

from __future__ import annotations

import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import ACCOUNT_SID, AUTH_TOKEN

from connector import (
    AuthenticationError,
    Connection,
    HttpRequest,
    HttpResponse,
    MediaPolicy,
    MediaTooLargeError,
    MockTransport,
    NotFoundError,
    UnsafeLinkError,
)
from connector._media import filename_for, is_twilio_api_host
from connector.models import MediaFile


MESSAGE = "MM" + "a" * 32
MEDIA = "ME" + "b" * 32
MEDIA_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE}/Media/{MEDIA}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
FAST = MediaPolicy(attempts=4, backoff=0.001)


@attrs.define
class Seen:
    """One request a test server received."""

    host: str
    method: str
    path: str
    headers: dict[str, str]


@attrs.define
class Servers:
    """Twilio's API (the connection's base URL) and a media store, on two loopback ports."""

    api: str
    store: str
    seen: list[Seen]
    not_found_first: list[int]
    store_body: list[bytes]
    store_path: list[str]


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    seen: list[Seen] = []
    not_found_first = [0]
    store_body = [PNG]
    store_path = [f"/store/{MEDIA}?signature=secret-ish"]
    runners: list[web.AppRunner] = []
    urls: list[str] = []

    def recorder(name: str) -> Callable[[web.Request], Any]:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            seen.append(Seen(name, request.method, request.path_qs, dict(request.headers)))
            response: web.StreamResponse = await handler(request)
            return response

        return record

    async def media(request: web.Request) -> web.Response:
        if not_found_first[0] > 0:
            not_found_first[0] -= 1
            return web.json_response({"code": 20404, "message": "not found"}, status=404)
        if request.headers.get("Authorization") is None:
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        raise web.HTTPFound(urls[1] + store_path[0])

    async def stored(request: web.Request) -> web.Response:
        return web.Response(
            body=store_body[0],
            content_type="image/png",
            headers={"Content-Disposition": 'inline; filename="../../cat picture.png"'},
        )

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * 500)
        await response.write_eof()
        return response

    for name, routes in (
        ("api", [web.get(MEDIA_PATH, media)]),
        ("store", [web.get(f"/store/{MEDIA}", stored), web.get("/chunked", chunked)]),
    ):
        app = web.Application(middlewares=[recorder(name)])
        app.add_routes(routes)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        urls.append(f"http://{host}:{port}")
    try:
        yield Servers(urls[0], urls[1], seen, not_found_first, store_body, store_path)
    finally:
        for runner in runners:
            await runner.cleanup()


def open_to(base_url: str, **kwargs: Any) -> Connection:
    return Connection(
        ACCOUNT_SID, AUTH_TOKEN, base_url=base_url, env={}, rate_limit=False, **kwargs
    )


# -- which URLs get credentials --------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "twilio"),
    [
        ("api.twilio.com", True),
        ("API.Twilio.com", True),
        ("api.dublin.ie1.twilio.com", True),
        ("api.sydney.au1.twilio.com", True),
        ("api.ashburn.us1.twilio.com", True),
        ("api.ie1.twilio.com", False),  # the legacy form, retired in April 2026
        ("api.mars.us1.twilio.com", False),
        ("media.twiliocdn.com", False),
        ("api.twilio.com.evil.example", False),
        ("evil.api.twilio.com", False),
        ("api-twilio.com", False),
        (None, False),
    ],
)
def test_twilio_api_hosts(host: str | None, twilio: bool) -> None:
    """api.twilio.com and api.EDGE.REGION.twilio.com are Twilio's API; nothing else is."""
    assert is_twilio_api_host(host) is twilio


async def test_a_webhook_url_on_another_host_is_refused_and_no_request_carries_a_credential(
    servers: Servers,
) -> None:
    """A MediaUrl from a webhook pointing elsewhere is refused before any request: no server sees a credential."""
    forged = f"{servers.store}{MEDIA_PATH}"  # the right path, on the wrong host
    async with open_to(servers.api) as conn:
        with pytest.raises(UnsafeLinkError, match="not on Twilio's API"):
            await conn.download_media(forged, policy=FAST)
        with pytest.raises(UnsafeLinkError):
            await conn.call("download_media", {"url": forged})
        # The real flow, for comparison: the API gets the credentials, the store none.
        media = await conn.download_media(f"{servers.api}{MEDIA_PATH}", policy=FAST)
    assert media.content == PNG
    assert [(s.host, "Authorization" in s.headers) for s in servers.seen] == [
        ("api", True),
        ("store", False),
    ]
    assert all("Cookie" not in s.headers for s in servers.seen)


@pytest.mark.parametrize(
    "url",
    [
        f"https://evil.example{MEDIA_PATH}",
        f"https://api.twilio.com.evil.example{MEDIA_PATH}",
        f"http://api.twilio.com{MEDIA_PATH}",  # credentials in clear
        f"https://api.twilio.com:8443{MEDIA_PATH}",
        f"https://user:pw@api.twilio.com{MEDIA_PATH}",
        f"https://api.twilio.com/2010-04-01/Accounts/AC{'9' * 32}/Messages/{MESSAGE}/Media/{MEDIA}",
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        f"https://api.twilio.com{MEDIA_PATH}/../../Messages.json",
        "file:///etc/passwd",
        "Media/ME123",
    ],
)
async def test_refused_urls_make_no_request(url: str) -> None:
    """Other hosts, plain HTTP to Twilio, odd ports, userinfo, other accounts and other paths are refused."""
    transport = MockTransport(lambda request: HttpResponse(500))
    async with Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=transport, env={}, rate_limit=False
    ) as conn:
        with pytest.raises(UnsafeLinkError):
            await conn.download_media(url, policy=FAST)
    assert transport.requests == []


async def test_regional_urls_and_resource_uris_are_accepted() -> None:
    """A regional host, and a Media resource's relative .json uri, fetch the content URL."""
    asked: list[HttpRequest] = []

    def answer(request: HttpRequest) -> HttpResponse:
        asked.append(request)
        return HttpResponse(200, b"hi", {"content-type": "text/plain"})

    async with Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(answer), env={}, rate_limit=False
    ) as conn:
        regional = f"https://api.dublin.ie1.twilio.com{MEDIA_PATH}"
        assert (await conn.download_media(regional)).content == b"hi"
        await conn.download_media(MEDIA_PATH + ".json")
    assert [r.url for r in asked] == [regional, f"https://api.twilio.com{MEDIA_PATH}"]
    assert all(r.headers["Authorization"].startswith("Basic ") for r in asked)


# -- redirects, retries, limits ---------------------------------------------------------


async def test_the_redirect_is_followed_without_credentials_and_type_and_name_are_kept(
    servers: Servers, tmp_path: Path
) -> None:
    """Content type and a safe file name come from the store; the file is written 0600."""
    async with open_to(servers.api) as conn:
        media = await conn.download_media(f"{servers.api}{MEDIA_PATH}", to=tmp_path)
        returned = await conn.call(
            "download_media", {"url": f"{servers.api}{MEDIA_PATH}", "path": str(tmp_path / "x.png")}
        )
        inline = await conn.call("download_media", {"media_url": f"{servers.api}{MEDIA_PATH}"})
    assert (media.content_type, media.filename, media.size) == ("image/png", "cat_picture.png", 108)
    assert media.path == tmp_path / "cat_picture.png"
    assert media.path.read_bytes() == PNG
    if sys.platform != "win32":
        assert stat.S_IMODE(media.path.stat().st_mode) == 0o600
    assert isinstance(returned, MediaFile)
    assert (returned.path, returned.size, returned.content_base64) == (
        str(tmp_path / "x.png"),
        108,
        None,
    )
    assert (tmp_path / "x.png").read_bytes() == PNG
    assert inline.path is None and inline.content_base64 is not None
    stores = [s for s in servers.seen if s.host == "store"]
    assert len(stores) == 3 and not any("Authorization" in s.headers for s in stores)


async def test_brief_404s_are_tried_again(servers: Servers) -> None:
    """A 404 while the media propagates is tried again with backoff; a lasting one is raised."""
    servers.not_found_first[0] = 2
    async with open_to(servers.api) as conn:
        media = await conn.download_media(f"{servers.api}{MEDIA_PATH}", policy=FAST)
        assert media.content == PNG
        servers.not_found_first[0] = 10
        with pytest.raises(NotFoundError):
            await conn.download_media(f"{servers.api}{MEDIA_PATH}", policy=FAST)
    api = [s for s in servers.seen if s.host == "api"]
    assert len(api) == 3 + 4


async def test_content_over_the_limit_is_refused(servers: Servers) -> None:
    """Over max_bytes raises MediaTooLargeError, whether the size was declared or not."""
    servers.store_body[0] = b"x" * 5000
    async with open_to(servers.api) as conn:
        with pytest.raises(MediaTooLargeError) as declared:
            await conn.download_media(f"{servers.api}{MEDIA_PATH}", max_bytes=1000)
        assert declared.value.size == 5000
        assert (await conn.download_media(f"{servers.api}{MEDIA_PATH}")).size == 5000
        servers.store_path[0] = "/chunked"  # no Content-Length: read up to the limit only
        with pytest.raises(MediaTooLargeError) as streamed:
            await conn.download_media(f"{servers.api}{MEDIA_PATH}", max_bytes=1000)
    assert streamed.value.size is None


async def test_a_redirect_from_https_to_http_is_not_followed() -> None:
    """A downgrade to plain HTTP on the way to the store is refused."""

    def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(307, b"", {"location": "http://store.example/m"})

    transport = MockTransport(answer)
    async with Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=transport, env={}, rate_limit=False
    ) as conn:
        with pytest.raises(UnsafeLinkError, match="redirects to a http: URL; not followed"):
            await conn.download_media(f"https://api.twilio.com{MEDIA_PATH}", policy=FAST)
    assert [r.url for r in transport.requests] == [f"https://api.twilio.com{MEDIA_PATH}"]


async def test_refused_credentials_say_that_regions_have_their_own() -> None:
    """A 401 for a regional URL says that media of another region needs that region's credentials."""

    def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(401, b'{"code": 20003, "message": "Authenticate"}')

    async with Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(answer), env={}, rate_limit=False
    ) as conn:
        with pytest.raises(AuthenticationError, match="that region's credentials"):
            await conn.download_media(f"https://api.sydney.au1.twilio.com{MEDIA_PATH}")


@pytest.mark.parametrize(
    ("disposition", "url", "content_type", "name"),
    [
        ('attachment; filename="a b.jpg"', "x", "image/jpeg", "a_b.jpg"),
        ("attachment; filename*=UTF-8''%C3%A9t%C3%A9.png", "x", "image/png", "t_.png"),
        ('inline; filename="/etc/passwd"', "x", "text/plain", "passwd"),
        ('inline; filename=".."', f"https://h{MEDIA_PATH}", "image/jpeg", f"{MEDIA}.jpg"),
        (None, f"https://h{MEDIA_PATH}", "image/gif", f"{MEDIA}.gif"),
        (None, f"https://h{MEDIA_PATH}", "application/x-unknown", MEDIA),
    ],
)
def test_file_names_are_plain_and_safe(
    disposition: str | None, url: str, content_type: str, name: str
) -> None:
    """The store's name without its directory or odd characters, else the SID with an extension."""
    assert filename_for(disposition, url, content_type) == name
