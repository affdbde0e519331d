"""The emulator refuses what could hurt it: its own address as a webhook, absurd values, slow searches."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import Receiver

from connector.emulator import EmulatorServer
from connector.emulator._targets import OwnSockets


OK_FROM = "+15005550006"


@pytest.fixture(params=[0o022, 0o002, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under each umask, restoring the previous one after."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
async def test_database_files_are_private_whatever_the_umask(
    umask: int, tmp_path: Path, twilio_emulator_factory: Any
) -> None:
    """The emulator's database and its -wal and -shm files are created with mode 0600."""
    db = tmp_path / "emulator.db"
    emulator: EmulatorServer = await twilio_emulator_factory(db_path=str(db))
    await emulator.inbound(to="+15005550006", from_="+15551230001", body="secret")
    files = [db, db.with_name("emulator.db-wal"), db.with_name("emulator.db-shm")]
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {f.name: 0o600 for f in files}


async def send(emu: EmulatorServer, **params: Any) -> tuple[int, dict[str, Any]]:
    """POST Messages.json with defaults and return (status, json)."""
    form = {"To": "+15551230001", "From": OK_FROM, "Body": "hi", **params}
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
    async with (
        aiohttp.ClientSession(headers={"Authorization": auth}) as session,
        session.post(url, data=form) as response,
    ):
        return response.status, await response.json()


async def admin(emu: EmulatorServer, path: str, **params: Any) -> tuple[int, Any]:
    """POST an admin form (with the emulator's own Host) and return (status, body)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(emu.base_url + path, data=params) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else text


def own_urls(emu: EmulatorServer) -> list[str]:
    """Spellings of the emulator's own reset endpoint."""
    port = emu.base_url.rpartition(":")[2]
    return [
        f"http://127.0.0.1:{port}/emulator/reset",
        f"http://localhost:{port}/emulator/reset",
        f"http://0.0.0.0:{port}/emulator/reset",
        f"http://[::ffff:127.0.0.1]:{port}/emulator/reset",
        f"http://user@127.0.0.1:{port}/emulator/reset",
    ]


async def test_a_status_callback_to_the_emulator_itself_is_refused(
    twilio_emulator: EmulatorServer,
) -> None:
    """StatusCallback naming the emulator's own socket is 400 / 21609 and wipes nothing."""
    status, kept = await send(twilio_emulator)
    assert status == 201
    for url in own_urls(twilio_emulator):
        status, body = await send(twilio_emulator, StatusCallback=url)
        assert (status, body["code"]) == (400, 21609), url
        assert "own address" in body["message"]
    await twilio_emulator.drain_callbacks()
    assert [m["sid"] for m in twilio_emulator.messages()] == [kept["sid"]]


async def test_callbacks_to_other_loopback_ports_still_go_out(
    twilio_emulator: EmulatorServer, receiver: Receiver
) -> None:
    """A listener on another loopback port receives callbacks as before."""
    status, _ = await send(twilio_emulator, StatusCallback=receiver.url + "/status")
    assert status == 201
    await twilio_emulator.drain_callbacks()
    assert [params["MessageStatus"] for _, params, _ in receiver.requests] == [
        "sending",
        "sent",
        "delivered",
    ]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "http://", "own"])
async def test_inbound_url_must_be_http_and_not_the_emulator(
    twilio_emulator: EmulatorServer, url: str
) -> None:
    """/emulator/inbound refuses a Url that is not http(s) or names the emulator: 400 / 21402."""
    if url == "own":
        url = own_urls(twilio_emulator)[0]
    status, body = await admin(
        twilio_emulator, "/emulator/inbound", To=OK_FROM, From="+15551230001", Body="x", Url=url
    )
    assert (status, body["code"]) == (400, 21402)
    assert twilio_emulator.messages() == []


