"""The generic executor, through a mock transport: requests, auth, errors, retries, paging."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import ACCOUNT_SID, API_KEY, API_SECRET, AUTH_TOKEN
from virtual_clock import run_virtual

from connector import (
    AuthenticationError,
    BadRequestError,
    ConnectError,
    Connection,
    HttpRequest,
    HttpResponse,
    InvalidInputError,
    MessageMayHaveBeenSentError,
    MockTransport,
    NotFoundError,
    RateLimitError,
    ReadError,
    Record,
    RetryPolicy,
    ServerError,
    UnsafeLinkError,
    load_manifest,
    open_connection,
    to_json_data,
)
from connector.models import Message, MessageListV2, MessageStatus


BASE = "https://api.twilio.com"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SID = "SM" + "1" * 32
SMS = {"from": "+15005550006", "to": "+15551234567", "body": "hello"}


def message(**overrides: Any) -> dict[str, Any]:
    body = {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": "hello",
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_sent": None,
        "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+15005550006",
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": SID,
        "status": "queued",
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}/Media.json"
        },
        "to": "+15551234567",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}.json",
    }
    body.update(overrides)
    return body


def answer(status: int, body: Any = None, **headers: str) -> HttpResponse:
    raw = b"" if body is None else json.dumps(body).encode()
    return HttpResponse(status, raw, {k.replace("_", "-").lower(): v for k, v in headers.items()})


def twilio_error(status: int, code: int, text: str = "nope") -> HttpResponse:
    return answer(
        status,
        {
            "code": code,
            "message": text,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def scripted(*responses: HttpResponse | Exception) -> MockTransport:
    """A transport that answers with *responses* in order."""
    queue = list(responses)

    def handler(request: HttpRequest) -> HttpResponse:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return MockTransport(handler)


def connect(transport: MockTransport, **kw: Any) -> Connection:
    kw.setdefault("retry", RetryPolicy(random=lambda: 0.0))
    kw.setdefault("rate_limit", False)
    return Connection(ACCOUNT_SID, AUTH_TOKEN, transport=transport, env={}, **kw)


async def test_send_posts_the_form_and_returns_a_typed_message() -> None:
    """A send is a form POST to Messages.json; the answer becomes a typed Message."""
    transport = scripted(answer(201, message()))
    async with connect(transport) as conn:
        result = await conn.call(
            "send_text_message", {**SMS, "media_url": ["https://x.io/a", "https://x.io/b"]}
        )
    (request,) = transport.requests
    assert request.method == "POST"
    assert request.url == BASE + MESSAGES
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body is not None
    assert parse_qsl(request.body.decode()) == [
        ("From", "+15005550006"),
        ("To", "+15551234567"),
        ("Body", "hello"),
        ("MediaUrl", "https://x.io/a"),
        ("MediaUrl", "https://x.io/b"),
    ]
    assert isinstance(result, Message)
    assert result.status is MessageStatus.QUEUED
    assert result.num_segments == 1 and result.num_media == 0
    assert result.date_created is not None and result.date_created.utcoffset() is not None
    assert to_json_data(result)["date_created"] == "2023-08-24T05:01:45.000Z"
    assert to_json_data(result)["from"] == "+15005550006"


async def test_call_validated_sends_validated_inputs_as_call_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An executor that validated the inputs sends them without a second validation."""
    from connector._validation import CompiledAction, compile_action

    transport = scripted(answer(201, message()), answer(201, message()))
    async with connect(transport) as conn:
        clean = compile_action(conn.action("send_text_message")).validate(SMS)
        await conn.call("send_text_message", SMS)
        validated: list[Any] = []
        original = CompiledAction.validate

        def recording(self: CompiledAction, inputs: Any) -> dict[str, Any]:
            validated.append(inputs)
            return original(self, inputs)

        monkeypatch.setattr(CompiledAction, "validate", recording)
        result = await conn.call_validated("send_text_message", clean)
    first, second = transport.requests
    assert first.body == second.body
    assert isinstance(result, Message)
    assert validated == []


async def test_account_credentials_are_sent_as_basic_auth() -> None:
    """Account SID and Auth Token authenticate by default."""
    transport = scripted(answer(200, message()))
    async with connect(transport) as conn:
        await conn.call("get_message", {"MessageId": SID})
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert transport.requests[0].headers["Authorization"] == f"Basic {expected}"
    assert (
        transport.requests[0].url == f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}.json"
    )


