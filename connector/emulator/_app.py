# SPDX-License-Identifier: MIT
"""
The aiohttp application: Twilio's Messages API plus the ``/emulator/*`` admin endpoints.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiMapping

from connector.emulator._admin import STATE as STATE_KEY
from connector.emulator._admin import add_admin_routes, admin_params
from connector.emulator._config import EmulatorConfig
from connector.emulator._errors import ApiError, error_response
from connector.emulator._guard import host_guard
from connector.emulator._inbox import add_inbox_routes
from connector.emulator._listing import message_filter, page_envelope, page_size_of, select_page
from connector.emulator._media import (
    MAX_MEDIA_BYTES,
    StoredMedia,
    fetch_loopback,
    placeholder,
)
from connector.emulator._records import API_VERSION, MessageRecord
from connector.emulator._state import EmulatorState
from connector.emulator._validation import check_inbound, validate_send


__all__ = ["STATE_KEY", "create_app"]

_API_PREFIX = f"/{API_VERSION}/"
_ACCOUNT = f"/{API_VERSION}/Accounts/{{account}}"
_JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_PAGE = 2**31 - 1
# Every stored time must print as a date (RFC 2822, ISO 8601): a year of margin below 9999.
_LATEST_CLOCK_TEXT = "9999-01-01"
_LATEST_CLOCK = datetime.fromisoformat(_LATEST_CLOCK_TEXT).replace(tzinfo=UTC).timestamp()
log = logging.getLogger("connector.emulator")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=_JSON)


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _not_found(request: web.Request) -> ApiError:
    return ApiError(404, 20404, f"The requested resource {request.path} was not found")


async def _form(request: web.Request) -> MultiMapping[str]:
    try:
        raw = await request.post()
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, 20001, "The request body is not a valid form") from None
    return MultiDict((key, value) for key, value in raw.items() if isinstance(value, str))


def _make_api_middleware(state: EmulatorState) -> Any:
    config = state.config
    accepted = [_basic(config.account_sid, config.auth_token)]
    if config.api_key and config.api_secret:
        accepted.append(_basic(config.api_key, config.api_secret))
    accepted_bytes = [value.encode() for value in accepted]

    def authenticate(request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if not header:
            raise ApiError(401, 20003, "Authentication Error - No credentials provided")
        # The scheme name is case-insensitive (RFC 7617); the credentials are not.
        scheme, _, credentials = header.strip().partition(" ")
        encoded = f"Basic {credentials.strip()}".encode() if scheme.lower() == "basic" else b""
        # compare_digest on every candidate: no early exit that leaks which one matched.
        matched = [hmac.compare_digest(encoded, candidate) for candidate in accepted_bytes]
        if not any(matched):
            raise ApiError(401, 20003, _auth_failure(header, config))
        parts = request.path.split("/", 4)
        # The account is the path segment after Accounts, also as Accounts/AC....json.
        if len(parts) > 3 and parts[2] == "Accounts":
            account = parts[3].removesuffix(".json")
            if account != config.account_sid:
                raise ApiError(401, 20003, "Authenticate")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(_API_PREFIX):
            return await handler(request)
        stats = state.stats
        stats.requests += 1
        decision = state.faults.decide()
        if decision.error_status is not None:
            stats.faults_error += 1
            code = 20500 if decision.error_status == 500 else 20503
            return error_response(decision.error_status, code, "Injected fault")
        if decision.delay:
            stats.faults_delayed += 1
            await asyncio.sleep(decision.delay)
        try:
            authenticate(request)
            if state.throttle is not None and not state.throttle.admit(config.account_sid):
                stats.throttled += 1
                limited = error_response(429, 20429, "Too Many Requests")
                retry = state.throttle.retry_after(config.account_sid)
                limited.headers["Retry-After"] = str(max(1, round(retry)))
                return limited
            response: web.StreamResponse = await handler(request)
        except ApiError as exc:
            error = exc.response()
            if exc.status == 401:
                error.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            response = error
        except web.HTTPNotFound:
            response = _not_found(request).response()
        except web.HTTPMethodNotAllowed as exc:
            response = error_response(405, 20004, f"Method not allowed: {exc.method}")
        except web.HTTPException as exc:
            # aiohttp's own refusals (e.g. 413 for a body over client_max_size) would be
            # text/plain; clients expect Twilio's JSON error shape on every API answer.
            response = error_response(exc.status, 20000 + exc.status, exc.reason)
        except Exception:
            log.exception("emulator API handler failed: %s %s", request.method, request.path)
            response = error_response(500, 20500, "Internal Server Error")
        if decision.drop:
            stats.faults_dropped += 1
            # Processed but never answered: the client sees the connection close.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if not response.prepared:
            # Twilio's clock, as a client reads it (the Date header): the emulator's, which
            # may be manual or scaled, not the machine's.
            response.headers["Date"] = _http_date(state.clock.now())
        return response

    return middleware


_date_cache: dict[int, str] = {}


def _http_date(timestamp: float) -> str:
    second = int(timestamp)
    text = _date_cache.get(second)
    if text is None:
        if len(_date_cache) > 64:
            _date_cache.clear()
        text = _date_cache[second] = email.utils.formatdate(second, usegmt=True)
    return text


def _auth_failure(header: str, config: EmulatorConfig) -> str:
    try:
        user = base64.b64decode(header.split(" ", 1)[1]).decode().split(":", 1)[0]
    except (IndexError, ValueError, binascii.Error):
        return "Authentication Error - invalid username"
    if user in (config.account_sid, config.api_key):
        return "Authenticate"
    return "Authentication Error - invalid username"


def _message(request: web.Request, key: str = "sid") -> MessageRecord:
    record = _state(request).store.get(request.match_info[key])
    if record is None:
        raise _not_found(request)
    return record


async def _webhook_refusal(request: web.Request, url: str) -> str | None:
    own = _state(request).own_sockets
    # The local end of this connection is a listening socket, also under a bare
    # create_app (aiohttp's test server, web.run_app) that EmulatorServer never saw.
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    own.add_all([sockname])
    return await own.refusal(url)


async def _create(request: web.Request) -> web.Response:
    state = _state(request)
    send = validate_send(await _form(request), owned=state.owned, now=state.clock.now())
    if send.status_callback is not None:
        refused = await _webhook_refusal(request, send.status_callback)
        if refused is not None:
            raise ApiError(400, 21609, f"Invalid 'StatusCallback': {refused}")
    record = state.create(send)
    text = json.dumps(record.to_json())
    await state.store.commit()
    state.start(record)
    return web.Response(status=201, text=text, content_type=_JSON)


def _page_index(request: web.Request) -> int:
    raw = request.query.get("Page", "0")
    try:
        page = max(0, int(raw))
    except ValueError:
        raise ApiError(400, 20001, "Invalid Page") from None
    if page > _MAX_PAGE:
        # Page x PageSize must stay an index Python can slice with.
        raise ApiError(400, 20001, f"Invalid Page: {raw}; the largest page is {_MAX_PAGE}")
    return page


async def _list(request: web.Request) -> web.Response:
    state = _state(request)
    query = request.query
    match, filters = message_filter(query)
    page_size, page = page_size_of(query), _page_index(request)
    records, has_next = select_page(state.store, match, query, page_size, page)
    return _json(
        page_envelope(
            request.path,
            "messages",
            [record.to_json() for record in records],
            filters=filters,
            page=page,
            page_size=page_size,
            token=query.get("PageToken"),
            first_sid=records[0].sid if records else None,
            last_sid=records[-1].sid if records else None,
            has_next=has_next,
        )
    )


async def _fetch(request: web.Request) -> web.Response:
    return _json(_message(request).to_json())


async def _update(request: web.Request) -> web.Response:
    state = _state(request)
    record = _message(request)
    form = await _form(request)
    status, body = form.get("Status"), form.get("Body")
    if status is not None:
        if status != "canceled":
            raise ApiError(400, 20001, f"Invalid Status: {status}; only 'canceled' is allowed")
        if not state.cancel(record):
            raise ApiError(400, 30409, "This message cannot be canceled")
    if body is not None:
        if body:
            raise ApiError(400, 20001, "Body can only be updated to an empty string (redact)")
        if not state.is_finished(record):
            raise ApiError(400, 20009, "Cannot redact this resource before it is complete")
        record.body = ""
        record.date_updated = state.clock.now()
        state.store.changed(record)
    await state.store.commit()
    return _json(record.to_json())


async def _delete(request: web.Request) -> web.Response:
    state = _state(request)
    record = _message(request)
    if not state.is_finished(record):
        raise ApiError(400, 20009, "Cannot delete this resource before it is complete")
    state.store.delete(record.sid)
    await state.store.commit()
    return web.Response(status=204)


async def _media_list(request: web.Request) -> web.Response:
    record = _message(request, "message")
    query = request.query
    page_size, page = page_size_of(query), _page_index(request)
    items = record.media[::-1]
    token = query.get("PageToken")
    if token:
        sids = [item.sid for item in items]
        if token[:2] not in ("PA", "PB") or token[2:] not in sids:
            raise ApiError(400, 21481, "Invalid PageToken")
        index = sids.index(token[2:])
        chosen = (
            items[index + 1 : index + 1 + page_size]
            if token.startswith("PA")
            else items[max(0, index - page_size) : index]
        )
    else:
        chosen = items[page * page_size : (page + 1) * page_size]
    has_next = bool(chosen) and items.index(chosen[-1]) < len(items) - 1
    return _json(
        page_envelope(
            request.path,
            "media_list",
            [item.to_json(record.account_sid, record.sid) for item in chosen],
            filters=(),
            page=page,
            page_size=page_size,
            token=token,
            first_sid=chosen[0].sid if chosen else None,
            last_sid=chosen[-1].sid if chosen else None,
            has_next=has_next,
        )
    )


def _media(request: web.Request) -> tuple[MessageRecord, int]:
    record = _message(request, "message")
    for index, item in enumerate(record.media):
        if item.sid == request.match_info["sid"]:
            return record, index
    raise _not_found(request)


async def _media_fetch(request: web.Request) -> web.Response:
    record, index = _media(request)
    return _json(record.media[index].to_json(record.account_sid, record.sid))


async def _media_content(request: web.Request) -> web.Response:
    # Twilio answers the media URL with a redirect to its media store, which needs no
    # credentials; so does the emulator, to its own store on the host the client used.
    record, index = _media(request)
    store = _state(request).media.store_url(
        f"{request.scheme}://{request.host}", record.sid, record.media[index].sid
    )
    return web.json_response({"redirect_to": store}, status=302, headers={"Location": store})


async def _media_store(request: web.Request) -> web.Response:
    state = _state(request)
    record = state.store.get(request.match_info["message"])
    item = next(
        (m for m in (record.media if record else ()) if m.sid == request.match_info["sid"]), None
    )
    if item is None:
        return web.Response(status=404, text="no such media\n")
    stored = state.media.get(item.sid)
    if stored is None:
        stored = await fetch_loopback(item.url)
        if stored is not None:
            state.media.put(item.sid, stored)
    if stored is None:
        stored = StoredMedia(item.content_type, placeholder(item.content_type))
    headers = {"Content-Type": stored.content_type, "Cache-Control": "private, max-age=3600"}
    if stored.filename:
        quoted = stored.filename.replace("\\", "_").replace('"', "_")
        headers["Content-Disposition"] = f'inline; filename="{quoted}"'
    return web.Response(body=stored.content, headers=headers)


async def _uploaded_media(request: web.Request) -> list[StoredMedia]:
    """The files posted as ``Media`` parts of a multipart inbound message."""
    if request.content_type != "multipart/form-data":
        return []
    files = []
    for field in (await request.post()).getall("Media", []):
        if not isinstance(field, web.FileField):
            continue
        data = field.file.read(MAX_MEDIA_BYTES + 1)
        if len(data) > MAX_MEDIA_BYTES:
            raise ApiError(400, 21620, f"Media file {field.filename} is over 5 MB")
        kind = field.content_type
        if kind in ("", "application/octet-stream"):
            kind = _content_type_of(field.filename) or "application/octet-stream"
        files.append(StoredMedia(kind, data, field.filename or None))
    return files


def _content_type_of(name: str) -> str | None:
    import mimetypes

    return mimetypes.guess_type(name)[0]


async def _media_delete(request: web.Request) -> web.Response:
    state = _state(request)
    record, index = _media(request)
    del record.media[index]
    state.store.changed(record)
    await state.store.commit()
    return web.Response(status=204)


async def _api_not_found(request: web.Request) -> web.Response:
    # The catch-all route also receives known paths with an unsupported method (PUT on
    # Messages.json): those are 405, as Twilio answers, not 404.
    for resource in request.app.router.resources():
        if resource is request.match_info.route.resource:
            continue
        info = resource.get_info()
        pattern = info.get("pattern")
        if (pattern is not None and pattern.fullmatch(request.path)) or info.get(
            "path"
        ) == request.path:
            raise web.HTTPMethodNotAllowed(request.method, _allowed(resource))
    raise _not_found(request)


def _allowed(resource: web.AbstractResource) -> list[str]:
    return sorted({route.method for route in resource if route.method != "*"})


# Admin endpoints: loopback-only by default, so neither authenticated nor throttled.


async def _healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _stats(request: web.Request) -> web.Response:
    return _json(_state(request).snapshot())


async def _admin_params(request: web.Request) -> MultiMapping[str]:
    return await admin_params(request)


async def _inbound(request: web.Request) -> web.Response:
    state = _state(request)
    if state.media.base_url is None:
        state.media.base_url = f"{request.scheme}://{request.host}"
    params = await _admin_params(request)
    to, sender = params.get("To", "").strip(), params.get("From", "").strip()
    if not to or not sender:
        return error_response(400, 21604 if not to else 21603, "To and From are required")
    try:
        check_inbound(to, sender)
        uploads = await _uploaded_media(request)
    except ApiError as exc:
        return exc.response()
    webhook = params.get("Url") or None
    if webhook is not None:
        refused = await _webhook_refusal(request, webhook)
        if refused is not None:
            return error_response(400, 21402, f"Invalid Url: {refused}")
    record = state.receive(
        to=to,
        from_=sender,
        body=params.get("Body", ""),
        media_urls=params.getall("MediaUrl", []),
        messaging_service_sid=params.get("MessagingServiceSid"),
        webhook=webhook,
        media_files=uploads,
    )
    text = json.dumps(record.to_json())
    await state.store.commit()
    return web.Response(status=201, text=text, content_type=_JSON)


async def _advance(request: web.Request) -> web.Response:
    state = _state(request)
    params = await _admin_params(request)
    raw = params.get("seconds") or request.query.get("seconds", "0")
    try:
        seconds = float(raw)
    except ValueError:
        return error_response(400, 20001, f"seconds must be a number, got {raw!r}")
    # NaN or a clock past year 9999 would make every date unprintable: 500s until a restart.
    latest = _LATEST_CLOCK - state.clock.now()
    if not 0 <= seconds <= latest:
        return error_response(
            400,
            20001,
            f"seconds must be a number from 0 to {latest:.0f} (the clock stops at "
            f"{_LATEST_CLOCK_TEXT}), got {raw!r}",
        )
    state.clock.advance(seconds)
    await state.store.commit()
    return _json({"now": state.clock.now()})


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """
    Build the emulator as an aiohttp application.

    The store opens on startup and closes on cleanup, so the app works with
    ``web.run_app``, ``AppRunner`` and aiohttp's test utilities alike.

    Args:
        config: The configuration; defaults to generated credentials, in-memory storage.

    Returns:
        The application; its state is ``app[STATE_KEY]``.
    """
    state = EmulatorState(config or EmulatorConfig())
    app = web.Application(middlewares=[host_guard(state.config), _make_api_middleware(state)])
    add_admin_routes(app, state)
    add_inbox_routes(app)

    async def startup(_app: web.Application) -> None:
        await state.open()

    async def cleanup(_app: web.Application) -> None:
        await state.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    messages = f"{_ACCOUNT}/Messages"
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/emulator/stats", _stats)
    app.router.add_post("/emulator/inbound", _inbound)
    app.router.add_post("/emulator/advance", _advance)
    app.router.add_post(f"{messages}.json", _create)
    app.router.add_get(f"{messages}.json", _list)
    app.router.add_get(f"{messages}/{{message}}/Media.json", _media_list)
    app.router.add_get(f"{messages}/{{message}}/Media/{{sid}}.json", _media_fetch)
    app.router.add_delete(f"{messages}/{{message}}/Media/{{sid}}.json", _media_delete)
    # After the .json routes, which the content route's {sid} would also match.
    app.router.add_get(f"{messages}/{{message}}/Media/{{sid}}", _media_content)
    app.router.add_get("/emulator/media/{message}/{sid}", _media_store)
    app.router.add_get(f"{messages}/{{sid}}.json", _fetch)
    app.router.add_post(f"{messages}/{{sid}}.json", _update)
    app.router.add_delete(f"{messages}/{{sid}}.json", _delete)
    app.router.add_route("*", f"/{API_VERSION}/{{tail:.*}}", _api_not_found)
    return app
