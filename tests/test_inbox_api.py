"""The inbox's HTTP side: admin API, opt-outs, failure switches, Host guard, pages."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest
from conftest import Receiver
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from yarl import URL

from connector._twilio import count_segments, split_segments, ucs2_forcing
from connector.emulator import EmulatorServer
from connector.emulator._store import REFUSED_PER_THREAD, REFUSED_TOTAL, MessageStore, RefusedSend
from connector.signature import validate_signature


OK_FROM = "+15005550006"
HANDSET = "+15551230001"


async def send(emu: EmulatorServer, **params: Any) -> tuple[int, dict[str, Any]]:
    form = {"To": HANDSET, "From": OK_FROM, "Body": "hi", **params}
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
    async with (
        aiohttp.ClientSession(headers={"Authorization": auth}) as session,
        session.post(url, data=form) as response,
    ):
        return response.status, await response.json()


async def admin(
    emu: EmulatorServer, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, emu.base_url + path, headers=headers, **kw) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except json.JSONDecodeError:
            return response.status, text


async def test_openapi_document_is_valid_and_lists_the_routes(
    twilio_emulator: EmulatorServer,
) -> None:
    """The published admin OpenAPI validates and covers every admin route."""
    status, spec = await admin(twilio_emulator, "GET", "/emulator/openapi.json")
    assert status == 200
    validate(spec)
    routes = {
        resource.canonical
        for resource in twilio_emulator.app.router.resources()
        if resource.canonical.startswith("/emulator/")
    }
    assert routes <= set(spec["paths"])


async def test_list_filter_latest_and_detail(twilio_emulator: EmulatorServer) -> None:
    """Messages can be filtered by body, status and direction; detail has timeline and encoding."""
    emu = twilio_emulator
    await send(emu, Body="Your code is 1234")
    await send(emu, Body="Café ✓ déjà vu", To="+15551230002")
    status, listed = await admin(emu, "GET", "/emulator/messages", params={"body": "CODE"})
    assert status == 200 and listed["total"] == 1
    _, latest = await admin(emu, "GET", "/emulator/messages/latest")
    assert latest["to"] == "+15551230002"
    _, none = await admin(emu, "GET", "/emulator/messages", params={"status": "failed"})
    assert none["total"] == 0
    emu.advance(1)
    _, detail = await admin(emu, "GET", f"/emulator/messages/{latest['sid']}")
    assert [s["status"] for s in detail["timeline"]] == ["queued", "sending", "sent", "delivered"]
    assert detail["encoding"]["encoding"] == "UCS-2"
    assert detail["encoding"]["ucs2_characters"] == ["✓"]
    status, _ = await admin(emu, "GET", "/emulator/messages", params={"error_code": "x"})
    assert status == 400


async def test_wait_long_polls_until_a_message_arrives(twilio_emulator: EmulatorServer) -> None:
    """/emulator/messages/wait answers as soon as a matching message is stored, else 408."""
    emu = twilio_emulator
    status, body = await admin(
        emu, "GET", "/emulator/messages/wait", params={"to": HANDSET, "timeout": "0"}
    )
    assert status == 408 and body["code"] == 20408
    async with aiohttp.ClientSession() as session:
        waiting = session.get(
            emu.base_url + "/emulator/messages/wait",
            params={"to": HANDSET, "body_matches": r"code \d+", "timeout": "5"},
        )
        task = asyncio.ensure_future(waiting)
        await send(emu, Body="no match")
        await send(emu, Body="code 42")
        async with await task as response:
            assert response.status == 200
            assert (await response.json())["body"] == "code 42"


async def test_stop_refuses_sends_until_start_and_help_replies(
    twilio_emulator_factory: Any, receiver: Receiver
) -> None:
    """STOP -> 21610 for that sender only; START re-subscribes; HELP gets an auto-reply."""
    emu = await twilio_emulator_factory(incoming={OK_FROM: receiver.url + "/sms"})
    await emu.inbound(to=OK_FROM, from_=HANDSET, body=" stop ")
    await emu.drain_callbacks()
    assert receiver.requests[0][1]["Body"] == " stop "  # keywords still reach the webhook
    status, error = await send(emu)
    assert (status, error["code"]) == (400, 21610)
    assert (await send(emu, From="Acme"))[0] == 201  # another sender is unaffected
    _, handsets = await admin(emu, "GET", "/emulator/handsets")
    assert handsets["handsets"][0]["opted_out_of"] == [OK_FROM]
    await emu.inbound(to=OK_FROM, from_=HANDSET, body="START")
    assert (await send(emu))[0] == 201
    await emu.inbound(to=OK_FROM, from_=HANDSET, body="help")
    replies = emu.messages(direction="outbound-reply")
    assert len(replies) == 3 and "STOP" in replies[0]["body"]
    assert replies[0]["from"] == OK_FROM and replies[0]["to"] == HANDSET


async def test_failure_switch_next_and_always(twilio_emulator: EmulatorServer) -> None:
    """A 'next' switch fails one send with its code; 'always' stays; 21610 is refused."""
    emu = twilio_emulator
    status, _ = await admin(
        emu, "POST", "/emulator/faults", json={"handset": HANDSET, "code": 30007}
    )
    assert status == 200
    _, first = await send(emu)
    _, second = await send(emu)
    emu.advance(1)
    assert emu.messages(sid=first["sid"])[0]["status"] == "undelivered"
    assert emu.messages(sid=first["sid"])[0]["error_code"] == 30007
    assert emu.messages(sid=second["sid"])[0]["status"] == "delivered"
    await admin(
        emu,
        "POST",
        "/emulator/faults",
        data={"handset": HANDSET, "code": "30008", "mode": "always"},
    )
    for _ in range(2):
        _, sent = await send(emu)
        emu.advance(1)
        assert emu.messages(sid=sent["sid"])[0]["status"] == "failed"
    await admin(emu, "POST", "/emulator/faults", json={"handset": HANDSET, "code": 21610})
    assert (await send(emu))[1]["code"] == 21610
    assert (await send(emu))[0] == 201
    status, _ = await admin(emu, "POST", "/emulator/faults", json={"handset": HANDSET, "code": 1})
    assert status == 400
    status, _ = await admin(emu, "DELETE", "/emulator/faults", params={"handset": HANDSET})
    assert status == 200


async def test_opt_out_endpoint_and_reset_one_number(twilio_emulator: EmulatorServer) -> None:
    """Opt-outs can be set directly; resetting a number forgets its messages and rules."""
    emu = twilio_emulator
    await send(emu)
    await send(emu, To="+15551230002")
    await admin(emu, "POST", "/emulator/opt-outs", json={"number": OK_FROM, "handset": HANDSET})
    assert (await send(emu))[1]["code"] == 21610
    status, body = await admin(emu, "POST", "/emulator/reset", params={"number": HANDSET})
    assert (status, body["messages"]) == (200, 1)
    assert [m["to"] for m in emu.messages()] == ["+15551230002"]
    assert (await send(emu))[0] == 201
    await admin(emu, "POST", "/emulator/reset")
    assert emu.messages() == []


async def test_seed_stores_messages_as_given(twilio_emulator: EmulatorServer) -> None:
    """Seeded messages appear in the list with the given status and error."""
    emu = twilio_emulator
    items = [
        {"to": OK_FROM, "from": HANDSET, "body": "hello", "direction": "inbound"},
        {"to": HANDSET, "from": OK_FROM, "body": "x", "status": "undelivered", "error_code": 30003},
    ]
    status, body = await admin(emu, "POST", "/emulator/messages", json={"messages": items})
    assert status == 201
    assert [m["status"] for m in body["messages"]] == ["received", "undelivered"]
    assert body["messages"][1]["error_message"] == "Unreachable destination handset"
    status, _ = await admin(emu, "POST", "/emulator/messages", json={"messages": [{"to": "1"}]})
    assert status == 400


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1:{port}", 200), ("localhost:{port}", 200), ("evil.example:{port}", 403),
     ("127.0.0.1:1", 403), ("allowed.test", 200)],
)  # fmt: skip
async def test_host_header_guard(twilio_emulator_factory: Any, host: str, expected: int) -> None:
    """Inbox and admin routes refuse foreign Host headers (DNS rebinding); the API does not."""
    emu = await twilio_emulator_factory(allowed_hosts=("allowed.test",))
    port = emu.base_url.rsplit(":", 1)[1]
    headers = {"Host": host.format(port=port)}
    for path in ("/", "/emulator/stats", "/emulator/messages"):
        status, _ = await admin(emu, "GET", path, headers=headers)
        assert status == expected, path
    auth = aiohttp.encode_basic_auth(emu.account_sid, emu.auth_token)
    status, _ = await admin(
        emu,
        "GET",
        f"/2010-04-01/Accounts/{emu.account_sid}/Messages.json",
        headers={**headers, "Authorization": auth},
    )
    assert status == 200


async def test_foreign_origin_cannot_post(twilio_emulator: EmulatorServer) -> None:
    """A cross-site form post (right Host, foreign Origin) is refused."""
    status, _ = await admin(
        twilio_emulator, "POST", "/emulator/reset", headers={"Origin": "https://evil.example"}
    )
    assert status == 403
    origin = twilio_emulator.base_url
    status, _ = await admin(twilio_emulator, "POST", "/emulator/reset", headers={"Origin": origin})
    assert status == 200


async def test_pages_render_threads_detail_and_search(
    twilio_emulator_factory: Any, receiver: Receiver
) -> None:
    """The inbox renders threads, a searchable list, the detail page, and handles replies."""
    emu = await twilio_emulator_factory(incoming={OK_FROM: receiver.url + "/sms"})
    _, sent = await send(emu, Body="Hi <b>there</b> 😀", StatusCallback=receiver.url + "/cb")
    emu.advance(1)
    await emu.drain_callbacks()
    status, page = await admin(emu, "GET", "/")
    assert status == 200 and HANDSET in page and "&lt;b&gt;there&lt;/b&gt;" in page
    thread = f"{OK_FROM}|{HANDSET}"
    status, page = await admin(emu, "GET", "/", params={"thread": thread})
    assert 'id="reply-form"' in page
    status, page = await admin(emu, "GET", "/", params={"status": "delivered"})
    assert "1 matching" in page
    status, page = await admin(emu, "GET", f"/messages/{sent['sid']}")
    assert "UCS-2" in page and "U+1F600" in page and "/cb" in page
    assert "&lt;/b&gt; 😀&quot;," in page and "\\ud83d" not in page  # the JSON is UTF-8
    status, _ = await admin(
        emu, "POST", "/inbox/reply", data={"thread": thread, "body": "yes"}, allow_redirects=False
    )
    assert status == 303
    await emu.drain_callbacks()
    url, form, signature = receiver.requests[-1]
    assert form["Body"] == "yes" and validate_signature(url, form, signature, emu.auth_token)
    status, _ = await admin(
        emu,
        "POST",
        "/inbox/switch",
        data={"handset": HANDSET, "thread": thread, "code": "30005", "mode": "next"},
        allow_redirects=False,
    )
    assert status == 303 and emu.state.rules.fault(HANDSET) is not None
    for path in ("/inbox/static/inbox.js", "/inbox/static/inbox.css"):
        assert (await admin(emu, "GET", path))[0] == 200


async def test_events_stream_reports_changes(twilio_emulator: EmulatorServer) -> None:
    """/emulator/events greets, then streams one event per change."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(twilio_emulator.base_url + "/emulator/events") as response,
    ):
        assert response.headers["Content-Type"] == "text/event-stream"
        assert (await response.content.readline()).startswith(b"retry:")
        assert await response.content.readline() == b"event: hello\n"
        await response.content.readline()
        await response.content.readline()
        await send(twilio_emulator)
        assert await response.content.readline() == b"event: message\n"


