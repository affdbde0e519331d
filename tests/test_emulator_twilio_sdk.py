"""Twilio's own Python SDK, unmodified, against the emulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from connector.emulator import EmulatorServer


@pytest.fixture
def sdk(twilio_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A sync twilio Client whose 2010 API points at the emulator."""
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    client = Client(twilio_emulator.account_sid, twilio_emulator.auth_token)
    client.api.base_url = twilio_emulator.base_url
    return client


async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking SDK call off the event loop that serves the emulator."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_create_fetch_update_delete(sdk: Client) -> None:
    """create, fetch, redact (update) and delete work through the SDK."""
    message = await run(
        sdk.messages.create,
        to="+15551230001",
        from_="+15005550006",
        body="héllo",
        media_url=["https://example.com/a.jpg", "https://example.com/b.jpg"],
        status_callback=None,
    )
    assert message.status == "queued" and message.num_media == "2"
    assert message.date_created.tzinfo is not None
    fetched = await run(sdk.messages(message.sid).fetch)
    assert fetched.status == "delivered" and fetched.body == "héllo"
    assert fetched.num_segments == "1" and fetched.price == "-0.00790"
    media = await run(sdk.messages(message.sid).media.list)
    assert len(media) == 2 and {m.content_type for m in media} == {"image/jpeg"}
    redacted = await run(sdk.messages(message.sid).update, body="")
    assert redacted.body == ""
    assert await run(sdk.messages(message.sid).delete) is True
    with pytest.raises(TwilioRestException) as info:
        await run(sdk.messages(message.sid).fetch)
    assert (info.value.status, info.value.code) == (404, 20404)


async def test_list_follows_pages(sdk: Client) -> None:
    """list() and stream() follow next_page_uri across pages, newest first."""
    sids = [
        (await run(sdk.messages.create, to="+15551230001", from_="+15005550006", body=str(i))).sid
        for i in range(7)
    ]
    listed = await run(sdk.messages.list, page_size=3)
    assert [m.sid for m in listed] == sids[::-1]
    limited = await run(sdk.messages.list, limit=4, page_size=2)
    assert [m.sid for m in limited] == sids[::-1][:4]
    page = await run(sdk.messages.page, page_size=3)
    following = await run(page.next_page)
    assert [m.sid for m in following] == sids[::-1][3:6]
    assert [m.sid for m in await run(following.previous_page)] == sids[::-1][:3]
    filtered = await run(sdk.messages.list, to="+15551239999")
    assert filtered == []


async def test_errors_raise_twilio_rest_exception(sdk: Client) -> None:
    """Validation failures surface as TwilioRestException with Twilio's status and code."""
    cases = [
        ({"to": "+15005550001", "from_": "+15005550006", "body": "x"}, 21211),
        ({"to": "+15551230001", "from_": "+15005550001", "body": "x"}, 21212),
        ({"to": "+15551230001", "from_": "+15005550007", "body": "x"}, 21606),
        ({"to": "+15551230001", "from_": "+15005550006"}, 21602),
    ]
    for kwargs, code in cases:
        with pytest.raises(TwilioRestException) as info:
            await run(sdk.messages.create, **kwargs)
        assert (info.value.status, info.value.code) == (400, code)
        assert info.value.msg.startswith("Unable to create record: ")


async def test_scheduled_cancel(sdk: Client, twilio_emulator: EmulatorServer) -> None:
    """A scheduled send made with the SDK can be canceled with update(status='canceled')."""
    from datetime import UTC, datetime

    send_at = datetime.fromtimestamp(twilio_emulator.config.clock.now() + 3600, UTC)
    message = await run(
        sdk.messages.create,
        to="+15551230001",
        messaging_service_sid="MG" + "a" * 32,
        body="later",
        schedule_type="fixed",
        send_at=send_at,
    )
    assert message.status == "scheduled"
    canceled = await run(sdk.messages(message.sid).update, status="canceled")
    assert canceled.status == "canceled"
    with pytest.raises(TwilioRestException) as info:
        await run(sdk.messages(message.sid).update, status="canceled")
    assert info.value.code == 30409


async def test_bad_credentials(sdk: Client, twilio_emulator: EmulatorServer) -> None:
    """Wrong credentials raise 401/20003; a failing list raises TwilioException."""
    client = Client(twilio_emulator.account_sid, "wrong")
    client.api.base_url = twilio_emulator.base_url
    with pytest.raises(TwilioRestException) as info:
        await run(client.messages.create, to="+15551230001", from_="+15005550006", body="x")
    assert (info.value.status, info.value.code) == (401, 20003)
    with pytest.raises(TwilioException):
        await run(client.messages.list)


async def test_api_key_client(
    twilio_emulator_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client('SK...', secret, account_sid='AC...') authenticates with the API key."""
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    emu = await twilio_emulator_factory(api_key="SK" + "1" * 32, api_secret="secret")
    client = Client("SK" + "1" * 32, "secret", account_sid=emu.account_sid)
    client.api.base_url = emu.base_url
    message = await run(client.messages.create, to="+15551230001", from_="+15005550006", body="k")
    assert message.account_sid == emu.account_sid
