"""The emulator serves media content as Twilio does: an authenticated media URL redirecting to a store."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from connector import Connection
from connector.emulator import EmulatorServer
from connector.receiving import MESSAGES_PATH, Listener
from connector.testing import EmulatorFactory
from connector.workflow import Journal, load_workflow


NUMBER = "+15005550006"
PERSON = "+15551230001"
PHOTO = b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10 + b"\xff\xd9"


def connect(emu: EmulatorServer) -> Connection:
    return Connection(emu.account_sid, emu.auth_token, base_url=emu.base_url, env={})


async def post_mms(emu: EmulatorServer, **fields: str) -> dict[str, object]:
    """POST /emulator/inbound as multipart, with one photo as a Media part."""
    form = aiohttp.FormData()
    for key, value in {"To": NUMBER, "From": PERSON, "Body": "look", **fields}.items():
        form.add_field(key, value)
    form.add_field("Media", PHOTO, filename="holiday.jpg", content_type="image/jpeg")
    async with (
        aiohttp.ClientSession() as session,
        session.post(emu.base_url + "/emulator/inbound", data=form) as response,
    ):
        assert response.status == 201, await response.text()
        message: dict[str, object] = await response.json()
        return message


def content_url(emu: EmulatorServer, message: str, media: str) -> str:
    return f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages/{message}/Media/{media}"


async def test_posted_bytes_come_back_through_the_redirect(twilio_emulator: EmulatorServer) -> None:
    """An MMS posted with bytes: the media URL needs credentials and redirects (302) to a store that does not."""
    message = await post_mms(twilio_emulator)
    assert (message["num_media"], str(message["sid"])[:2]) == ("1", "MM")
    (media,) = twilio_emulator.state.store.get(str(message["sid"])).media  # type: ignore[union-attr]
    url = content_url(twilio_emulator, str(message["sid"]), media.sid)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, allow_redirects=False) as anonymous:
            assert anonymous.status == 401
        raw = f"{twilio_emulator.account_sid}:{twilio_emulator.auth_token}".encode()
        auth = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        async with session.get(url, headers=auth, allow_redirects=False) as redirect:
            assert redirect.status == 302
            store = redirect.headers["Location"]
            assert (await redirect.json())["redirect_to"] == store
        assert store.startswith(f"{twilio_emulator.base_url}/emulator/media/")
        async with session.get(store) as served:
            assert served.status == 200
            assert served.headers["Content-Type"] == "image/jpeg"
            assert 'filename="holiday.jpg"' in served.headers["Content-Disposition"]
            assert await served.read() == PHOTO
    async with connect(twilio_emulator) as conn:
        got = await conn.download_media(url)
    assert (got.content, got.content_type, got.filename) == (PHOTO, "image/jpeg", "holiday.jpg")


@pytest.fixture
async def loopback_media() -> AsyncIterator[str]:
    """A web server on 127.0.0.1 serving one PNG, as a sender's media host."""
    app = web.Application()

    async def png(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG from loopback", content_type="image/png")

    app.router.add_get("/pic.png", png)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/pic.png"
    finally:
        await runner.cleanup()


async def test_loopback_urls_are_fetched_and_others_get_a_placeholder(
    twilio_emulator: EmulatorServer, loopback_media: str
) -> None:
    """A media URL on a loopback host is served as fetched; any other as a small file of its type."""
    message = await twilio_emulator.inbound(
        to=NUMBER,
        from_=PERSON,
        media_urls=(loopback_media, "https://cdn.example/cat.jpg", "https://cdn.example/a.pdf"),
    )
    media = twilio_emulator.state.store.get(str(message["sid"])).media  # type: ignore[union-attr]
    async with connect(twilio_emulator) as conn:
        fetched, jpeg, pdf = [
            await conn.download_media(content_url(twilio_emulator, str(message["sid"]), m.sid))
            for m in media
        ]
    assert (fetched.content, fetched.content_type) == (b"\x89PNG from loopback", "image/png")
    assert jpeg.content_type == "image/jpeg"
    assert jpeg.content.startswith(b"\xff\xd8") and jpeg.content.endswith(b"\xff\xd9")
    assert jpeg.filename == f"{media[1].sid}.jpg"
    assert pdf.content_type == "application/pdf" and 0 < pdf.size < 100


async def test_outbound_media_is_served_too(twilio_emulator: EmulatorServer) -> None:
    """A sent MMS's media has content at its media URL (a placeholder for a remote URL)."""
    async with connect(twilio_emulator) as conn:
        sent = await conn.call(
            "send_message",
            {"from": NUMBER, "to": PERSON, "media_url": ["https://cdn.example/map.gif"]},
        )
        (item,) = [m async for m in conn.paginate("list_message_media", {"MessageId": sent.sid})]
        got = await conn.download_media(item.uri)
    assert got.content_type == "image/gif" and got.content.startswith(b"GIF89a")


INBOUND_MMS = """
name: save-photos
on:
  twilio/message_received:
    to: "+15005550006"
steps:
  - id: save
    uses: twilio/download_media
    for_each: ${{ trigger.media }}
    with:
      url: ${{ item.url }}
      path: "photos/"
outputs:
  files: ${{ steps.save.outputs[*].filename }}
"""


async def test_a_workflow_saves_the_photos_of_an_incoming_mms(
    tmp_path: Path, twilio_emulator_factory: EmulatorFactory
) -> None:
    """An MMS reaches the listener; its workflow downloads each media file (next to the workflow file)."""
    token = "media-auth-token-0123456789abcdef"
    workflow = tmp_path / "photos.yaml"
    workflow.write_text(INBOUND_MMS, encoding="utf-8")
    with Journal(tmp_path / "runs.sqlite3") as journal:
        listener = Listener([load_workflow(workflow)], journal, auth_token=token)
        await listener.start()
        try:
            emu = await twilio_emulator_factory(
                auth_token=token, incoming={NUMBER: listener.public_url + MESSAGES_PATH}
            )
            async with connect(emu) as conn:
                await listener.begin(conn, poll=False)
                await post_mms(emu)
                await emu.drain_callbacks()
                await listener.drain()
        finally:
            await listener.stop()
    (run,) = listener.results
    assert run.ok, run
    assert run.outputs == {"files": ["holiday.jpg"]}
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == PHOTO


async def test_the_inbound_command_posts_files(
    twilio_emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`twilio-connector inbound --media FILE` sends the file's bytes with the message."""
    import asyncio

    from connector.cli import main

    photo = tmp_path / "beach.png"
    photo.write_bytes(b"\x89PNG beach")
    args = ["inbound", "--emulator-url", twilio_emulator.base_url, "--to", NUMBER]
    args += ["--from", PERSON, "--body", "see", "--media", str(photo)]
    assert await asyncio.to_thread(main, args) == 0
    message = json.loads(capsys.readouterr().out)
    (media,) = twilio_emulator.state.store.get(message["sid"]).media  # type: ignore[union-attr]
    async with connect(twilio_emulator) as conn:
        got = await conn.download_media(content_url(twilio_emulator, message["sid"], media.sid))
    assert (got.content, got.content_type, got.filename) == (
        b"\x89PNG beach",
        "image/png",
        "beach.png",
    )