def test_segments_split_like_they_count() -> None:
    """The encoding view's split agrees with the billing count."""
    for body in ("", "a" * 160, "a" * 161, "é😀" * 40, "{" * 100, "x" * 400):
        assert len(split_segments(body)) == count_segments(body)
        assert "".join(split_segments(body)) == body
    assert ucs2_forcing("héllo 😀 ✓ 😀") == ["😀", "✓"]


async def test_date_filters_since_and_until(twilio_emulator: EmulatorServer) -> None:
    """since/until filter by creation time; a bare until date covers that whole day."""
    emu = twilio_emulator
    day = 86400.0
    base = 1_700_000_000.0 - 1_700_000_000.0 % day  # midnight UTC, 2023-11-14
    items = [
        {"to": HANDSET, "from": OK_FROM, "body": "old", "date_created": base - day + 60},
        {"to": HANDSET, "from": OK_FROM, "body": "evening", "date_created": base + 82800},
        {"to": HANDSET, "from": OK_FROM, "body": "next", "date_created": base + day + 60},
    ]
    assert (await admin(emu, "POST", "/emulator/messages", json={"messages": items}))[0] == 201

    async def bodies(**params: str) -> list[str]:
        status, listed = await admin(emu, "GET", "/emulator/messages", params=params)
        assert status == 200, listed
        return [m["body"] for m in listed["messages"]]

    assert await bodies(since="2023-11-14", until="2023-11-14") == ["evening"]
    assert await bodies(since="2023-11-14") == ["next", "evening"]
    assert await bodies(until="2023-11-14T00:00:00Z") == ["old"]
    assert await bodies(since=str(base + day)) == ["next"]
    status, _ = await admin(emu, "GET", "/emulator/messages", params={"since": "someday"})
    assert status == 400