async def test_api_keys_authenticate_with_the_account_in_the_path() -> None:
    """With an API key, the key and secret authenticate and the Account SID stays in the URL."""
    transport = scripted(answer(200, message()))
    conn = Connection(
        ACCOUNT_SID, api_key=API_KEY, api_secret=API_SECRET, transport=transport, env={}
    )
    async with conn:
        await conn.call("get_message", {"MessageId": SID})
    expected = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    assert transport.requests[0].headers["Authorization"] == f"Basic {expected}"
    assert f"/Accounts/{ACCOUNT_SID}/" in transport.requests[0].url


async def test_credentials_and_base_url_come_from_the_environment() -> None:
    """TWILIO_* variables fill what is not given."""
    transport = scripted(answer(200, message()))
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_BASE_URL": "http://127.0.0.1:9/",
    }
    async with Connection(transport=transport, env=env) as conn:
        await conn.call("get_message", {"MessageId": SID})
    assert transport.requests[0].url.startswith("http://127.0.0.1:9/2010-04-01/")


@pytest.mark.parametrize(
    ("edge", "region", "host"),
    [
        ("dublin", "ie1", "api.dublin.ie1.twilio.com"),
        ("sydney", None, "api.sydney.us1.twilio.com"),
        ("sao-paulo", "br1", "api.sao-paulo.br1.twilio.com"),
        (None, "au1", "api.au1.twilio.com"),
        (None, None, "api.twilio.com"),
    ],
)
def test_edge_and_region_rewrite_the_default_host_as_twilio_python_does(
    edge: str | None, region: str | None, host: str
) -> None:
    """TWILIO_EDGE and TWILIO_REGION make api.{edge}.{region}.twilio.com; an edge alone means us1."""
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    env.update({"TWILIO_EDGE": edge} if edge else {})
    env.update({"TWILIO_REGION": region} if region else {})
    assert Connection(env=env).base_url == f"https://{host}"


def test_a_region_without_an_edge_warns_of_the_retired_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """TWILIO_REGION alone gives twilio-python's legacy api.{region}.twilio.com, with a warning."""
    conn = Connection(ACCOUNT_SID, AUTH_TOKEN, env={"TWILIO_REGION": "ie1"})
    assert conn.base_url == "https://api.ie1.twilio.com"
    assert "set TWILIO_EDGE too" in caplog.text


def test_edge_and_region_arguments_win_over_the_environment() -> None:
    """edge= and region= are read before TWILIO_EDGE and TWILIO_REGION, as in twilio-python."""
    env = {"TWILIO_EDGE": "tokyo", "TWILIO_REGION": "jp1"}
    conn = Connection(ACCOUNT_SID, AUTH_TOKEN, edge="dublin", region="ie1", env=env)
    assert conn.base_url == "https://api.dublin.ie1.twilio.com"


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8999", "http://localhost:41234", "https://proxy.example.com"]
)
def test_an_explicit_base_url_is_never_rewritten(base_url: str) -> None:
    """A loopback emulator (or any base URL given) stays as given whatever the edge and region."""
    env = {"TWILIO_EDGE": "dublin", "TWILIO_REGION": "ie1"}
    assert Connection(ACCOUNT_SID, AUTH_TOKEN, base_url=base_url, env=env).base_url == base_url
    from_env = {**env, "TWILIO_BASE_URL": base_url}
    assert Connection(ACCOUNT_SID, AUTH_TOKEN, env=from_env).base_url == base_url


async def test_the_embedded_emulator_is_not_rewritten_by_edge_or_region() -> None:
    """With TWILIO_EDGE and TWILIO_REGION set and no credentials, calls still go to the loopback emulator."""
    env = {"TWILIO_EDGE": "dublin", "TWILIO_REGION": "ie1"}
    async with open_connection(env=env) as conn:
        assert urlsplit(conn.base_url).hostname == "127.0.0.1"
        message = await conn.call("send_text_message", SMS)
    assert message.to == SMS["to"]


def test_edge_and_region_must_be_location_ids() -> None:
    """An edge or region that is not a DNS label is refused instead of making another host."""
    with pytest.raises(InvalidInputError) as caught:
        Connection(ACCOUNT_SID, AUTH_TOKEN, env={"TWILIO_EDGE": "evil.example.com/"})
    assert [issue.key for issue in caught.value.issues] == ["edge"]
    assert "TWILIO_EDGE" in str(caught.value)


