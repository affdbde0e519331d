"""Reconciliation: a send of unknown outcome is looked up, twice if need be, before any resend."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from conftest import ACCOUNT_SID, AUTH_TOKEN
from virtual_clock import run_virtual

from connector import Connection, HttpRequest, HttpResponse, MockTransport
from connector.workflow._calls import RECONCILE_SETTLE, find_sent_message


SENT = {"to": "+15551230001", "from": "+15005550006", "body": "hello"}


def listing(*messages: dict[str, Any]) -> HttpResponse:
    return HttpResponse(
        200, json.dumps({"messages": list(messages), "next_page_uri": None}).encode()
    )


def stored_message() -> dict[str, Any]:
    now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    return {"sid": "SM" + "7" * 32, "date_created": now, **SENT}


async def _look(settle: float, visible_after: int) -> tuple[Any, int, float]:
    """Look up SENT where the message shows in lists from the *visible_after*-th list on."""
    lists = 0

    def handler(request: HttpRequest) -> HttpResponse:
        nonlocal lists
        lists += 1
        return listing(stored_message()) if lists > visible_after else listing()

    async def claim(sid: str) -> bool:
        return True

    loop = asyncio.get_running_loop()
    conn = Connection(
        ACCOUNT_SID, AUTH_TOKEN, transport=MockTransport(handler), rate_limit=False, env={}
    )
    async with conn:
        began = loop.time()
        found = await find_sent_message(conn, SENT, time.time() - 1, claim=claim, settle=settle)
        return found, lists, loop.time() - began


def test_a_message_that_shows_up_late_is_found_on_the_second_look() -> None:
    """Nothing listed at first: the lookup waits RECONCILE_SETTLE and finds it, so no resend follows."""
    found, lists, waited = run_virtual(_look(RECONCILE_SETTLE, visible_after=2))
    assert found is not None and found["sid"] == "SM" + "7" * 32
    assert lists == 3  # both filters of the first look, then the first of the second
    assert waited >= RECONCILE_SETTLE


def test_without_settle_one_look_decides() -> None:
    """With settle=0 (an attempt that ended long ago) a single look that finds nothing returns None."""
    found, lists, waited = run_virtual(_look(0.0, visible_after=2))
    assert found is None
    assert lists == 2
    assert waited < 0.01
