# SPDX-License-Identifier: MIT
"""
The admin API for tests and tools: search, wait, seed, reset, switches, live events.

Everything lives under ``/emulator/``, answers JSON, and is described by the OpenAPI
document served at ``/emulator/openapi.json`` (``inbox/openapi.json`` in the package).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import attrs
from aiohttp import web
from multidict import MultiDict, MultiMapping

from connector._twilio import encoding_for, split_segments, ucs2_forcing
from connector.emulator._errors import ApiError, error_response
from connector.emulator._handsets import FaultMode, HandsetFault
from connector.emulator._records import MessageRecord
from connector.emulator._search import MessageQuery, thread_key
from connector.emulator._state import EmulatorState


__all__ = ["add_admin_routes", "admin_params", "message_detail", "state_of"]

STATE = web.AppKey("emulator_state", EmulatorState)
"""Where the application keeps its :class:`EmulatorState`."""
_JSON = "application/json"
_DEFAULT_LIMIT = 100
_MAX_WAIT = 60.0
_KEEPALIVE = 15.0


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


async def admin_params(request: web.Request) -> MultiMapping[str]:
    """
    Read parameters from a JSON object, a form body, or (for GET) the query string.

    JSON arrays become repeated keys, booleans ``"true"``/``"false"``.

    Args:
        request: The request.

    Returns:
        The parameters as strings.
    """
    pairs: MultiDict[str] = MultiDict(request.query)
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


def _query(request: web.Request, params: MultiMapping[str] | None = None) -> MessageQuery:
    source = params if params is not None else request.query
    query = MessageQuery.from_params({key: source[key] for key in source})
    after = source.get("after")
    if after:
        seq = state_of(request).store.position(after)
        if seq is None:
            raise ApiError(400, 20001, f"Unknown message in 'after': {after}")
        query = attrs.evolve(query, after_seq=seq)
    return query


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(_DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, 20001, f"Invalid limit: {raw}; it must be a whole number") from None
    if limit < 1:
        raise ApiError(400, 20001, f"Invalid limit: {raw}; it must be at least 1")
    return limit


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
    handset = request.query.get("handset", "").strip()
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
        # The first event tells the page it is connected, so it can catch up on anything
        # that changed between rendering and subscribing.
        await response.write(
            f"retry: 1000\nevent: hello\ndata: {json.dumps({'version': state.events.version})}\n\n".encode()
        )
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), _KEEPALIVE)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event["type"] == "close":
                break
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
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
    router.add_get("/emulator/handsets", route(_handsets))
    router.add_post("/emulator/faults", route(_set_fault))
    router.add_delete("/emulator/faults", route(_clear_fault))
    router.add_post("/emulator/opt-outs", route(_opt_out))
    router.add_get("/emulator/events", _events)
    router.add_get("/emulator/openapi.json", _openapi)