def test_bad_connection_values_are_reported_together() -> None:
    """A malformed Account SID and missing credentials are both named."""
    with pytest.raises(InvalidInputError) as caught:
        Connection("AC123", env={})
    keys = [issue.key for issue in caught.value.issues]
    assert keys == ["account_sid", "credentials"]


async def test_invalid_inputs_send_nothing_and_use_no_budget() -> None:
    """A rejected call makes no request and takes nothing from the limiter."""

    class CountingLimiter:
        acquired = 0

        async def acquire(self) -> None:
            self.acquired += 1

    limiter = CountingLimiter()
    transport = scripted(answer(201, message()))
    async with connect(transport, limiter=limiter) as conn:
        with pytest.raises(InvalidInputError):
            await conn.call("send_text_message", {**SMS, "to": "nope"})
        assert transport.requests == []
        assert limiter.acquired == 0
        await conn.call("send_text_message", SMS)
    assert limiter.acquired == 1


async def test_query_parameters_and_the_response_map() -> None:
    """List V2 sends filters as query parameters and maps messages/next_page_uri."""
    next_uri = f"{MESSAGES}?To=%2B15551234567&PageSize=1&Page=1&PageToken=PA{SID}"
    transport = scripted(answer(200, {"messages": [message()], "next_page_uri": next_uri}))
    async with connect(transport) as conn:
        page = await conn.call(
            "list_messages_v2",
            {"To": "+15551234567", "DateSentBefore": "2024-01-31", "PageSize": 1},
        )
    query = parse_qsl(urlsplit(transport.requests[0].url).query)
    assert query == [("To", "+15551234567"), ("DateSent<", "2024-01-31"), ("PageSize", "1")]
    assert isinstance(page, MessageListV2)
    assert page.odata_next_link == next_uri
    assert to_json_data(page)["@odata.nextLink"] == next_uri
    assert [m.sid for m in page.value] == [SID]


async def test_a_next_link_is_accepted_back_as_input() -> None:
    """Giving @odata.nextLink back fetches exactly that page, from the base URL."""
    link = f"{MESSAGES}?PageSize=1&Page=1&PageToken=PA{SID}"
    transport = scripted(answer(200, {"messages": [], "next_page_uri": None}))
    async with connect(transport) as conn:
        page = await conn.call("list_messages_v2", {"@odata.nextLink": link})
    assert transport.requests[0].url == BASE + link
    assert page.odata_next_link is None


@pytest.mark.parametrize(
    "link",
    [
        f"https://evil.example.com{MESSAGES}?PageToken=PA1",
        f"http://api.twilio.com{MESSAGES}",
        f"/2010-04-01/Accounts/AC{'f' * 32}/Messages.json?PageToken=PA1",
        "/2010-04-01/Accounts/../../etc/passwd",
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json",
    ],
)
async def test_links_to_other_hosts_or_accounts_are_refused(link: str) -> None:
    """A next link that leaves the connection's host or account is never followed."""
    transport = scripted()
    async with connect(transport) as conn:
        with pytest.raises(UnsafeLinkError, match="not followed"):
            await conn.call("list_messages_v2", {"@odata.nextLink": link})
    assert transport.requests == []


async def test_paginate_follows_next_links_and_stops_at_max_items() -> None:
    """paginate yields items across pages and fetches no page beyond max_items."""
    pages = {
        "": {
            "messages": [message(sid="SM" + "a" * 32), message(sid="SM" + "b" * 32)],
            "next_page_uri": f"{MESSAGES}?Page=1&PageToken=PA2",
        },
        "PA2": {
            "messages": [message(sid="SM" + "c" * 32)],
            "next_page_uri": f"{MESSAGES}?Page=2&PageToken=PA3",
        },
        "PA3": {"messages": [message(sid="SM" + "d" * 32)], "next_page_uri": None},
    }

    def handler(request: HttpRequest) -> HttpResponse:
        token = dict(parse_qsl(urlsplit(request.url).query)).get("PageToken", "")
        return answer(200, pages[token])

    transport = MockTransport(handler)
    async with connect(transport) as conn:
        every = [m.sid async for m in conn.paginate("list_messages_v2", {"PageSize": 2})]
        assert [s[2] for s in every] == ["a", "b", "c", "d"]
        assert len(transport.requests) == 3
        some = [m.sid async for m in conn.paginate("list_messages_v2", {}, max_items=3)]
    assert [s[2] for s in some] == ["a", "b", "c"]
    assert len(transport.requests) == 5


