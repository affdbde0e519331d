# SPDX-License-Identifier: MIT
"""
The web inbox: every SMS as the handset sees it, server-rendered.

Pages are plain HTML built here with :func:`html.escape`; ``inbox/inbox.js`` (no
library, no build step) listens to ``/emulator/events`` and swaps the live regions of
the page with a fresh render, turns form posts into background requests (asking first
before a delete), and appends the next page of conversations in place. Without
JavaScript every form still works through a redirect, a delete through a confirmation
page, and the next page of conversations is a link. One stylesheet lays the page out
in two panes on a desktop and one column on a phone.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from aiohttp import web

from connector.emulator._admin import (
    THREAD_PAGE,
    conversations,
    delete_message,
    delete_thread,
    message_detail,
    query_params,
    state_of,
)
from connector.emulator._errors import ApiError
from connector.emulator._handsets import FAULT_CODES, FaultMode, HandsetFault
from connector.emulator._records import MessageRecord
from connector.emulator._search import MessageQuery, Thread, page_threads, thread_key
from connector.emulator._state import EmulatorState
from connector.emulator._store import RefusedSend


__all__ = ["add_inbox_routes"]

_STATIC = {"inbox.css": "text/css", "inbox.js": "text/javascript"}
_FILTERS = ("to", "from", "status", "error_code", "body", "since", "until")
_STATUSES = (
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "canceled",
    "received",
)
_FINAL_BAD = frozenset({"failed", "undelivered", "canceled"})
# The page grows by THREAD_PAGE per "More"; the URL's limit keeps what was shown.
_MOST_SHOWN = 10_000
# Only web URLs become links or images: an inbound message's media URL is whatever the
# caller injected, and a javascript: link must not be one click away.
_WEB_URL = re.compile(r"https?://", re.IGNORECASE)


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S")


def _datetime(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _badge(status: str) -> str:
    tone = "bad" if status in _FINAL_BAD else "good" if status == "delivered" else "neutral"
    return f'<span class="badge {tone}" data-status="{_e(status)}">{_e(status)}</span>'


def _page(title: str, body: str, view: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/inbox/static/inbox.css">'
        '<script src="/inbox/static/inbox.js" defer></script>'
        f'</head><body data-live="connecting" data-view="{view}">'
        '<header class="top"><a class="brand" href="/">SMS inbox</a>'
        '<span class="muted">Twilio emulator</span>'
        '<span class="live-dot" title="live updates"></span>'
        '<a class="muted right" href="/emulator/openapi.json">admin API</a></header>'
        f"{body}</body></html>"
    )


def _link(params: Mapping[str, str], **changes: str) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v}
    return "/?" + urlencode(merged) if merged else "/"


def _filters_form(params: Mapping[str, str]) -> str:
    options = "".join(
        f'<option value="{s}"{" selected" if params.get("status") == s else ""}>{s}</option>'
        for s in _STATUSES
    )
    fields = "".join(
        f'<input name="{name}" placeholder="{label}" value="{_e(params.get(name, ""))}"'
        f' aria-label="{label}">'
        for name, label in (
            ("to", "To"),
            ("from", "From"),
            ("error_code", "Error code"),
            ("body", "Body text"),
        )
    )
    dates = "".join(
        f'<input type="date" name="{name}" value="{_e(params.get(name, ""))}" aria-label="{name}">'
        for name in ("since", "until")
    )
    return (
        '<form class="filters" method="get" action="/" id="filters">'
        f'{fields}<select name="status" aria-label="Status"><option value="">any status</option>'
        f"{options}</select>{dates}"
        '<button type="submit">Search</button><a href="/">clear</a></form>'
    )


def _preview(record: MessageRecord) -> str:
    if record.body:
        return record.body[:80]
    count = len(record.media)
    return f"📎 {count} attachment{'s' if count != 1 else ''}" if count else "(empty)"


def _thread_item(thread: Thread, params: Mapping[str, str], selected: str) -> str:
    last, refusal = thread.last, thread.refused[-1] if thread.refused else None
    if refusal is not None and (refusal.at, refusal.seq) == thread.activity:
        preview = f"Refused: {refusal.body[:80] or '(media)'}"
        badge, moment = '<span class="badge bad">refused</span>', refusal.at
    elif last is not None:
        preview, badge, moment = _preview(last), _badge(last.status), last.date_updated
    else:  # unreachable: a conversation has a message or a refused send
        return ""
    current = " current" if thread.key == selected else ""
    return (
        f'<li class="thread{current}" data-thread="{_e(thread.key)}">'
        f'<a href="{_e(_link(params, thread=thread.key))}">'
        f'<span class="who">{_e(thread.handset)}</span>'
        f'<span class="via">via {_e(thread.ours)}</span>'
        f'<span class="preview">{_e(preview)}</span>'
        f'<span class="meta">{badge} {_time(moment)} · {len(thread.messages)}</span></a></li>'
    )


def _thread_list(
    threads: list[Thread], params: Mapping[str, str], selected: str, *, searching: bool
) -> str:
    before = params.get("before", "")
    try:
        limit = min(_MOST_SHOWN, max(1, int(params.get("limit", THREAD_PAGE))))
    except ValueError:
        limit = THREAD_PAGE
    try:
        page, after = page_threads(threads, before=before or None, limit=limit)
    except ApiError:
        before = ""
        page, after = page_threads(threads, before=None, limit=limit)
    newest = _link(params, before="", limit="")
    back = f'<a class="newest" href="{_e(newest)}">← Newest conversations</a>' if before else ""
    if not page:
        if searching:
            return (
                '<p class="empty" id="no-matches">No conversation has a message that matches'
                ' this search. <a href="/">Clear the search</a></p>'
            )
        if before:
            return f'<p class="empty">No older conversations.</p>{back}'
        return '<p class="empty">No messages yet. Send one through the API.</p>'
    noun = "conversation" if len(threads) == 1 else "conversations"
    count = f"{len(threads):,} {noun}{' with a match' if searching else ''}"
    more = (
        f'<a class="more" id="more-threads" href="{_e(_link(params, before=after, limit=""))}">'
        "More conversations</a>"
        if after
        else ""
    )
    items = "".join(_thread_item(thread, params, selected) for thread in page)
    return f'<p class="count muted">{count}</p>{back}<ul class="threads">{items}</ul>{more}'


def _content_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    return guessed or "application/octet-stream"


def _attachment(url: str, content_type: str) -> str:
    # Thumbnails are the browser loading the sender's URL (a loopback server in tests);
    # the emulator never fetches media itself.
    kind = _e(content_type)
    plain = f'<span class="media file"><span class="type">{kind}</span> {_e(url)}</span>'
    if not _WEB_URL.match(url):
        return plain
    try:
        parts = urlsplit(url)
    except ValueError:
        return plain
    name = _e(unquote(parts.path.rsplit("/", 1)[-1]) or parts.netloc)
    link = f'href="{_e(url)}" target="_blank" rel="noopener noreferrer"'
    if content_type.startswith("image/"):
        return (
            f'<a class="media thumb" {link} title="{name}">'
            f'<img src="{_e(url)}" alt="Image attachment {name} ({kind})" loading="lazy"'
            ' decoding="async" referrerpolicy="no-referrer" width="160" height="120"></a>'
        )
    return f'<a class="media file" {link}><span class="type">{kind}</span> {name}</a>'


def _attachments(items: Sequence[tuple[str, str]]) -> str:
    if not items:
        return ""
    return f'<div class="attachments">{"".join(_attachment(u, t) for u, t in items)}</div>'


def _delete_form(field: str, value: str, question: str, label: str, follow: str = "") -> str:
    go = f' data-follow="{_e(follow)}"' if follow else ""
    return (
        '<form method="post" action="/inbox/delete" class="inline delete"'
        f' data-confirm="{_e(question)}"{go}>'
        f'<input type="hidden" name="{field}" value="{_e(value)}">'
        f'<button type="submit" title="{_e(question)}">{label}</button></form>'
    )


def _bubble(record: MessageRecord) -> str:
    side = "in" if record.direction == "inbound" else "out"
    error = (
        f'<span class="error">{_e(record.error_code)} {_e(record.error_message)}</span>'
        if record.error_code is not None
        else ""
    )
    text = f'<div class="text">{_e(record.body)}</div>' if record.body or not record.media else ""
    media = _attachments([(m.url, m.content_type) for m in record.media])
    auto = ' <span class="muted">auto-reply</span>' if record.direction == "outbound-reply" else ""
    delete = _delete_form("sid", record.sid, "Delete this message?", "Delete")
    return (
        f'<li class="bubble {side}" data-sid="{_e(record.sid)}">{text}{media}'
        f'<div class="meta"><a href="/messages/{_e(record.sid)}">{_time(record.date_created)}</a>'
        f" {_badge(record.status)}{auto} {error}{delete}</div></li>"
    )


def _refused_bubble(item: RefusedSend) -> str:
    text = f'<div class="text">{_e(item.body)}</div>' if item.body or not item.media_urls else ""
    media = _attachments([(url, _content_type(url)) for url in item.media_urls])
    return (
        f'<li class="bubble out refused" data-refused="{item.seq}"'
        ' title="The API refused this send; no message was created">'
        f"{text}{media}"
        f'<div class="meta"><span>{_time(item.at)}</span> <span class="badge bad">refused</span>'
        f' <span class="error">{item.code} {_e(item.message)}</span></div></li>'
    )


def _switches(state: EmulatorState, thread: Thread) -> str:
    fault = state.rules.fault(thread.handset)
    opted_out = state.rules.is_opted_out(thread.ours, thread.handset)
    status = []
    if fault is not None:
        when = "every message" if fault.mode == "always" else "the next message"
        status.append(
            f'<span class="badge bad" id="fault-state">{when} fails with {fault.code}</span>'
        )
    if opted_out:
        status.append('<span class="badge bad" id="opt-out-state">opted out (STOP)</span>')
    codes = "".join(
        f'<option value="{code}">{code} {_e(text)}</option>'
        for code, (_, text) in FAULT_CODES.items()
    )
    hidden = (
        f'<input type="hidden" name="handset" value="{_e(thread.handset)}">'
        f'<input type="hidden" name="thread" value="{_e(thread.key)}">'
    )
    return (
        f'<div class="switches">{"".join(status)}'
        f'<form method="post" action="/inbox/switch" class="inline" id="fault-form">{hidden}'
        f'<select name="code" aria-label="Error code">{codes}</select>'
        '<select name="mode" aria-label="When"><option value="next">next message</option>'
        '<option value="always">every message</option></select>'
        '<button type="submit" name="op" value="set">Fail</button>'
        '<button type="submit" name="op" value="clear">Clear</button></form>'
        '<form method="post" action="/inbox/reply" class="inline">'
        f'<input type="hidden" name="thread" value="{_e(thread.key)}">'
        '<button type="submit" name="body" value="STOP" title="The handset texts STOP">STOP</button>'
        '<button type="submit" name="body" value="START" title="The handset texts START">START</button>'
        '<button type="submit" name="body" value="HELP" title="The handset texts HELP">HELP</button>'
        "</form></div>"
    )


def _thread_view(state: EmulatorState, thread: Thread, params: Mapping[str, str]) -> str:
    reply_to = _reply_target(thread)
    webhook = state.webhook_for(reply_to)
    hook = (
        f"replies go to <code>{_e(webhook)}</code>"
        if webhook
        else f"no webhook is configured for {_e(reply_to)}; replies are only stored"
    )
    items = [(r.seq, _bubble(r)) for r in thread.messages]
    items += [(r.seq, _refused_bubble(r)) for r in thread.refused]
    bubbles = "".join(html for _, html in sorted(items))
    listing = _link(params, thread="")
    count = len(thread.messages)
    delete = _delete_form(
        "thread",
        thread.key,
        f"Delete this conversation ({count} message{'s' if count != 1 else ''})?",
        'Delete<span class="wide"> conversation</span>',
        follow=listing,
    )
    return (
        f'<section class="thread-view" data-thread="{_e(thread.key)}">'
        f'<div class="thread-head"><a class="back" href="{_e(listing)}"'
        ' aria-label="All conversations">←</a>'
        f'<div class="title"><h2>{_e(thread.handset)}</h2>'
        f'<span class="muted">with {_e(thread.ours)}</span></div>{delete}</div>'
        f'<div id="switches" data-live>{_switches(state, thread)}</div>'
        f'<ol class="bubbles" id="bubbles" data-live>{bubbles}</ol>'
        '<form method="post" action="/inbox/reply" class="reply" id="reply-form">'
        f'<input type="hidden" name="thread" value="{_e(thread.key)}">'
        '<textarea name="body" rows="2" placeholder="Reply as the handset…" '
        'aria-label="Reply as the handset" required></textarea>'
        f'<button type="submit">Send reply</button><p class="muted">{hook}</p></form></section>'
    )


def _results(records: list[MessageRecord]) -> str:
    if not records:
        return (
            '<section class="results" id="results"><p class="empty" id="no-results">'
            'No message matches this search. <a href="/">Clear the search</a></p></section>'
        )
    rows = "".join(
        f'<tr data-sid="{_e(r.sid)}"><td><a href="/messages/{_e(r.sid)}">{_datetime(r.date_created)}</a></td>'
        f"<td>{_e(r.from_)}</td><td>{_e(r.to)}</td><td>{_badge(r.status)}</td>"
        f"<td>{_e(r.error_code)}</td><td>{_e(r.body[:120])}</td></tr>"
        for r in records[:500]
    )
    return (
        f'<section class="results" id="results"><h2>{len(records)} matching</h2>'
        '<div class="scroll"><table><thead><tr><th>Created</th><th>From</th><th>To</th>'
        "<th>Status</th><th>Error</th><th>Body</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _reply_target(thread: Thread) -> str:
    # Replies go to the number that last wrote to the handset (a Messaging Service
    # thread has no number of its own).
    if not thread.ours.startswith("MG"):
        return thread.ours
    for record in reversed(thread.messages):
        if record.direction != "inbound" and record.from_:
            return record.from_
        if record.direction == "inbound":
            return record.to
    return thread.ours


def _index_html(state: EmulatorState, params: Mapping[str, str]) -> str:
    filters = {k: params[k] for k in _FILTERS if params.get(k, "").strip()}
    try:
        query = MessageQuery.from_params(filters)
    except ApiError as exc:
        query, error = MessageQuery(), f'<p class="error">{_e(exc.message)}</p>'
    else:
        error = ""
    threads = everything = conversations(state)
    matching: list[MessageRecord] = []
    if filters:
        matching = list(state.store.older_than(None, query.matches))
        keys = {thread_key(record) for record in matching}
        threads = [thread for thread in everything if thread.key in keys]
    selected = params.get("thread", "")
    chosen = next((t for t in everything if t.key == selected), None)
    if chosen is not None:
        main, view = _thread_view(state, chosen, params), "thread"
    elif filters:
        main, view = _results(matching), "results"
    else:
        main, view = '<p class="empty">Pick a conversation.</p>', "list"
    threads_html = _thread_list(threads, params, selected, searching=bool(filters))
    body = (
        f'<main class="layout"><aside class="sidebar">{_filters_form(params)}{error}'
        f'<nav id="threads" data-live>{threads_html}</nav></aside>'
        f'<div class="main" id="main" data-live>{main}</div></main>'
    )
    return _page("SMS inbox", body, view)


def _detail_html(state: EmulatorState, record: MessageRecord) -> str:
    detail = message_detail(state, record)
    timeline = "".join(
        f"<li>{_badge(step['status'])} <time>{_e(step['at'])}</time></li>"
        for step in detail["timeline"]
    )
    attempts = "".join(
        f"<tr><td>{_e(a['event'])}</td><td>{a['attempt']}</td><td><code>{_e(a['url'])}</code></td>"
        f"<td><code>{_e(a['signature'])}</code></td>"
        f"<td>{_e(a['status'] if a['status'] is not None else a['error'])}</td>"
        f"<td>{a['latency_ms']} ms</td><td>{_e(a['at'])}</td></tr>"
        for a in detail["callbacks"]
    )
    log = (
        "<table><thead><tr><th>Event</th><th>Try</th><th>URL</th><th>Signature</th>"
        f"<th>Response</th><th>Latency</th><th>At</th></tr></thead><tbody>{attempts}</tbody></table>"
        if attempts
        else '<p class="muted">No callbacks (no StatusCallback, or no webhook for the number).</p>'
    )
    encoding = detail["encoding"]
    forcing = encoding["ucs2_characters"]
    why = (
        "UCS-2 because of "
        + " ".join(f'<mark class="ucs2">{_e(c)}</mark> (U+{ord(c):04X})' for c in forcing)
        if forcing
        else "every character is in the GSM-7 alphabet"
    )
    segments = "".join(
        f'<li><span class="muted">{len(part)} chars</span> {_highlight(part, forcing)}</li>'
        for part in encoding["segments"]
    )
    thread_link = _link({}, thread=detail["thread"])
    media = (
        f"<h3>Media</h3>{_attachments([(m.url, m.content_type) for m in record.media])}"
        if record.media
        else ""
    )
    body = (
        '<main class="detail" id="main" data-live>'
        f'<p><a href="{_e(thread_link)}">← conversation</a></p>'
        f"<h2>{_e(record.sid)}</h2>"
        '<div class="cols"><section><h3>Status timeline</h3>'
        f'<ol class="timeline" id="timeline">{timeline}</ol>'
        f'<h3>Encoding</h3><p id="encoding"><strong>{_e(encoding["encoding"])}</strong>: {why}</p>'
        f'<h3>{len(encoding["segments"])} segment(s)</h3><ol class="segments">{segments}</ol>'
        f"{media}</section><section><h3>Twilio JSON</h3>"
        f'<pre class="json">{_e(json.dumps(detail["message"], indent=2, ensure_ascii=False))}</pre></section></div>'
        f'<h3>Status callback deliveries</h3><div id="callbacks" class="scroll">{log}</div></main>'
    )
    return _page(f"Message {record.sid}", body, "detail")


def _highlight(text: str, forcing: list[str]) -> str:
    if not forcing:
        return _e(text)
    marked = set(forcing)
    return "".join(
        f'<mark class="ucs2">{_e(char)}</mark>' if char in marked else _e(char) for char in text
    )


async def _index(request: web.Request) -> web.Response:
    html = _index_html(state_of(request), query_params(request))
    return web.Response(text=html, content_type="text/html")


async def _message_page(request: web.Request) -> web.Response:
    state = state_of(request)
    record = state.store.get(request.match_info["sid"])
    if record is None:
        raise web.HTTPNotFound(text="No such message")
    return web.Response(text=_detail_html(state, record), content_type="text/html")


def _back(thread: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(_link({}, thread=thread))


async def _reply(request: web.Request) -> web.Response:
    state = state_of(request)
    form = await request.post()
    key, body = str(form.get("thread", "")), str(form.get("body", ""))
    thread = next((t for t in conversations(state) if t.key == key), None)
    if thread is None:
        raise web.HTTPBadRequest(text="Unknown conversation")
    if not body.strip():
        raise _back(key)
    service = thread.ours if thread.ours.startswith("MG") else None
    state.receive(
        to=_reply_target(thread),
        from_=thread.handset,
        body=body,
        messaging_service_sid=service,
    )
    await state.store.commit()
    raise _back(key)


def _confirm_html(question: str, field: str, value: str, *, cancel: str, done: str) -> str:
    body = (
        f'<main class="confirm" id="main"><h2>{_e(question)}</h2>'
        '<p class="muted">This cannot be undone.</p>'
        f'<form method="post" action="/inbox/delete" data-follow="{_e(done)}">'
        f'<input type="hidden" name="{field}" value="{_e(value)}">'
        '<input type="hidden" name="confirmed" value="yes">'
        f'<button type="submit">Delete</button> <a href="{_e(cancel)}">Cancel</a></form></main>'
    )
    return _page("Delete?", body, "confirm")


async def _delete(request: web.Request) -> web.Response:
    state = state_of(request)
    form = await request.post()
    sid, key = str(form.get("sid", "")), str(form.get("thread", ""))
    confirmed = form.get("confirmed") == "yes"
    if sid:
        record = state.store.get(sid)
        if record is None:
            raise web.HTTPNotFound(text="No such message")
        back = _link({}, thread=thread_key(record))
        if not confirmed:  # without the script, ask on a page of its own
            question = f"Delete the message “{_preview(record)}”?"
            return web.Response(
                text=_confirm_html(question, "sid", sid, cancel=back, done=back),
                content_type="text/html",
            )
        delete_message(state, sid)
        await state.store.commit()
        raise web.HTTPSeeOther(back)
    if key:
        if not confirmed:
            question = f"Delete the conversation {key}?"
            return web.Response(
                text=_confirm_html(question, "thread", key, cancel=_link({}, thread=key), done="/"),
                content_type="text/html",
            )
        messages, refused = delete_thread(state, key)
        if not messages and not refused:
            raise web.HTTPNotFound(text="Unknown conversation")
        await state.store.commit()
        raise web.HTTPSeeOther("/")
    raise web.HTTPBadRequest(text="sid or thread is required")


async def _switch(request: web.Request) -> web.Response:
    state = state_of(request)
    form = await request.post()
    handset, key = str(form.get("handset", "")), str(form.get("thread", ""))
    if not handset:
        raise web.HTTPBadRequest(text="handset is required")
    if form.get("op") == "clear":
        state.rules.set_fault(handset, None)
    else:
        mode: FaultMode = "always" if form.get("mode") == "always" else "next"
        try:
            state.rules.set_fault(handset, HandsetFault(int(str(form.get("code", ""))), mode))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    raise _back(key)


def _static_handler(name: str, content_type: str) -> Any:
    data = resources.files("connector.emulator").joinpath("inbox", name).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=data, content_type=content_type, headers={"Cache-Control": "no-cache"}
        )

    return handler


def add_inbox_routes(app: web.Application) -> None:
    """
    Register the inbox pages, its form posts and its static files on *app*.

    Args:
        app: The emulator application (the admin routes must be registered too).
    """
    router = app.router
    router.add_get("/", _index)
    router.add_get("/messages/{sid}", _message_page)
    router.add_post("/inbox/reply", _reply)
    router.add_post("/inbox/switch", _switch)
    router.add_post("/inbox/delete", _delete)
    for name, content_type in _STATIC.items():
        router.add_get(f"/inbox/static/{name}", _static_handler(name, content_type))