async def test_events_stream_ends_quietly_when_the_browser_goes_away(
    twilio_emulator: EmulatorServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live-update stream whose browser went away ends without logging an error."""
    emu = twilio_emulator
    hub = emu.state.events
    ended = asyncio.Event()
    subscribe = hub.subscribe

    @asynccontextmanager
    async def tracked() -> AsyncIterator[Any]:
        try:
            async with subscribe() as queue:
                yield queue
        finally:
            ended.set()

    monkeypatch.setattr(hub, "subscribe", tracked)
    async with (
        aiohttp.ClientSession() as session,
        session.get(emu.base_url + "/emulator/events") as response,
    ):
        assert (await response.content.readline()).startswith(b"retry:")
    # The tab is gone; the next change makes the server write to the closed connection.
    await send(emu)
    await asyncio.wait_for(ended.wait(), 5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_literal_plus_in_a_number_parameter_is_a_plus(
    twilio_emulator: EmulatorServer,
) -> None:
    """``?to=+1555...`` as typed finds the message; ``+`` still means a space in a body."""
    emu = twilio_emulator
    await send(emu, Body="see you soon")
    async with aiohttp.ClientSession() as session:
        for query in (f"to={HANDSET}", f"to=%2B{HANDSET[1:]}", f"to={HANDSET}&body=you+soon"):
            url = URL(f"{emu.base_url}/emulator/messages/latest?{query}", encoded=True)
            async with session.get(url) as response:
                assert response.status == 200, query
                assert (await response.json())["to"] == HANDSET
        thread = URL(f"{emu.base_url}/?thread={OK_FROM}|{HANDSET}", encoded=True)
        async with session.get(thread) as response:
            assert 'id="reply-form"' in await response.text()
        reset = URL(f"{emu.base_url}/emulator/reset?number={HANDSET}", encoded=True)
        async with session.post(reset) as response:
            assert (await response.json())["messages"] == 1


def assert_documented(spec: dict[str, Any], path: str, method: str, body: Any) -> None:
    """Check *body* against the 200 answer the OpenAPI document describes for the route."""
    answer = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    schema = {**answer["schema"], "components": spec["components"]}
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)


async def test_sends_refused_after_stop_are_kept_for_their_thread(
    twilio_emulator_factory: Any, tmp_path: Path
) -> None:
    """A 21610 refusal stores no message but a note in its thread, which survives a restart."""
    db = str(tmp_path / "emulator.db")
    emu = await twilio_emulator_factory(db_path=db)
    _, spec = await admin(emu, "GET", "/emulator/openapi.json")
    await emu.inbound(to=OK_FROM, from_=HANDSET, body="STOP")
    status, error = await send(emu, Body="Your order shipped", MediaUrl="https://x.test/a.png")
    assert (status, error["code"]) == (400, 21610)
    assert (await send(emu, To="+15551230002"))[0] == 201
    status, listed = await admin(emu, "GET", "/emulator/refused", params={"to": HANDSET})
    assert status == 200 and listed["total"] == 1
    assert_documented(spec, "/emulator/refused", "get", listed)
    refused = listed["refused"][0]
    assert refused["thread"] == f"{OK_FROM}|{HANDSET}"
    assert (refused["code"], refused["body"]) == (21610, "Your order shipped")
    assert refused["media_urls"] == ["https://x.test/a.png"]
    _, threads = await admin(emu, "GET", "/emulator/threads")
    assert_documented(spec, "/emulator/threads", "get", threads)
    assert {t["key"]: t["refused"] for t in threads["threads"]} == {
        f"{OK_FROM}|{HANDSET}": 1,
        f"{OK_FROM}|+15551230002": 0,
    }
    await emu.stop()
    again = await twilio_emulator_factory(db_path=db)
    assert (await admin(again, "GET", "/emulator/refused"))[1]["total"] == 1
    await admin(again, "POST", "/emulator/reset", params={"number": HANDSET})
    assert (await admin(again, "GET", "/emulator/refused"))[1]["total"] == 0


async def test_refused_sends_are_capped_per_thread_and_in_all() -> None:
    """The store keeps the newest refused sends: 50 per conversation, 1000 in all."""
    store = MessageStore(None)
    store.open()

    def refuse(handset: str) -> None:
        store.refuse(
            RefusedSend(
                seq=store.next_seq(), thread=f"{OK_FROM}|{handset}", to=handset, from_=OK_FROM,
                messaging_service_sid=None, body="x", code=21610, message="no", at=0.0,
            )
        )  # fmt: skip

    for _ in range(REFUSED_PER_THREAD + 5):
        refuse(HANDSET)
    kept = store.refused()
    assert len(kept) == REFUSED_PER_THREAD and kept[0].seq == 6
    for index in range(REFUSED_TOTAL):
        refuse(f"+1555{index:07d}")
    assert len(store.refused()) == REFUSED_TOTAL
    assert all(item.to != HANDSET for item in store.refused())
    await store.commit()
    store.close()


async def test_threads_are_listed_a_page_at_a_time(twilio_emulator: EmulatorServer) -> None:
    """/emulator/threads answers 50 conversations by default and a token for the next page."""
    emu = twilio_emulator
    items = [
        {"to": f"+1555{i:07d}", "from": OK_FROM, "body": f"n{i}", "date_created": 1e9 + i}
        for i in range(120)
    ]
    await admin(emu, "POST", "/emulator/messages", json={"messages": items})
    seen: list[str] = []
    params: dict[str, str] = {}
    sizes = []
    while True:
        status, page = await admin(emu, "GET", "/emulator/threads", params=params)
        assert status == 200 and page["total"] == 120
        sizes.append(len(page["threads"]))
        seen += [t["last_message"]["body"] for t in page["threads"]]
        if page["next_before"] is None:
            break
        params = {"before": page["next_before"]}
    assert sizes == [50, 50, 20]
    assert seen == [f"n{i}" for i in reversed(range(120))]
    _, page = await admin(emu, "GET", "/emulator/threads", params={"limit": "5", "body": "n11"})
    assert [t["handset"] for t in page["threads"]] == [f"+1555{i:07d}" for i in range(119, 114, -1)]
    assert page["total"] == 11
    status, _ = await admin(emu, "GET", "/emulator/threads", params={"before": "soon"})
    assert status == 400


async def test_delete_a_message_and_a_thread(twilio_emulator: EmulatorServer) -> None:
    """DELETE forgets one message, or a whole conversation; foreign origins may not."""
    emu = twilio_emulator
    _, first = await send(emu, Body="one")
    _, second = await send(emu, Body="two")
    await send(emu, Body="elsewhere", To="+15551230002")
    evil = {"Origin": "https://evil.example"}
    path = f"/emulator/messages/{first['sid']}"
    assert (await admin(emu, "DELETE", path, headers=evil))[0] == 403
    status, body = await admin(emu, "DELETE", path)
    assert (status, body) == (200, {"sid": first["sid"], "thread": f"{OK_FROM}|{HANDSET}"})
    assert (await admin(emu, "GET", path))[0] == 404
    assert (await admin(emu, "DELETE", path))[0] == 404
    await admin(emu, "POST", "/emulator/opt-outs", json={"number": OK_FROM, "handset": HANDSET})
    await send(emu, Body="refused")
    key = quote(f"{OK_FROM}|{HANDSET}", safe="")
    assert (await admin(emu, "DELETE", f"/emulator/threads/{key}", headers=evil))[0] == 403
    status, body = await admin(emu, "DELETE", f"/emulator/threads/{key}")
    assert (status, body["messages"], body["refused"]) == (200, 1, 1)
    assert [m["body"] for m in emu.messages()] == ["elsewhere"]
    assert emu.messages(sid=second["sid"]) == []
    assert (await admin(emu, "DELETE", f"/emulator/threads/{key}"))[0] == 404


async def test_the_inbox_renders_2004_threads_a_page_at_a_time(
    twilio_emulator: EmulatorServer,
) -> None:
    """The first page of 2,004 conversations lists 50 (about 20 KB, not 749 KB) and links on."""
    emu = twilio_emulator
    items = [
        {"to": f"+1555{i:07d}", "from": OK_FROM, "body": f"Your code is {i:06d}"}
        for i in range(2004)
    ]
    await admin(emu, "POST", "/emulator/messages", json={"messages": items})
    status, page = await admin(emu, "GET", "/")
    assert status == 200 and len(page.encode()) < 40_000
    assert page.count('<li class="thread') == 50 and "2,004 conversations" in page
    after = re.search(r'id="more-threads" href="/\?before=([^"]+)"', page)
    assert after is not None
    _, second = await admin(emu, "GET", "/", params={"before": unescape(unquote(after[1]))})
    assert second.count('<li class="thread') == 50 and "Newest conversations" in second
    _, grown = await admin(emu, "GET", "/", params={"limit": "120"})
    assert grown.count('<li class="thread') == 120


async def test_inbox_shows_media_as_previews_and_never_links_other_schemes(
    twilio_emulator: EmulatorServer,
) -> None:
    """Images become lazy thumbnails with alt text, others links with their type, the rest text."""
    emu = twilio_emulator
    urls = ("http://127.0.0.1:9/m/cat.jpg", "http://127.0.0.1:9/m/a%20b.pdf", "javascript:alert(1)")
    await emu.inbound(to=OK_FROM, from_=HANDSET, media_urls=urls)
    _, page = await admin(emu, "GET", "/", params={"thread": f"{OK_FROM}|{HANDSET}"})
    assert (
        '<img src="http://127.0.0.1:9/m/cat.jpg" alt="Image attachment cat.jpg (image/jpeg)"'
        in page
    )
    assert 'loading="lazy"' in page
    assert '<span class="type">application/pdf</span> a b.pdf</a>' in page
    assert "javascript:alert(1)</span>" in page and 'href="javascript:' not in page
    assert "📎 3 attachments" in page


async def test_inbox_delete_asks_on_a_page_of_its_own_without_the_script(
    twilio_emulator: EmulatorServer,
) -> None:
    """A delete posted without confirmed=yes answers a confirmation page and deletes nothing."""
    emu = twilio_emulator
    _, sent = await send(emu, Body="doomed")
    await send(emu, To="+15551230002")
    form = {"sid": sent["sid"]}
    status, page = await admin(emu, "POST", "/inbox/delete", data=form, allow_redirects=False)
    assert status == 200 and "doomed" in page and 'name="confirmed" value="yes"' in page
    assert emu.messages(sid=sent["sid"]) != []
    form["confirmed"] = "yes"
    evil = {"Origin": "https://evil.example"}
    assert (await admin(emu, "POST", "/inbox/delete", data=form, headers=evil))[0] == 403
    status, _ = await admin(emu, "POST", "/inbox/delete", data=form, allow_redirects=False)
    assert status == 303 and emu.messages(sid=sent["sid"]) == []
    thread = {"thread": f"{OK_FROM}|+15551230002", "confirmed": "yes"}
    status, _ = await admin(emu, "POST", "/inbox/delete", data=thread, allow_redirects=False)
    assert status == 303 and emu.messages() == []


async def test_an_incoming_webhook_is_registered_while_running(
    twilio_emulator: EmulatorServer, receiver: Receiver
) -> None:
    """POST /emulator/incoming routes a number's inbound messages (a listener's); an empty url undoes it."""
    emu = twilio_emulator
    number, hook = "+15551230077", receiver.url + "/messages"
    status, answer = await admin(
        emu, "POST", "/emulator/incoming", json={"number": number, "url": hook}
    )
    assert status == 200 and answer == {"incoming": {number: hook}}
    assert number in emu.state.owned  # a workflow may answer from it
    await emu.inbound(to=number, from_=HANDSET, body="hello")
    await emu.drain_callbacks()
    assert [form["Body"] for _, form, _ in receiver.requests] == ["hello"]
    own = emu.base_url + "/emulator/reset"
    status, answer = await admin(
        emu, "POST", "/emulator/incoming", json={"number": number, "url": own}
    )
    assert status == 400 and answer["code"] == 21402
    status, answer = await admin(
        emu, "POST", "/emulator/incoming", data={"number": number, "url": ""}
    )
    assert status == 200 and answer == {"incoming": {}}
    assert (await admin(emu, "GET", "/emulator/incoming"))[1] == {"incoming": {}}
    assert number not in emu.state.owned
