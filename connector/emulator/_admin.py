# SPDX-License-Identifier: MIT
"""
The admin API for tests and tools: search, wait, seed, reset, delete, conversations,
refused sends, switches, live events.

Everything lives under ``/emulator/``, answers JSON, and is described by the OpenAPI
document served at ``/emulator/openapi.json`` (``inbox/openapi.json`` in the package).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import attrs
from aiohttp import web
from multidict import MultiDict, MultiMapping

from connector._twilio import encoding_for, split_segments, ucs2_forcing
from connector.emulator._errors import ApiError, error_response
from connector.emulator._handsets import FaultMode, HandsetFault
from connector.emulator._records import MessageRecord
from connector.emulator._search import (
    MessageQuery,
    Thread,
    group_threads,
    page_threads,
    thread_key,
)
from connector.emulator._state import EmulatorState
from connector.emulator._store import RefusedSend
from connector.emulator._validation import bare_number, check_inbound


__all__ = [
    "THREAD_PAGE",
    "add_admin_routes",
    "admin_params",
    "conversations",
    "delete_message",
    "delete_thread",
    "message_detail",
    "query_params",
    "state_of",
]

STATE = web.AppKey("emulator_state", EmulatorState)
"""Where the application keeps its :class:`EmulatorState`."""
_JSON = "application/json"
_DEFAULT_LIMIT = 100
THREAD_PAGE = 50
"""Conversations per page when no ``limit`` is given (admin API and inbox)."""
_MAX_THREAD_PAGE = 1000
_MAX_WAIT = 60.0
_KEEPALIVE = 15.0
# Parameters that hold phone numbers (or a thread key made of them): no number contains
# a space, so a literal "+" in them is the E.164 plus, not form encoding's space.
_NUMBER_PARAMS = frozenset({"to", "from", "To", "From", "handset", "number", "thread"})


def state_of(request: web.Request) -> EmulatorState:
    """
    The emulator state behind a request.

    Args:
        request: An admin or inbox request.

    Returns:
        The state.
    """
    return request.app[STATE]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=_JSON)


def query_params(request: web.Request) -> MultiDict[str]:
    """
    The query string, keeping a literal ``+`` in phone-number parameters.

    Form encoding reads ``+`` as a space, so ``?to=+15551230001``, as people type it and
    as the docs show it, would otherwise look for ``" 15551230001"``. ``%2B`` still
    works, and ``+`` stays a space in every other parameter.

    Args:
        request: The request.

    Returns:
        The parameters.
    """
    params: MultiDict[str] = MultiDict(request.query)
    raw = request.rel_url.raw_query_string
    if "+" not in raw:
        return params
    literal = [
        (key, value)
        for key, value in parse_qsl(raw.replace("+", "%2B"), keep_blank_values=True)
        if key in _NUMBER_PARAMS
    ]
    for key in {key for key, _ in literal}:
        params.popall(key)
    params.extend(literal)
    return params


async def admin_params(request: web.Request) -> MultiMapping[str]:
    """
    Read parameters from a JSON object, a form body, or (for GET) the query string.

    JSON arrays become repeated keys, booleans ``"true"``/``"false"``.

    Args:
        request: The request.

    Returns:
        The parameters as strings.
    """
    pairs = query_params(request)
    if request.content_type == _JSON and request.can_read_body:
        data = await request.json()
        for key, value in data.items():
            for item in value if isinstance(value, list) else [value]:
                pairs.add(key, json.dumps(item) if isinstance(item, bool) else str(item))
    elif request.can_read_body:
        raw = await request.post()
        pairs.extend((k, v) for k, v in raw.items() if isinstance(v, str))
    return pairs


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def message_detail(state: EmulatorState, record: MessageRecord) -> dict[str, Any]:
    """
    Everything the inbox shows about one message.

    Args:
        state: The emulator state (for the callback log).
        record: The message.

    Returns:
        ``message`` (Twilio JSON), ``thread``, ``timeline`` (status and ISO time),
        ``callbacks`` (delivery attempts) and ``encoding`` (``encoding``,
        ``ucs2_characters``, ``segments``).
    """
    return {
        "message": record.to_json(),
        "thread": thread_key(record),
        "timeline": [{"status": status, "at": _iso(at)} for status, at in record.timeline],
        "callbacks": [
            {**attempt.to_json(), "at": _iso(attempt.at)}
            for attempt in state.callbacks.log.get(record.sid, [])
        ],
        "encoding": {
            "encoding": encoding_for(record.body),
            "ucs2_characters": ucs2_forcing(record.body),
            "segments": split_segments(record.body),
        },
    }


def conversations(state: EmulatorState, query: MessageQuery | None = None) -> list[Thread]:
    """
    The conversations, newest activity first, optionally only those with a match.

    Args:
        state: The emulator state.
        query: Keep only conversations with a message it matches; ``None`` keeps all,
            also those with only refused sends.

    Returns:
        The conversations.
    """
    records = state.store.all()
    threads = group_threads(records, state.store.refused())
    if query is None:
        return threads
    keys = {thread_key(record) for record in records if query.matches(record)}
    return [thread for thread in threads if thread.key in keys]


def delete_message(state: EmulatorState, sid: str) -> MessageRecord | None:
    """
    Forget one message and its callback log (not yet committed).

    Args:
        state: The emulator state.
        sid: Message SID.

    Returns:
        The deleted message, or ``None`` if there was none.
    """
    record = state.store.get(sid)
    if record is None:
        return None
    # The lifecycle skips steps of messages it can no longer find.
    state.store.delete(sid)
    state.callbacks.log.pop(sid, None)
    state.events.publish("deleted", thread=thread_key(record), sids=[sid])
    return record


def delete_thread(state: EmulatorState, key: str) -> tuple[int, int]:
    """
    Forget a conversation: its messages, their callback logs and its refused sends.

    Its handset's failure switch and opt-outs stay (``POST /emulator/reset?number=``
    forgets those too).

    Args:
        state: The emulator state.
        key: The conversation, ``"<account side>|<handset>"``.

    Returns:
        How many messages and how many refused sends were deleted.
    """
    doomed = [record.sid for record in state.store.all() if thread_key(record) == key]
    for sid in doomed:
        state.store.delete(sid)
        state.callbacks.log.pop(sid, None)
    refused = state.store.forget_refused(lambda item: item.thread == key)
    if doomed or refused:
        state.events.publish("deleted", thread=key, sids=doomed)
    return len(doomed), refused


def _thread_json(thread: Thread) -> dict[str, Any]:
    last = thread.last
    return {
        "key": thread.key,
        "ours": thread.ours,
        "handset": thread.handset,
        "messages": len(thread.messages),
        "refused": len(thread.refused),
        "last_activity": _iso(thread.activity[0]),
        "last_message": last.to_json() if last is not None else None,
    }


def _refused_json(item: RefusedSend) -> dict[str, Any]:
    row = item.to_row()
    del row["seq"]
    return {**row, "at": _iso(item.at)}


def _query(request: web.Request, params: MultiMapping[str] | None = None) -> MessageQuery:
    source = params if params is not None else query_params(request)
    query = MessageQuery.from_params({key: source[key] for key in source})
    after = source.get("after")
    if after:
        seq = state_of(request).store.position(after)
        if seq is None:
            raise ApiError(400, 20001, f"Unknown message in 'after': {after}")
        query = attrs.evolve(query, after_seq=seq)
    return query


def _limit(request: web.Request, default: int = _DEFAULT_LIMIT, most: int | None = None) -> int:
    raw = request.query.get("limit", str(default))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, 20001, f"Invalid limit: {raw}; it must be a whole number") from None
    if limit < 1:
        raise ApiError(400, 20001, f"Invalid limit: {raw}; it must be at least 1")
    return limit if most is None else min(limit, most)


async def _guarded(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as exc:
        return exc.response()
    except (ValueError, KeyError) as exc:
        return error_response(400, 20001, str(exc))
    return response


async def _list(request: web.Request) -> web.Response:
    state = state_of(request)
    records = state.find(_query(request))
    limit = _limit(request)
    return _json({"messages": [r.to_json() for r in records[:limit]], "total": len(records)})


async def _latest(request: web.Request) -> web.Response:
    records = state_of(request).find(_query(request))
    if not records:
        return error_response(404, 20404, "No message matches")
    return _json(records[0].to_json())


async def _wait(request: web.Request) -> web.Response:
    state = state_of(request)
    query = _query(request)
    try:
        within = min(_MAX_WAIT, max(0.0, float(request.query.get("timeout", "10"))))
    except ValueError:
        raise ApiError(400, 20001, "Invalid timeout") from None
    record = await state.wait_for(query, within)
    if record is None:
        return error_response(408, 20408, f"No message matched {query.describe()} in {within}s")
    return _json(record.to_json())


async def _seed(request: web.Request) -> web.Response:
    state = state_of(request)
    data = await request.json()
    items = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ApiError(400, 20001, "Expected {'messages': [{...}, ...]}")
    records = state.seed(items)
    await state.store.commit()
    return _json({"messages": [r.to_json() for r in records]}, status=201)


async def _detail(request: web.Request) -> web.Response:
    state = state_of(request)
    record = state.store.get(request.match_info["sid"])
    if record is None:
        return error_response(404, 20404, f"No message {request.match_info['sid']}")
    return _json(message_detail(state, record))


async def _delete_message(request: web.Request) -> web.Response:
    state = state_of(request)
    sid = request.match_info["sid"]
    record = delete_message(state, sid)
    if record is None:
        return error_response(404, 20404, f"No message {sid}")
    await state.store.commit()
    return _json({"sid": sid, "thread": thread_key(record)})


async def _threads(request: web.Request) -> web.Response:
    state = state_of(request)
    query = _query(request)
    threads = conversations(state, None if query == MessageQuery() else query)
    page, after = page_threads(
        threads,
        before=request.query.get("before") or None,
        limit=_limit(request, THREAD_PAGE, _MAX_THREAD_PAGE),
    )
    return _json(
        {
            "threads": [_thread_json(t) for t in page],
            "total": len(threads),
            "next_before": after,
        }
    )


async def _delete_thread(request: web.Request) -> web.Response:
    state = state_of(request)
    key = request.match_info["key"]
    messages, refused = delete_thread(state, key)
    if not messages and not refused:
        return error_response(404, 20404, f"No conversation {key}")
    await state.store.commit()
    return _json({"thread": key, "messages": messages, "refused": refused})


async def _refused(request: web.Request) -> web.Response:
    state = state_of(request)
    params = query_params(request)
    thread, to, sender = (params.get(k, "").strip() for k in ("thread", "to", "from"))
    items = [
        item
        for item in reversed(state.store.refused())
        if (not thread or item.thread == thread)
        and (not to or bare_number(item.to) == bare_number(to))
        and (not sender or bare_number(item.from_ or "") == bare_number(sender))
    ]
    limit = _limit(request)
    return _json({"refused": [_refused_json(i) for i in items[:limit]], "total": len(items)})


async def _reset(request: web.Request) -> web.Response:
    params = await admin_params(request)
    number = params.get("number") or None
    state = state_of(request)
    forgotten = await state.reset(number)
    await state.store.commit()
    return _json({"status": "reset", "number": number, "messages": forgotten})


async def _handsets(request: web.Request) -> web.Response:
    return _json({"handsets": state_of(request).rules.handsets()})


async def _set_fault(request: web.Request) -> web.Response:
    state = state_of(request)
    params = await admin_params(request)
    handset = params.get("handset", "").strip()
    if not handset:
        raise ApiError(400, 20001, "handset is required")
    code = params.get("code", "").strip()
    if not code:
        state.rules.set_fault(handset, None)
    else:
        mode = params.get("mode", "next")
        if mode not in ("next", "always"):
            raise ApiError(400, 20001, f"mode must be 'next' or 'always', got {mode!r}")
        chosen: FaultMode = "always" if mode == "always" else "next"
        state.rules.set_fault(handset, HandsetFault(int(code), chosen))
    return _json({"handsets": state.rules.handsets()})


async def _clear_fault(request: web.Request) -> web.Response:
    state = state_of(request)
    handset = query_params(request).get("handset", "").strip()
    if not handset:
        raise ApiError(400, 20001, "handset is required")
    state.rules.set_fault(handset, None)
    return _json({"handsets": state.rules.handsets()})


async def _opt_out(request: web.Request) -> web.Response:
    state = state_of(request)
    params = await admin_params(request)
    number, handset = params.get("number", "").strip(), params.get("handset", "").strip()
    if not number or not handset:
        raise ApiError(400, 20001, "number and handset are required")
    opted_out = params.get("opted_out", "true").lower() not in ("false", "0", "no")
    state.rules.set_opted_out(number, handset, opted_out)
    return _json({"handsets": state.rules.handsets()})


def _webhooks(state: EmulatorState) -> dict[str, str]:
    numbers = {**state.config.incoming, **state.registered}
    return {number: numbers[number] for number in sorted(numbers)}


async def _incoming(request: web.Request) -> web.Response:
    """Where incoming messages are posted, by number: configured, then registered."""
    return _json({"incoming": _webhooks(state_of(request))})


async def _register_incoming(request: web.Request) -> web.Response:
    """Post incoming messages to a number to a webhook (a listener's), or stop (no url)."""
    state = state_of(request)
    params = await admin_params(request)
    number, url = params.get("number", "").strip(), params.get("url", "").strip()
    if not number:
        raise ApiError(400, 20001, "number is required")
    check_inbound(number, "+15005550006")
    if url:
        # The local end of this connection is a listening socket of the emulator.
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        state.own_sockets.add_all([sockname])
        refused = await state.own_sockets.refusal(url)
        if refused is not None:
            raise ApiError(400, 21402, f"Invalid Url: {refused}")
    state.register_webhook(number, url or None)
    return _json({"incoming": _webhooks(state)})


async def _events(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    async with state.events.subscribe() as queue:
        try:
            # The first event tells the page it is connected, so it can catch up on
            # anything that changed between rendering and subscribing.
            hello = json.dumps({"version": state.events.version})
            await response.write(f"retry: 1000\nevent: hello\ndata: {hello}\n\n".encode())
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), _KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if event["type"] == "close":
                    break
                text = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
                await response.write(text.encode())
        except ConnectionResetError:
            # The tab closed: the normal end of every stream, not an error to report.
            pass
    return response


async def _openapi(request: web.Request) -> web.Response:
    text = resources.files("connector.emulator").joinpath("inbox", "openapi.json").read_text()
    return web.Response(text=text, content_type=_JSON)


def add_admin_routes(app: web.Application, state: EmulatorState) -> None:
    """
    Register the admin API on *app* (``POST /emulator/reset`` included).

    Args:
        app: The emulator application.
        state: Its state.
    """
    app[STATE] = state

    async def close_streams(_app: web.Application) -> None:
        state.events.close()

    app.on_shutdown.append(close_streams)

    def route(handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            return await _guarded(request, handler)

        wrapped.__doc__ = handler.__doc__
        return wrapped

    router = app.router
    router.add_post("/emulator/reset", route(_reset))
    router.add_get("/emulator/messages", route(_list))
    router.add_post("/emulator/messages", route(_seed))
    router.add_get("/emulator/messages/latest", route(_latest))
    router.add_get("/emulator/messages/wait", route(_wait))
    router.add_get("/emulator/messages/{sid}", route(_detail))
    router.add_delete("/emulator/messages/{sid}", route(_delete_message))
    router.add_get("/emulator/threads", route(_threads))
    router.add_delete("/emulator/threads/{key}", route(_delete_thread))
    router.add_get("/emulator/refused", route(_refused))
    router.add_get("/emulator/handsets", route(_handsets))
    router.add_post("/emulator/faults", route(_set_fault))
    router.add_delete("/emulator/faults", route(_clear_fault))
    router.add_post("/emulator/opt-outs", route(_opt_out))
    router.add_get("/emulator/incoming", route(_incoming))
    router.add_post("/emulator/incoming", route(_register_incoming))
    router.add_get("/emulator/events", _events)
    router.add_get("/emulator/openapi.json", _openapi)