async def test_paginate_refuses_a_next_link_from_the_server_to_another_host() -> None:
    """A response whose next link leaves the connection's host stops paging with an error."""
    transport = scripted(
        answer(
            200, {"messages": [message()], "next_page_uri": f"https://evil.example.com{MESSAGES}"}
        )
    )
    async with connect(transport) as conn:
        seen = []
        with pytest.raises(UnsafeLinkError):
            async for item in conn.paginate("list_messages_v2", {}):
                seen.append(item.sid)
    assert seen == [SID]
    assert len(transport.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, 21211, BadRequestError),
        (401, 20003, AuthenticationError),
        (403, 20008, AuthenticationError),
        (404, 20404, NotFoundError),
    ],
)
async def test_api_errors_carry_status_code_and_more_info(
    status: int, code: int, error: type[Exception]
) -> None:
    """Twilio's error bodies become typed errors with the status, code and link."""
    transport = scripted(twilio_error(status, code, "The 'To' number is not valid."))
    async with connect(transport) as conn:
        with pytest.raises(error) as caught:
            await conn.call("send_text_message", SMS)
    raised = caught.value
    assert (raised.status, raised.code) == (status, code)  # type: ignore[attr-defined]
    assert raised.more_info == f"https://www.twilio.com/docs/errors/{code}"  # type: ignore[attr-defined]
    assert f"Twilio error {code}" in str(raised)
    assert len(transport.requests) == 1


def test_429_is_retried_after_retry_after() -> None:
    """A 429 is retried, waiting (on the event loop's clock) as long as Retry-After asks."""
    run_virtual(_retry_after())


async def _retry_after() -> None:
    limited = twilio_error(429, 20429, "Too Many Requests")
    transport = scripted(
        HttpResponse(429, limited.body, {"retry-after": "2"}), answer(201, message())
    )
    loop = asyncio.get_running_loop()
    async with connect(transport) as conn:
        started = loop.time()
        await conn.call("send_text_message", SMS)
        assert loop.time() - started == pytest.approx(2.0, abs=1e-3)
    assert len(transport.requests) == 2


def test_backoff_is_exponential_with_full_jitter() -> None:
    """Without Retry-After, waits are random up to base * 2**n, capped."""
    run_virtual(_full_jitter())


async def _full_jitter() -> None:
    transport = scripted(*[twilio_error(503, 20503)] * 4, answer(200, message()))
    policy = RetryPolicy(attempts=5, backoff=1.0, max_backoff=3.0, random=lambda: 0.5)
    loop = asyncio.get_running_loop()
    async with connect(transport, retry=policy) as conn:
        started = loop.time()
        await conn.call("get_message", {"MessageId": SID})
        # 0.5 * (1, 2, 3 capped, 3 capped)
        assert loop.time() - started == pytest.approx(0.5 + 1.0 + 1.5 + 1.5, abs=1e-3)


async def test_429s_give_up_after_the_attempts() -> None:
    """A 429 that persists ends in RateLimitError after the configured attempts."""
    transport = scripted(*[twilio_error(429, 20429)] * 3)
    async with connect(
        transport, retry=RetryPolicy(attempts=3, backoff=0, random=lambda: 0)
    ) as conn:
        with pytest.raises(RateLimitError):
            await conn.call("get_message", {"MessageId": SID})
    assert len(transport.requests) == 3


async def test_reads_are_retried_on_5xx_and_broken_connections() -> None:
    """GETs are retried on server errors and read failures."""
    transport = scripted(
        twilio_error(503, 20500), ReadError("reset"), answer(200, message(status="delivered"))
    )
    async with connect(transport) as conn:
        result = await conn.call("get_message", {"MessageId": SID})
    assert result.status is MessageStatus.DELIVERED
    assert len(transport.requests) == 3


async def test_a_send_is_retried_when_it_surely_never_arrived() -> None:
    """Connection refused and 429 are safe to retry even for a send."""
    transport = scripted(ConnectError("refused"), twilio_error(429, 20429), answer(201, message()))
    async with connect(transport) as conn:
        await conn.call("send_text_message", SMS)
    assert len(transport.requests) == 3


@pytest.mark.parametrize(
    "failure",
    [
        ReadError("connection reset after the request"),
        twilio_error(500, 20500),
        twilio_error(503, 20503),
    ],
    ids=["read-error", "500", "503"],
)
async def test_a_send_that_may_have_arrived_is_never_retried(failure: Any) -> None:
    """After an unclear failure a send raises MessageMayHaveBeenSentError, sent once only."""
    transport = scripted(failure, answer(201, message()))
    async with connect(transport) as conn:
        with pytest.raises(MessageMayHaveBeenSentError) as caught:
            await conn.call("send_text_message", SMS)
    assert len(transport.requests) == 1
    error = caught.value
    assert error.inputs == SMS
    assert "may have been sent" in str(error)


