# SPDX-License-Identifier: MIT
"""
The web inbox: every SMS as the handset sees it, server-rendered.

Pages are plain HTML built here with :func:`html.escape`; ``inbox/inbox.js`` (no
library, no build step) listens to ``/emulator/events`` and swaps the live regions of
the page with a fresh render, and turns form posts into background requests. Without
JavaScript every form still works through a redirect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from connector.emulator._admin import message_detail, query_params, state_of
from connector.emulator._errors import ApiError
from connector.emulator._handsets import FAULT_CODES, FaultMode, HandsetFault
from connector.emulator._records import MessageRecord
from connector.emulator._search import MessageQuery, thread_key, thread_parties
from connector.emulator._state import EmulatorState
from connector.emulator._validation import bare_number


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


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S")


def _datetime(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _badge(status: str) -> str:
    tone = "bad" if status in _FINAL_BAD else "good" if status == "delivered" else "neutral"
    return f'<span class="badge {tone}" data-status="{_e(status)}">{_e(status)}</span>'


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/inbox/static/inbox.css">'
        '<script src="/inbox/static/inbox.js" defer></script>'
        '</head><body data-live="connecting">'
        '<header class="top"><a class="brand" href="/">SMS inbox</a>'
        '<span class="muted">Twilio emulator</span>'
        '<span class="live-dot" title="live updates"></span>'
        '<a class="muted right" href="/emulator/openapi.json">admin API</a></header>'
        f"{body}</body></html>"
    )


class _Thread:
    def __init__(self, key: str, ours: str, handset: str) -> None:
        self.key, self.ours, self.handset = key, ours, handset
        self.records: list[MessageRecord] = []

    @property
    def last(self) -> MessageRecord:
        return max(self.records, key=lambda r: (r.date_updated, r.seq))

    @property
    def activity(self) -> tuple[float, int]:
        return max((r.date_updated, r.seq) for r in self.records)


def _threads(records: Iterable[MessageRecord]) -> list[_Thread]:
    threads: dict[str, _Thread] = {}
    for record in records:
        key = thread_key(record)
        if key not in threads:
            ours, handset = thread_parties(record)
            threads[key] = _Thread(key, ours, handset)
        threads[key].records.append(record)
    return sorted(threads.values(), key=lambda t: t.activity, reverse=True)


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


def _thread_list(threads: list[_Thread], params: Mapping[str, str], selected: str) -> str:
    if not threads:
        return '<p class="empty">No messages yet. Send one through the API.</p>'
    items = []
    for thread in threads:
        last = thread.last
        current = " current" if thread.key == selected else ""
        preview = last.body[:80] or ("(media)" if last.media else "(empty)")
        items.append(
            f'<li class="thread{current}" data-thread="{_e(thread.key)}">'
            f'<a href="{_e(_link(params, thread=thread.key))}">'
            f'<span class="who">{_e(thread.handset)}</span>'
            f'<span class="via">via {_e(thread.ours)}</span>'
            f'<span class="preview">{_e(preview)}</span>'
            f'<span class="meta">{_badge(last.status)} {_time(last.date_updated)}'
            f" · {len(thread.records)}</span></a></li>"
        )
    return f'<ul class="threads">{"".join(items)}</ul>'


def _bubble(record: MessageRecord) -> str:
    side = "in" if record.direction == "inbound" else "out"
    error = (
        f'<span class="error">{_e(record.error_code)} {_e(record.error_message)}</span>'
        if record.error_code is not None
        else ""
    )
    media = "".join(
        f'<a class="media" href="{_e(m.url)}" rel="noreferrer">{_e(m.url)}</a>'
        for m in record.media
    )
    auto = ' <span class="muted">auto-reply</span>' if record.direction == "outbound-reply" else ""
    return (
        f'<li class="bubble {side}" data-sid="{_e(record.sid)}">'
        f'<div class="text">{_e(record.body)}</div>{media}'
        f'<div class="meta"><a href="/messages/{_e(record.sid)}">{_time(record.date_created)}</a>'
        f" {_badge(record.status)}{auto} {error}</div></li>"
    )


def _switches(state: EmulatorState, thread: _Thread) -> str:
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


def _thread_view(state: EmulatorState, thread: _Thread) -> str:
    reply_to = _reply_target(thread)
    webhook = state.config.incoming.get(bare_number(reply_to))
    hook = (
        f"replies go to <code>{_e(webhook)}</code>"
        if webhook
        else f"no webhook is configured for {_e(reply_to)}; replies are only stored"
    )
    bubbles = "".join(_bubble(r) for r in sorted(thread.records, key=lambda r: r.seq))
    return (
        f'<section class="thread-view" data-thread="{_e(thread.key)}">'
        f'<div class="thread-head"><h2>{_e(thread.handset)}</h2>'
        f'<span class="muted">with {_e(thread.ours)}</span></div>'
        f'<div id="switches" data-live>{_switches(state, thread)}</div>'
        f'<ol class="bubbles" id="bubbles" data-live>{bubbles}</ol>'
        '<form method="post" action="/inbox/reply" class="reply" id="reply-form">'
        f'<input type="hidden" name="thread" value="{_e(thread.key)}">'
        '<textarea name="body" rows="2" placeholder="Reply as the handset…" '
        'aria-label="Reply as the handset" required></textarea>'
        f'<button type="submit">Send reply</button><p class="muted">{hook}</p></form></section>'
    )


def _results(records: list[MessageRecord]) -> str:
    rows = "".join(
        f'<tr data-sid="{_e(r.sid)}"><td><a href="/messages/{_e(r.sid)}">{_datetime(r.date_created)}</a></td>'
        f"<td>{_e(r.from_)}</td><td>{_e(r.to)}</td><td>{_badge(r.status)}</td>"
        f"<td>{_e(r.error_code)}</td><td>{_e(r.body[:120])}</td></tr>"
        for r in records[:500]
    )
    return (
        f'<section class="results" id="results" data-live><h2>{len(records)} matching</h2>'
        "<table><thead><tr><th>Created</th><th>From</th><th>To</th><th>Status</th>"
        f"<th>Error</th><th>Body</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _reply_target(thread: _Thread) -> str:
    # Replies go to the number that last wrote to the handset (a Messaging Service
    # thread has no number of its own).
    if not thread.ours.startswith("MG"):
        return thread.ours
    for record in sorted(thread.records, key=lambda r: r.seq, reverse=True):
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
    records = state.store.all()
    matching = query.select(records) if filters else records
    keys = {thread_key(r) for r in matching}
    threads = [t for t in _threads(records) if t.key in keys]
    selected = params.get("thread", "")
    chosen = next((t for t in _threads(records) if t.key == selected), None)
    if chosen is not None:
        main = _thread_view(state, chosen)
    elif filters:
        main = _results(sorted(matching, key=lambda r: r.seq, reverse=True))
    else:
        main = '<p class="empty">Pick a conversation.</p>'
    body = (
        f'<main class="layout"><aside class="sidebar">{_filters_form(params)}{error}'
        f'<nav id="threads" data-live>{_thread_list(threads, params, selected)}</nav></aside>'
        f'<div class="main" id="main" data-live>{main}</div></main>'
    )
    return _page("SMS inbox", body)


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
    body = (
        '<main class="detail" id="main" data-live>'
        f'<p><a href="{_e(thread_link)}">← conversation</a></p>'
        f"<h2>{_e(record.sid)}</h2>"
        '<div class="cols"><section><h3>Status timeline</h3>'
        f'<ol class="timeline" id="timeline">{timeline}</ol>'
        f'<h3>Encoding</h3><p id="encoding"><strong>{_e(encoding["encoding"])}</strong>: {why}</p>'
        f'<h3>{len(encoding["segments"])} segment(s)</h3><ol class="segments">{segments}</ol></section>'
        "<section><h3>Twilio JSON</h3>"
        f'<pre class="json">{_e(json.dumps(detail["message"], indent=2, ensure_ascii=False))}</pre></section></div>'
        f'<h3>Status callback deliveries</h3><div id="callbacks">{log}</div></main>'
    )
    return _page(f"Message {record.sid}", body)


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
    thread = next((t for t in _threads(state.store.all()) if t.key == key), None)
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
    for name, content_type in _STATIC.items():
        router.add_get(f"/inbox/static/{name}", _static_handler(name, content_type))
