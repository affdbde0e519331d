"""The inbox in real headless Chromium: live threads, replies, failure switches."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from connector import Connection
from connector.emulator import EmulatorServer
from connector.errors import TwilioAPIError


# Each test launches Chromium.
pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
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
    context = await browser.new_context(viewport={"width": 1100, "height": 640})
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
    ARTIFACTS.mkdir(exist_ok=True)
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
    """Flipping a handset's switch in the page makes the next send end undelivered."""
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