def test_the_deadline_stops_retries() -> None:
    """Retries stop once the next wait would pass the deadline, attempts left or not."""
    run_virtual(_deadline())


async def _deadline() -> None:
    busy = twilio_error(503, 20503)
    transport = scripted(*[HttpResponse(503, busy.body, {"retry-after": "0.6"})] * 5)
    loop = asyncio.get_running_loop()
    async with connect(transport, retry=RetryPolicy(attempts=10, deadline=1.0)) as conn:
        started = loop.time()
        with pytest.raises(ServerError):
            await conn.call("get_message", {"MessageId": SID})
        assert loop.time() - started < 1.0
    assert len(transport.requests) == 2


async def test_server_errors_on_reads_surface_after_the_attempts() -> None:
    """Persistent 5xx on a GET ends in ServerError."""
    transport = scripted(*[twilio_error(500, 20500)] * 2)
    async with connect(transport, retry=RetryPolicy(attempts=2, random=lambda: 0)) as conn:
        with pytest.raises(ServerError):
            await conn.call("get_message", {"MessageId": SID})


async def test_delete_returns_none() -> None:
    """An action without a body returns None."""
    transport = scripted(HttpResponse(204))
    async with connect(transport) as conn:
        assert await conn.call("twilio/delete_message", {"MessageId": SID}) is None
    assert transport.requests[0].method == "DELETE"


async def test_the_deprecated_list_warns_and_keeps_removed_fields_null() -> None:
    """list_messages still works, warns, and reports num_pages and total as null."""
    transport = scripted(
        answer(200, {"messages": [message()], "page": 0, "page_size": 50, "start": 0, "end": 0})
    )
    async with connect(transport) as conn:
        with pytest.warns(DeprecationWarning, match="use list_messages_v2"):
            page = await conn.call("list_messages", {"Page": "0"})
    assert page.num_pages is None and page.total is None
    assert to_json_data(page)["total"] is None


async def test_a_connection_is_used_inside_its_context_only() -> None:
    """Calls before opening or after closing fail clearly; it opens once."""
    conn = connect(scripted())
    with pytest.raises(RuntimeError, match="open the Connection first"):
        await conn.call("get_message", {"MessageId": SID})
    async with conn:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await conn.call("get_message", {"MessageId": SID})
    with pytest.raises(RuntimeError, match="only once"):
        await conn.__aenter__()


async def test_unknown_actions_are_invalid_input() -> None:
    """An unknown action id is an input error naming the known ones."""
    async with connect(scripted()) as conn:
        with pytest.raises(InvalidInputError, match="no action"):
            await conn.call("send_fax", {})


async def test_third_party_manifests_return_generic_records(tmp_path: Path) -> None:
    """A connector without generated classes returns Records with converted fields."""
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(
        """\
format: 1
connector:
  id: demo
  title: Demo
  description: A demo.
  base_url: https://api.example.com
  connection:
    - {key: token, title: Token, type: string, secret: true, required: true, env: DEMO_TOKEN}
actions:
  get_thing:
    title: Get Thing
    description: Gets a thing.
    method: GET
    path: /things/{Id}.json
    parameters:
      - {key: ThingId, title: Thing, type: string, required: true, in: path, name: Id}
    returns: Thing
definitions:
  Thing:
    title: Thing
    fields:
      - {path: id, title: Id, type: string}
      - {path: count, title: Count, type: integer}
      - {path: seen, title: Seen, type: datetime}
""",
        encoding="utf-8",
    )
    transport = scripted(
        answer(200, {"id": "t1", "count": "3", "seen": "Thu, 24 Aug 2023 05:01:45 +0000"})
    )
    spec = load_manifest(manifest)
    async with Connection(
        connector=spec, transport=transport, env={"DEMO_TOKEN": "x"}, rate_limit=False
    ) as conn:
        thing = await conn.call("get_thing", {"ThingId": "t1"})
    assert isinstance(thing, Record)
    assert thing["count"] == 3
    assert to_json_data(thing) == {"id": "t1", "count": 3, "seen": "2023-08-24T05:01:45.000Z"}
    assert transport.requests[0].url == "https://api.example.com/things/t1.json"
    assert "Authorization" not in transport.requests[0].headers