async def test_redirects_are_not_followed(twilio_emulator: EmulatorServer) -> None:
    """A receiver that redirects to the emulator's reset endpoint does not get it called."""
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect(own_urls(twilio_emulator)[0])

    app = web.Application()
    app.router.add_post("/cb", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        status, _ = await send(twilio_emulator, StatusCallback=f"http://{host}:{port}/cb")
        assert status == 201
        await twilio_emulator.drain_callbacks()
    finally:
        await runner.cleanup()
    assert hits == ["/cb"] * 3
    assert len(twilio_emulator.messages()) == 1


async def test_a_configured_webhook_to_the_emulator_is_never_delivered(
    twilio_emulator_factory: Any,
) -> None:
    """An --incoming URL that turns out to be the emulator itself is refused at delivery."""
    emu: EmulatorServer = await twilio_emulator_factory()
    await emu.inbound(to=OK_FROM, from_="+15551230001", body="first")
    emu.state.config.incoming[OK_FROM] = own_urls(emu)[1]
    await emu.inbound(to=OK_FROM, from_="+15551230002", body="second")
    await emu.drain_callbacks()
    assert len(emu.messages(direction="inbound")) == 2
    attempts = [a for log in emu.state.callbacks.log.values() for a in log]
    assert [(a.error, a.delivered) for a in attempts] == [("refused", False)]
    assert emu.stats()["callbacks"]["failed"] == 1


async def test_dns_answers_naming_the_emulator_are_filtered() -> None:
    """The delivery resolver drops the emulator's own address from DNS answers."""
    own = OwnSockets()
    own.add("0.0.0.0", 8999)
    assert own.is_own("127.0.0.1", 8999) and own.is_own("::ffff:127.0.0.1", 8999)
    assert not own.is_own("127.0.0.1", 9000) and not own.is_own("192.0.2.1", 8999)
    resolver = own.resolver()
    try:
        with pytest.raises(OSError, match="own address"):
            await resolver.resolve("localhost", 8999)
        assert await resolver.resolve("localhost", 9000)
    finally:
        await resolver.close()


async def test_pending_callbacks_survive_a_restart(
    tmp_path: Path, twilio_emulator_factory: Any
) -> None:
    """With a database, callbacks not yet delivered when the emulator stops go out after a restart."""
    answering = asyncio.Event()
    release = asyncio.Event()
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        if not answering.is_set():
            await release.wait()  # the first emulator stops while this hangs
            return web.Response(status=500)
        got.append(str(form["MessageStatus"]))
        return web.Response()

    app = web.Application()
    app.router.add_post("/status", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    db = str(tmp_path / "emulator.db")
    try:
        first: EmulatorServer = await twilio_emulator_factory(db_path=db)
        status, _ = await send(first, StatusCallback=f"http://{host}:{port}/status")
        assert status == 201
        assert first.stats()["callbacks"]["pending"] == 3
        await first.stop()
        answering.set()
        second: EmulatorServer = await twilio_emulator_factory(db_path=db)
        await second.drain_callbacks()
        assert got == ["sending", "sent", "delivered"]
        assert second.stats()["callbacks"]["pending"] == 0
        await second.stop()
        third: EmulatorServer = await twilio_emulator_factory(db_path=db)
        await third.drain_callbacks()
        assert got == ["sending", "sent", "delivered"]  # delivered ones are not sent again
    finally:
        release.set()
        await runner.cleanup()


async def get(emu: EmulatorServer, path: str, **headers: str) -> tuple[int, Any]:
    """GET an admin or inbox path and return (status, JSON or text)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(emu.base_url + path, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else text


async def test_a_catastrophic_pattern_does_not_stall_the_emulator(
    twilio_emulator: EmulatorServer,
) -> None:
    """body_matches=^(a+)+$ over a 30-character body answers at once (RE2: linear time)."""
    await twilio_emulator.inbound(to=OK_FROM, from_="+15551230001", body="a" * 30 + "b")
    await twilio_emulator.inbound(to=OK_FROM, from_="+15551230001", body="aaaa")
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await get(twilio_emulator, "/emulator/messages?body_matches=%5E(a%2B)%2B%24")
    assert loop.time() - started < 1.0
    assert status == 200 and [m["body"] for m in body["messages"]] == ["aaaa"]
    status, page = await get(twilio_emulator, "/?body_matches=%5E(a%2B)%2B%24")
    assert status == 200 and "aaaa" in page


@pytest.mark.parametrize(("pattern", "reason"), [(r"(a)\1", "\\1"), ("(?=a)", "(?=")])
async def test_backtracking_syntax_is_refused_with_the_reason(
    twilio_emulator: EmulatorServer, pattern: str, reason: str
) -> None:
    """Backreferences and lookaround, which RE2 lacks, are a 400 that says so."""
    query = urllib.parse.urlencode({"body_matches": pattern})
    status, body = await get(twilio_emulator, f"/emulator/messages?{query}")
    assert status == 400 and reason in body["message"] and "RE2" in body["message"]


@pytest.mark.parametrize("path", ["/emulator/messages", "/emulator/stats", "/"])
async def test_admin_gets_from_other_sites_are_refused(
    twilio_emulator: EmulatorServer, path: str
) -> None:
    """A GET with a foreign Origin, or a cross-site subresource without one, is 403."""
    status, _ = await get(twilio_emulator, path, Origin="https://evil.example")
    assert status == 403
    status, _ = await get(twilio_emulator, path, **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert (await get(twilio_emulator, path, Origin=twilio_emulator.base_url))[0] == 200
    same = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert (await get(twilio_emulator, path, **same))[0] == 200
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert (await get(twilio_emulator, path, **link))[0] == 200


@pytest.mark.parametrize("seconds", ["nan", "inf", "1e308", "-1", "x"])
async def test_absurd_advances_are_refused_and_the_emulator_keeps_working(
    twilio_emulator: EmulatorServer, seconds: str
) -> None:
    """POST /emulator/advance with NaN, infinity, 1e308, a negative or no number is 400."""
    status, body = await admin(twilio_emulator, f"/emulator/advance?seconds={seconds}")
    assert (status, body["code"]) == (400, 20001)
    assert "seconds must be a number" in body["message"]
    assert (await send(twilio_emulator))[0] == 201
    assert (await get(twilio_emulator, "/emulator/messages"))[0] == 200
    assert (await get(twilio_emulator, "/"))[0] == 200
    status, body = await admin(twilio_emulator, "/emulator/advance?seconds=60")
    assert status == 200


async def test_a_huge_page_number_is_refused(twilio_emulator: EmulatorServer) -> None:
    """Page=99999999999999999999 on the Messages and Media lists is 400, not 500."""
    _, sent = await send(twilio_emulator, MediaUrl="https://x.io/a.png")
    auth = aiohttp.encode_basic_auth(twilio_emulator.account_sid, twilio_emulator.auth_token)
    base = f"{twilio_emulator.base_url}/2010-04-01/Accounts/{twilio_emulator.account_sid}"
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        for path in ("/Messages.json", f"/Messages/{sent['sid']}/Media.json"):
            async with session.get(base + path + "?Page=99999999999999999999") as response:
                body = await response.json()
            assert (response.status, body["code"]) == (400, 20001), path
            assert "largest page" in body["message"]
        async with session.get(base + "/Messages.json?Page=2147483647") as response:
            assert response.status == 200


@pytest.mark.parametrize("limit", ["-1", "0", "x"])
async def test_admin_limit_must_be_positive(twilio_emulator: EmulatorServer, limit: str) -> None:
    """GET /emulator/messages?limit=-1 is 400 with the reason."""
    status, body = await get(twilio_emulator, f"/emulator/messages?limit={limit}")
    assert status == 400 and "limit" in body["message"]


@pytest.mark.parametrize(
    ("to", "sender", "code"),
    [
        ("abc", "+15551230001", 21211),
        (OK_FROM, "not a number!", 21212),
        ("+1500555000", "+15551230001", 21211),
    ],
)
async def test_inbound_numbers_are_checked(
    twilio_emulator: EmulatorServer, to: str, sender: str, code: int
) -> None:
    """/emulator/inbound refuses an invalid To (21211) or From (21212)."""
    status, body = await admin(twilio_emulator, "/emulator/inbound", To=to, From=sender, Body="x")
    assert (status, body["code"]) == (400, code)
    assert twilio_emulator.messages() == []


@pytest.mark.parametrize("to", ["+1555123456", "+155512345678", "+10551234567", "+11551234567"])
async def test_us_numbers_of_the_wrong_shape_are_21211(
    twilio_emulator: EmulatorServer, to: str
) -> None:
    """+1 numbers need 10 digits and an area code starting 2-9, as Twilio checks."""
    status, body = await send(twilio_emulator, To=to)
    assert (status, body["code"]) == (400, 21211)
    assert (await send(twilio_emulator, To="whatsapp:" + to))[1]["code"] == 21211
    assert (await send(twilio_emulator, To="+442071234567"))[0] == 201


async def test_seeded_dates_must_be_printable(twilio_emulator: EmulatorServer) -> None:
    """A seeded message with a NaN date is refused instead of breaking every list."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            twilio_emulator.base_url + "/emulator/messages",
            json={"messages": [{"to": OK_FROM, "from": "+15551230001", "date_created": "nan"}]},
        ) as response,
    ):
        assert response.status == 400
    assert (await get(twilio_emulator, "/emulator/messages"))[0] == 200
