"""The emulator answers an incoming-message webhook's TwiML as Twilio does."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import attrs
import pytest
from aiohttp import web

from connector.emulator import EmulatorServer
from connector.emulator._twiml import MAX_TWIML_BYTES, TwimlMessage, parse_twiml
from connector.testing import EmulatorFactory


NUMBER = "+15005550006"
OTHER_OWNED = "+15005550010"
PERSON = "+15551230001"
FRIEND = "+15551230002"


@attrs.define
class App:
    """A webhook receiver answering with a set body."""

    url: str = ""
    answer: str = "<Response/>"
    content_type: str = "text/xml"
    posts: int = 0


@pytest.fixture
async def app() -> AsyncIterator[App]:
    state = App()

    async def webhook(request: web.Request) -> web.Response:
        await request.post()
        state.posts += 1
        return web.Response(text=state.answer, content_type=state.content_type)

    application = web.Application()
    application.router.add_post("/sms", webhook)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}/sms"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def emu(twilio_emulator_factory: EmulatorFactory, app: App) -> EmulatorServer:
    return await twilio_emulator_factory(
        incoming={NUMBER: app.url}, numbers=(OTHER_OWNED,), delivery_delay=0.0
    )


async def text_in(emu: EmulatorServer, body: str, sender: str = PERSON) -> None:
    await emu.inbound(to=NUMBER, from_=sender, body=body)
    await emu.drain_callbacks()


def replies(emu: EmulatorServer) -> list[dict[str, object]]:
    return emu.messages(direction="outbound-reply")


async def test_a_short_message_reply_becomes_an_outbound_message(
    emu: EmulatorServer, app: App
) -> None:
    """<Message>text</Message> sends the text back to the sender, from the number texted."""
    app.answer = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks &amp; bye</Message></Response>'
    await text_in(emu, "hello")
    (reply,) = replies(emu)
    assert (reply["to"], reply["from"], reply["body"]) == (PERSON, NUMBER, "Thanks & bye")
    assert reply["sid"] in {m["sid"] for m in emu.messages(to=PERSON)}
    emu.advance(10)
    assert emu.messages(sid=reply["sid"])[0]["status"] == "delivered"


async def test_the_full_form_with_to_from_body_and_media(emu: EmulatorServer, app: App) -> None:
    """to and from attributes, <Body> and <Media> are honoured; a second <Message> sends a second message."""
    app.answer = (
        f'<Response><Message to="{FRIEND}" from="{OTHER_OWNED}">'
        "<Body>Your friend wrote</Body><Media>https://cdn.example/a.png</Media>"
        "<Media>https://cdn.example/b.jpg</Media></Message>"
        "<Message><Body>Passed on.</Body></Message></Response>"
    )
    await text_in(emu, "tell my friend")
    by_recipient = {m["to"]: m for m in replies(emu)}
    forwarded, confirmed = by_recipient[FRIEND], by_recipient[PERSON]
    assert (forwarded["from"], forwarded["body"], forwarded["num_media"]) == (
        OTHER_OWNED,
        "Your friend wrote",
        "2",
    )
    assert (confirmed["from"], confirmed["body"]) == (NUMBER, "Passed on.")


async def test_other_verbs_are_ignored_with_a_log_line(
    emu: EmulatorServer, app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """<Redirect> and voice verbs send nothing and are logged."""
    app.answer = "<Response><Redirect>https://x.example/next</Redirect><Say>hi</Say></Response>"
    with caplog.at_level(logging.INFO, logger="connector.emulator.twiml"):
        await text_in(emu, "hello")
    assert replies(emu) == []
    assert "TwiML <Redirect> is not supported by the emulator; ignored" in caplog.text
    assert "TwiML <Say>" in caplog.text


async def test_a_reply_to_an_opted_out_handset_is_refused(emu: EmulatorServer, app: App) -> None:
    """Opt-out rules apply: after STOP, a TwiML reply is refused with 21610, as an API send would be."""
    app.answer = "<Response><Message>We will miss you</Message></Response>"
    await text_in(emu, "STOP")
    assert [m["body"] for m in replies(emu)] == [
        "You have successfully been unsubscribed. You will not receive any more messages "
        "from this number. Reply START to resubscribe."
    ]
    (refused,) = emu.state.store.refused()
    assert (refused.code, refused.body) == (21610, "We will miss you")


@pytest.mark.parametrize(
    "answer",
    [
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><Response><Message>&a;</Message></Response>',
        "<Response><Message>" + "x" * MAX_TWIML_BYTES + "</Message></Response>",
        "OK",
        "<Response><Message>unclosed</Response>",
        "<html><body>Thanks</body></html>",
        "",
    ],
    ids=["doctype", "too-large", "plain-text", "malformed", "not-twiml", "empty"],
)
async def test_unsafe_or_non_twiml_answers_send_nothing(
    emu: EmulatorServer, app: App, answer: str
) -> None:
    """Entities, oversized, malformed and non-TwiML answers are ignored."""
    app.answer = answer
    await text_in(emu, "hello")
    assert app.posts == 1
    assert replies(emu) == []


def test_parse_twiml_forms() -> None:
    """Namespaced or not, short or full form, Body pieces and blank Media are handled."""
    assert parse_twiml(
        b'<Response xmlns="http://www.twilio.com/"><Message action="https://cb.example/s">'
        b"<Body>a</Body><Body>b</Body><Media> </Media></Message></Response>"
    ) == [TwimlMessage(None, None, "ab", (), "https://cb.example/s")]
    assert parse_twiml(b"<Response><Message>  hi  </Message></Response>") == [
        TwimlMessage(None, None, "hi")
    ]
    many = b"<Response>" + b"<Message>x</Message>" * 12 + b"</Response>"
    assert len(parse_twiml(many)) == 10
