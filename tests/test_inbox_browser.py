"""The inbox in real headless Chromium: live threads, replies, switches, phone and desktop."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect

from connector import Connection
from connector.emulator import EmulatorServer, ManualClock
from connector.errors import TwilioAPIError


# Each test launches Chromium.
pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# INBOX_SCREENSHOTS=docs/images regenerates the screenshots in the docs.
ARTIFACTS = Path(os.environ.get("INBOX_SCREENSHOTS") or Path(__file__).parent / "artifacts")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
OURS = "+15005550006"
HANDSET = "+15551230001"
WAIT = 10_000  # ms: Playwright's auto-waiting limit for each expectation


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT)
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append({k: str(v) for k, v in (await request.post()).items()})
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/sms", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/sms", received
    await runner.cleanup()


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def send(emu: EmulatorServer, body: str, to: str = HANDSET) -> Any:
    async with Connection(
        emu.account_sid, emu.auth_token, base_url=emu.base_url, rate_limit=False, env={}
    ) as conn:
        return await conn.call("send_text_message", {"from": OURS, "to": to, "body": body})


async def test_thread_appears_live_and_reply_reaches_webhook(
    twilio_emulator_factory: Any, page: Page, webhook: tuple[str, list[dict[str, str]]]
) -> None:
    """A send shows up live; a reply typed in the page reaches the webhook, signed."""
    url, received = webhook
    emu = await twilio_emulator_factory(incoming={OURS: url})
    await page.goto(emu.base_url + "/")
    await expect(page.locator("body")).to_have_attribute("data-live", "connected", timeout=WAIT)

    await send(emu, "Your verification code is 482913")
    thread = page.locator(f'li.thread[data-thread="{OURS}|{HANDSET}"]')
    await expect(thread).to_contain_text("482913", timeout=WAIT)
    await expect(thread.locator(".badge")).to_have_text("delivered", timeout=WAIT)

    await thread.locator("a").click()
    await expect(page.locator("body")).to_have_attribute("data-live", "connected", timeout=WAIT)
    await send(emu, "Héllo ✓ — reply YES to confirm")
    await expect(page.locator("#bubbles .bubble.out")).to_have_count(2, timeout=WAIT)
    await page.locator("#reply-form textarea").fill("YES please")
    await page.locator("#reply-form button[type=submit]").click()
    await expect(page.locator("#bubbles .bubble.in")).to_contain_text("YES please", timeout=WAIT)
    await emu.drain_callbacks()
    assert received[-1]["Body"] == "YES please"
    assert (received[-1]["From"], received[-1]["To"]) == (HANDSET, OURS)
    await shot(page, "inbox-thread")

    await page.locator("#bubbles .bubble.out").nth(1).locator(".meta a").click()
    await expect(page.locator("#encoding")).to_contain_text("UCS-2", timeout=WAIT)
    await expect(page.locator("#timeline li")).to_have_count(4, timeout=WAIT)
    await shot(page, "inbox-detail")


async def test_failure_switch_makes_next_send_undelivered(
    twilio_emulator: EmulatorServer, page: Page
) -> None:
    """A switch flipped in the page fails the next send; a send after STOP shows as refused."""
    emu = twilio_emulator
    await send(emu, "first")
    await page.goto(f"{emu.base_url}/?{urlencode({'thread': f'{OURS}|{HANDSET}'})}")
    await expect(page.locator("body")).to_have_attribute("data-live", "connected", timeout=WAIT)
    await page.locator("#fault-form select[name=code]").select_option("30003")
    await page.locator("#fault-form button[value=set]").click()
    await expect(page.locator("#fault-state")).to_contain_text("30003", timeout=WAIT)

    await send(emu, "second")
    last = page.locator("#bubbles .bubble.out").last
    await expect(last).to_contain_text("second", timeout=WAIT)
    await expect(last.locator(".badge")).to_have_text("undelivered", timeout=WAIT)
    await expect(last.locator(".error")).to_contain_text("30003", timeout=WAIT)
    await expect(page.locator("#fault-state")).to_have_count(0, timeout=WAIT)
    assert emu.messages(body="second")[0]["error_code"] == 30003
    await shot(page, "inbox-failure-switch")

    await page.locator("#switches button[value=STOP]").click()
    await expect(page.locator("#opt-out-state")).to_be_visible(timeout=WAIT)
    with pytest.raises(TwilioAPIError) as refused:
        await send(emu, "after stop")
    assert refused.value.code == 21610
    await expect(page.locator("#bubbles .bubble.refused")).to_contain_text("after stop")
    await expect(page.locator("#bubbles .bubble.refused .error")).to_contain_text("21610")


def png(width: int, height: int) -> bytes:
    """A small gradient PNG, so the thumbnails show a real image."""
    rows = b"".join(
        b"\0"
        + b"".join(
            bytes((40 + x * 180 // width, 90 + y * 120 // height, 200)) for x in range(width)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
async def media() -> AsyncIterator[str]:
    """A loopback server with an image and a PDF for MMS; yields its base URL."""
    files = {
        "/media/table.png": (png(240, 180), "image/png"),
        "/media/menu.pdf": (b"%PDF-1.4\n", "application/pdf"),
    }

    async def handle(request: web.Request) -> web.Response:
        body, content_type = files[request.path]
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    for path in files:
        app.router.add_get(path, handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/media"
    await runner.cleanup()


async def new_page(browser: Browser, viewport: dict[str, int]) -> Page:
    phone = viewport["width"] < 720
    context = await browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    context.set_default_timeout(WAIT)
    return await context.new_page()


async def api(emu: EmulatorServer, **form: Any) -> tuple[int, dict[str, Any]]:
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
    async with (
        aiohttp.ClientSession(headers={"Authorization": auth}) as session,
        session.post(
            url,
            data=[(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])],
        ) as response,
    ):
        return response.status, await response.json()


async def restaurant(emu: EmulatorServer, media: str) -> None:
    """A booking conversation: texts, an MMS, a reply, STOP, then a send refused with 21610."""
    for index, (number, text) in enumerate(
        [("+15551230007", "Your code is 381902"), ("+15551230004", "Your table for 2 is booked for Sat 20:00."),
         ("+15551230003", "Thanks for dining with us! How was it?")]
    ):  # fmt: skip
        await api(emu, To=number, From=OURS, Body=text)
        emu.advance(60 + index)
    await api(
        emu,
        To=HANDSET,
        From=OURS,
        Body="Hi Ana, your table for 4 is booked for Friday 19:30 at Fernhill Bistro. Reply with any questions.",
    )
    emu.advance(30)
    await api(
        emu,
        To=HANDSET,
        From=OURS,
        Body="Here is the menu and the way in:",
        MediaUrl=[f"{media}/table.png", f"{media}/menu.pdf"],
    )
    emu.advance(95)
    await emu.inbound(to=OURS, from_=HANDSET, body="Perfect, thanks! Can we bring our dog?")
    emu.advance(40)
    await emu.inbound(to=OURS, from_=HANDSET, body="STOP")
    emu.advance(300)
    status, error = await api(
        emu, To=HANDSET, From=OURS, Body="Reminder: your table is booked for tomorrow at 19:30."
    )
    assert (status, error["code"]) == (400, 21610)


async def test_phone_shows_one_column_media_previews_and_refused_sends(
    twilio_emulator_factory: Any, browser: Browser, media: str
) -> None:
    """At 390x844 the list and a conversation each take the full width; MMS show as previews."""
    emu = await twilio_emulator_factory(clock=ManualClock(1_767_607_200.0))
    await restaurant(emu, media)
    page = await new_page(browser, PHONE)
    await page.goto(emu.base_url + "/")
    await expect(page.locator("body")).to_have_attribute("data-live", "connected")
    thread = page.locator(f'li.thread[data-thread="{OURS}|{HANDSET}"]')
    await expect(thread).to_contain_text("Refused")
    assert (await page.locator("#threads").bounding_box() or {})["width"] >= 380
    await expect(page.locator("#main")).to_be_hidden()
    await shot(page, "inbox-phone-list")

    await thread.locator("a").click()
    view = page.locator(".thread-view")
    await expect(view).to_be_visible()
    await expect(page.locator(".sidebar")).to_be_hidden()
    assert (await view.bounding_box() or {})["width"] >= 380
    first = page.locator("#bubbles .bubble.out .text").first
    assert (await first.bounding_box() or {})["width"] >= 250  # not a character per line
    image = page.locator("#bubbles img").first
    await expect(image).to_have_attribute("alt", "Image attachment table.png (image/png)")
    await expect(image).to_have_js_property("complete", True)
    assert await image.evaluate("img => img.naturalWidth") == 240
    await expect(page.locator("#bubbles a.media.file")).to_contain_text("application/pdf")
    refused = page.locator("#bubbles .bubble.refused")
    await expect(refused).to_contain_text("Reminder: your table")
    await expect(refused.locator(".error")).to_contain_text("21610")
    await expect(page.locator("#bubbles > li").last).to_have_class("bubble out refused")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await shot(page, "inbox-phone-thread")

    await page.locator("#bubbles .bubble", has_text="the menu").locator(".meta a").click()
    await expect(page.locator(".detail img")).to_have_js_property("complete", True)
    await expect(page.locator(".detail .json")).to_contain_text('"num_media": "2"')
    await shot(page, "inbox-phone-detail")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.go_back()
    await page.locator(".thread-head a.back").click()
    await expect(page.locator("#threads")).to_be_visible()
    await page.context.close()


async def test_desktop_shows_two_panes(
    twilio_emulator_factory: Any, browser: Browser, media: str
) -> None:
    """At 1280x800 the conversation list and the open conversation sit side by side."""
    emu = await twilio_emulator_factory(clock=ManualClock(1_767_607_200.0))
    await restaurant(emu, media)
    page = await new_page(browser, DESKTOP)
    await page.goto(f"{emu.base_url}/?{urlencode({'thread': f'{OURS}|{HANDSET}'})}")
    await expect(page.locator("body")).to_have_attribute("data-live", "connected")
    await expect(page.locator("#bubbles img").first).to_have_js_property("complete", True)
    sidebar = await page.locator(".sidebar").bounding_box() or {}
    main = await page.locator("#main").bounding_box() or {}
    assert sidebar["width"] == 320 and main["x"] >= 320 and main["width"] >= 900
    await expect(page.locator("#bubbles .bubble.refused")).to_be_visible()
    await shot(page, "inbox-desktop-thread")
    await page.context.close()


async def test_delete_a_message_and_a_conversation_after_confirming(
    twilio_emulator: EmulatorServer, page: Page
) -> None:
    """Deleting asks first: dismissing keeps the message, accepting removes it; open pages follow."""
    emu = twilio_emulator
    await send(emu, "keep me")
    await send(emu, "delete me")
    await send(emu, "elsewhere", to="+15551230002")
    await page.goto(f"{emu.base_url}/?{urlencode({'thread': f'{OURS}|{HANDSET}'})}")
    await expect(page.locator("body")).to_have_attribute("data-live", "connected")
    questions: list[str] = []
    answer = {"accept": False}

    async def on_dialog(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await (dialog.accept() if answer["accept"] else dialog.dismiss())

    page.on("dialog", on_dialog)
    doomed = page.locator("#bubbles .bubble", has_text="delete me")
    await doomed.hover()
    await doomed.locator(".delete button").click()
    await expect(page.locator("#bubbles .bubble")).to_have_count(2)
    assert questions == ["Delete this message?"]
    answer["accept"] = True
    await doomed.locator(".delete button").click()
    await expect(page.locator("#bubbles .bubble")).to_have_count(1)
    assert [m["body"] for m in emu.messages()] == ["elsewhere", "keep me"]

    await page.locator(".thread-head .delete button").click()
    await expect(page).to_have_url(emu.base_url + "/")
    await expect(page.locator("li.thread")).to_have_count(1)
    assert questions[-1] == "Delete this conversation (1 message)?"
    assert [m["body"] for m in emu.messages()] == ["elsewhere"]
    await expect(page.locator("body")).to_have_attribute("data-live", "connected")
    await send(emu, "to someone else", to="+15551230003")
    await expect(page.locator("li.thread")).to_have_count(2)
    key = quote(f"{OURS}|+15551230002", safe="")
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{emu.base_url}/emulator/threads/{key}") as response,
    ):
        assert response.status == 200
    await expect(page.locator("li.thread")).to_have_count(1)  # live, via the "deleted" event


async def test_long_thread_lists_come_a_page_at_a_time(
    twilio_emulator: EmulatorServer, page: Page
) -> None:
    """2,004 conversations render 50 at first; More appends 50, and live updates keep them."""
    emu = twilio_emulator
    items = [
        {
            "to": f"+1555{i:07d}",
            "from": OURS,
            "body": f"Your code is {i:06d}",
            "date_created": 1e9 + i,
        }
        for i in range(2004)
    ]
    async with (
        aiohttp.ClientSession() as session,
        session.post(emu.base_url + "/emulator/messages", json={"messages": items}) as response,
    ):
        assert response.status == 201
    await page.goto(emu.base_url + "/")
    await expect(page.locator("body")).to_have_attribute("data-live", "connected")
    threads = page.locator("#threads li.thread")
    await expect(threads).to_have_count(50)
    await expect(page.locator("#threads .count")).to_have_text("2,004 conversations")
    await page.locator("#more-threads").click()
    await expect(threads).to_have_count(100)
    await expect(threads.last).to_contain_text("Your code is 001904")
    assert page.url.endswith("/?limit=100")
    await send(emu, "a new conversation", to="+15559999999")
    await expect(threads.first).to_contain_text("a new conversation")
    await expect(threads).to_have_count(100)
    await threads.nth(60).locator("a").click()
    await expect(page.locator(".thread-view")).to_be_visible()
    await expect(threads).to_have_count(100)


async def test_a_search_without_results_says_so(
    twilio_emulator: EmulatorServer, page: Page
) -> None:
    """A search that matches nothing says so in both panes, with a way back."""
    await send(twilio_emulator, "hello")
    await page.goto(twilio_emulator.base_url + "/")
    await page.locator("#filters input[name=body]").fill("no such text")
    await page.locator("#filters button[type=submit]").click()
    await expect(page.locator("#no-matches")).to_contain_text("No conversation has a message")
    await expect(page.locator("#no-results")).to_contain_text("No message matches this search")
    await page.locator("#no-matches a").click()
    await expect(page.locator("li.thread")).to_have_count(1)
