"""Wire fidelity of the emulated Messages API: shapes, errors, auth, paging, updates."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openapi_schema_validator import OAS30Validator

from connector.emulator import EmulatorServer


SPEC = json.loads((Path(__file__).parent / "data" / "messages_openapi.json").read_text())
RFC2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000$"
)
ENVELOPE_KEYS = {
    "end",
    "first_page_uri",
    "next_page_uri",
    "page",
    "page_size",
    "previous_page_uri",
    "start",
    "uri",
}
ERROR_KEYS = {"code", "message", "more_info", "status"}
OK_FROM = "+15005550006"


def schema(ref: str) -> dict[str, Any]:
    """Wrap a component schema so its $refs resolve against the spec."""
    return {"$ref": f"#/components/schemas/{ref}", "components": SPEC["components"]}


def response_schema(path: str, method: str, status: str) -> dict[str, Any]:
    """The official response schema of one operation, resolvable."""
    op = SPEC["paths"][path][method]
    body = op["responses"][status]["content"]["application/json"]["schema"]
    return {**body, "components": SPEC["components"]}


MESSAGE = OAS30Validator(schema("api.v2010.account.message"))
MEDIA = OAS30Validator(schema("api.v2010.account.message.media"))
MESSAGE_LIST = OAS30Validator(
    response_schema("/2010-04-01/Accounts/{AccountSid}/Messages.json", "get", "200")
)
MEDIA_LIST = OAS30Validator(
    response_schema(
        "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media.json", "get", "200"
    )
)


class Api:
    """A tiny authenticated client for the emulator's Messages API."""

    def __init__(self, session: aiohttp.ClientSession, emu: EmulatorServer) -> None:
        self.session = session
        self.emu = emu
        self.base = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}"

    async def call(
        self, method: str, path: str, data: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """Send one request and decode the JSON answer (None for an empty body)."""
        url = path if path.startswith("http") else self.base + path
        async with self.session.request(method, url, data=data, **kwargs) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    async def send(self, **params: Any) -> dict[str, Any]:
        """Create a message that must succeed."""
        form = {"To": "+15551230001", "From": OK_FROM, "Body": "hello", **params}
        status, body = await self.call("POST", "/Messages.json", form)
        assert status == 201, body
        return dict(body)


@pytest.fixture
async def api(twilio_emulator: EmulatorServer) -> AsyncIterator[Api]:
    """An authenticated client against a fresh emulator."""
    auth = aiohttp.encode_basic_auth(twilio_emulator.account_sid, twilio_emulator.auth_token)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        yield Api(session, twilio_emulator)


async def test_create_returns_exact_twilio_message(api: Api) -> None:
    """A send answers 201 with Twilio's Message fields, string counts and RFC 2822 dates."""
    status, body = await api.call(
        "POST", "/Messages.json", {"To": "+15551230001", "From": OK_FROM, "Body": "Hello! 👍"}
    )
    assert status == 201
    MESSAGE.validate(body)
    assert set(body) == set(
        SPEC["components"]["schemas"]["api.v2010.account.message"]["properties"]
    )
    assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
    assert body["status"] == "queued"
    assert body["direction"] == "outbound-api"
    assert body["num_segments"] == "1" and body["num_media"] == "0"
    assert body["price"] is None and body["error_code"] is None
    assert RFC2822.match(body["date_created"]) and RFC2822.match(body["date_updated"])
    assert body["uri"] == f"/2010-04-01/Accounts/{api.emu.account_sid}/Messages/{body['sid']}.json"
    assert body["subresource_uris"] == {"media": body["uri"][: -len(".json")] + "/Media.json"}
    assert body["body"] == "Hello! 👍" and body["api_version"] == "2010-04-01"


async def test_fetch_list_and_media_validate_against_openapi(api: Api) -> None:
    """Fetch, list, media list and media fetch answers validate against the official schemas."""
    sent = await api.send(MediaUrl=["https://example.com/a.jpg", "https://example.com/b.png"])
    assert sent["sid"].startswith("MM") and sent["num_media"] == "2"
    status, fetched = await api.call("GET", f"/Messages/{sent['sid']}.json")
    assert status == 200
    MESSAGE.validate(fetched)
    assert fetched["status"] == "delivered" and RFC2822.match(fetched["date_sent"])
    assert fetched["price"] == "-0.00790" and fetched["price_unit"] == "USD"
    status, page = await api.call("GET", "/Messages.json")
    MESSAGE_LIST.validate(page)
    assert set(page) == ENVELOPE_KEYS | {"messages"}
    status, media = await api.call("GET", f"/Messages/{sent['sid']}/Media.json")
    MEDIA_LIST.validate(media)
    assert set(media) == ENVELOPE_KEYS | {"media_list"}
    assert [m["content_type"] for m in media["media_list"]] == ["image/png", "image/jpeg"]
    first = media["media_list"][0]
    status, item = await api.call("GET", f"/Messages/{sent['sid']}/Media/{first['sid']}.json")
    assert status == 200
    MEDIA.validate(item)
    assert item["parent_sid"] == sent["sid"]
    status, empty = await api.call("DELETE", f"/Messages/{sent['sid']}/Media/{first['sid']}.json")
    assert (status, empty) == (204, None)
    status, error = await api.call("GET", f"/Messages/{sent['sid']}/Media/{first['sid']}.json")
    assert status == 404 and error["code"] == 20404


async def test_unknown_parameters_are_ignored(api: Api) -> None:
    """Unknown form keys (e.g. Tags, MessageIntent) do not cause errors, as on Twilio."""
    sent = await api.send(Tags='{"a": 1}', MessageIntent="otp", NoSuchThing="x")
    assert sent["status"] == "queued"


async def test_sender_kinds(api: Api) -> None:
    """Alphanumeric IDs, WhatsApp addresses of owned numbers and Messaging Services are accepted."""
    assert (await api.send(From="MyShop"))["from"] == "MyShop"
    wa = await api.send(From="whatsapp:+15005550006", To="whatsapp:+15551230001")
    assert wa["from"] == "whatsapp:+15005550006"
    svc = await api.send(From="", MessagingServiceSid="MG" + "a" * 32)
    assert svc["status"] == "accepted" and svc["from"] is None and svc["num_segments"] == "0"


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": ""}, 21604),
        ({"To": "not-a-number"}, 21211),
        ({"To": "+15005550001"}, 21211),
        ({"To": "+15005550002"}, 21612),
        ({"To": "+15005550003"}, 21408),
        ({"To": "+15005550004"}, 21610),
        ({"To": "+15005550009"}, 21614),
        ({"From": ""}, 21603),
        ({"From": "+15005550001"}, 21212),
        ({"From": "+15005550007"}, 21606),
        ({"From": "+15005550008"}, 21611),
        ({"From": "+14155550100"}, 21606),
        ({"From": "bad sender!!"}, 21212),
        ({"Body": ""}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"MediaUrl": [f"https://e.com/{i}.jpg" for i in range(11)]}, 21623),
        ({"MediaUrl": "ftp://e.com/a.jpg"}, 21620),
        ({"StatusCallback": "not a url"}, 21609),
        ({"StatusCallback": "https://bad_host.example.com/cb"}, 21609),
        ({"ScheduleType": "fixed", "SendAt": "2030-01-01T00:00:00Z"}, 35118),
        ({"ScheduleType": "fixed", "MessagingServiceSid": "MG" + "a" * 32}, 35111),
    ],
)
async def test_send_validation_errors(api: Api, form: dict[str, Any], code: int) -> None:
    """Invalid sends answer 400 with Twilio's code and exactly the four error keys."""
    full = {"To": "+15551230001", "From": OK_FROM, "Body": "hi", **form}
    status, body = await api.call("POST", "/Messages.json", full)
    assert status == 400
    assert set(body) == ERROR_KEYS
    assert body["code"] == code and body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


@pytest.mark.parametrize("seconds", [60, 36 * 24 * 3600])
async def test_send_at_outside_window_is_35114(api: Api, seconds: int) -> None:
    """SendAt less than 300 s or more than 35 days ahead answers 35114."""
    send_at = datetime.fromtimestamp(api.emu.config.clock.now(), UTC) + timedelta(seconds=seconds)
    form = {
        "To": "+15551230001",
        "MessagingServiceSid": "MG" + "a" * 32,
        "Body": "later",
        "ScheduleType": "fixed",
        "SendAt": send_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    status, body = await api.call("POST", "/Messages.json", form)
    assert (status, body["code"]) == (400, 35114)


async def test_authentication(api: Api, twilio_emulator_factory: Any) -> None:
    """Missing or wrong credentials and a foreign account in the URL answer 401/20003."""
    url = api.base + "/Messages.json"
    async with aiohttp.ClientSession() as anon:
        async with anon.get(url) as response:
            body = await response.json()
            assert response.status == 401 and body["code"] == 20003 and set(body) == ERROR_KEYS
        wrong = aiohttp.encode_basic_auth(api.emu.account_sid, "nope")
        async with anon.get(url, headers={"Authorization": wrong}) as response:
            assert response.status == 401
    other = "AC" + "0" * 32
    status, body = await api.call(
        "GET", f"{api.emu.base_url}/2010-04-01/Accounts/{other}/Messages.json"
    )
    assert (status, body["code"]) == (401, 20003)


async def test_api_key_authentication(twilio_emulator_factory: Any) -> None:
    """An SK API key and its secret authenticate for the account in the URL."""
    emu = await twilio_emulator_factory(api_key="SK" + "b" * 32, api_secret="s3cret")
    assert "s3cret" not in repr(emu.config) and emu.auth_token not in repr(emu.config)
    auth = aiohttp.encode_basic_auth("SK" + "b" * 32, "s3cret")
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        url = f"{emu.base_url}/2010-04-01/Accounts/{emu.account_sid}/Messages.json"
        async with session.get(url) as response:
            assert response.status == 200


async def test_unknown_resources_are_404(api: Api) -> None:
    """Unknown message SIDs and unknown paths answer 404/20404 in Twilio's error shape."""
    status, body = await api.call("GET", "/Messages/SM" + "0" * 32 + ".json")
    assert (status, body["code"], set(body)) == (404, 20404, ERROR_KEYS)
    status, body = await api.call("GET", "/Calls.json")
    assert (status, body["code"]) == (404, 20404)


async def test_unsupported_methods_on_known_resources_are_405(api: Api) -> None:
    """PUT on Messages.json or PATCH on a message is 405/20004, not 404."""
    status, body = await api.call("PUT", "/Messages.json")
    assert (status, body["code"], set(body)) == (405, 20004, ERROR_KEYS)
    status, body = await api.call("PATCH", "/Messages/SM" + "0" * 32 + ".json")
    assert (status, body["code"]) == (405, 20004)


async def test_paging_newest_first_with_tokens(api: Api) -> None:
    """Pages run newest first; next/previous URIs carry PA/PB tokens and keep filters."""
    sids = [(await api.send(Body=f"m{i}"))["sid"] for i in range(5)]
    await api.send(To="+15551230002")
    status, page0 = await api.call(
        "GET", "/Messages.json", params={"To": "+15551230001", "PageSize": "2"}
    )
    assert status == 200
    assert [m["sid"] for m in page0["messages"]] == sids[::-1][:2]
    assert (page0["start"], page0["end"], page0["page"], page0["previous_page_uri"]) == (
        0,
        1,
        0,
        None,
    )
    assert page0["next_page_uri"].startswith(
        f"/2010-04-01/Accounts/{api.emu.account_sid}/Messages.json?To=%2B15551230001&PageSize=2&Page=1&PageToken=PA{sids[3]}"
    )
    assert page0["first_page_uri"].endswith("?To=%2B15551230001&PageSize=2&Page=0")
    _, page1 = await api.call("GET", api.emu.base_url + page0["next_page_uri"])
    assert [m["sid"] for m in page1["messages"]] == [sids[2], sids[1]]
    assert (page1["start"], page1["end"], page1["page"]) == (2, 3, 1)
    assert f"PageToken=PB{sids[2]}" in page1["previous_page_uri"]
    _, page2 = await api.call("GET", api.emu.base_url + page1["next_page_uri"])
    assert [m["sid"] for m in page2["messages"]] == [sids[0]] and page2["next_page_uri"] is None
    _, back = await api.call("GET", api.emu.base_url + page1["previous_page_uri"])
    assert [m["sid"] for m in back["messages"]] == sids[::-1][:2]


async def test_page_size_and_empty_pages(api: Api) -> None:
    """PageSize defaults to 50 and is clamped to 1000; an empty list has start=end=0."""
    _, page = await api.call("GET", "/Messages.json")
    assert (page["page_size"], page["start"], page["end"], page["messages"]) == (50, 0, 0, [])
    _, page = await api.call("GET", "/Messages.json", params={"PageSize": "5000"})
    assert page["page_size"] == 1000
    status, body = await api.call("GET", "/Messages.json", params={"PageToken": "PAnope"})
    assert (status, body["code"]) == (400, 21481)


async def test_from_and_date_sent_filters(api: Api) -> None:
    """From and DateSent / DateSent< / DateSent> filters accept Twilio's date formats."""
    await api.send(From="MyShop")
    await api.send()
    today = datetime.fromtimestamp(api.emu.config.clock.now(), UTC)
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    _, page = await api.call("GET", "/Messages.json", params={"From": "MyShop"})
    assert [m["from"] for m in page["messages"]] == ["MyShop"]
    cases = {
        ("DateSent", today.strftime("%Y-%m-%d")): 2,
        ("DateSent", tomorrow.strftime("%Y-%m-%dT00:00:00Z")): 0,
        ("DateSent>", yesterday.strftime("%Y-%m-%d")): 2,
        ("DateSent>", tomorrow.strftime("%a, %d %b %Y 00:00:00 -0000")): 0,
        ("DateSent<", (yesterday - timedelta(days=1)).strftime("%m/%d/%Y 22:05:25 MST")): 0,
        ("DateSent<", tomorrow.strftime("%Y-%m-%d 22:05:25.000")): 2,
    }
    for (key, value), expected in cases.items():
        status, page = await api.call("GET", "/Messages.json", params={key: value})
        assert status == 200 and len(page["messages"]) == expected, (key, value)
        assert "DateSent%3" in page["uri"] or key == "DateSent"
    status, body = await api.call("GET", "/Messages.json", params={"DateSent": "garbage"})
    assert status == 400 and set(body) == ERROR_KEYS


async def test_redact_and_delete(api: Api) -> None:
    """Body= redacts a finished message; DELETE answers 204 with no body, then 404."""
    sent = await api.send(Body="secret")
    status, body = await api.call("POST", f"/Messages/{sent['sid']}.json", {"Body": ""})
    assert (status, body["body"]) == (200, "")
    MESSAGE.validate(body)
    async with api.session.delete(f"{api.base}/Messages/{sent['sid']}.json") as response:
        assert response.status == 204 and await response.read() == b""
    status, body = await api.call("GET", f"/Messages/{sent['sid']}.json")
    assert status == 404


async def test_scheduled_send_cancel_and_delete_rules(api: Api) -> None:
    """A scheduled send stays scheduled, refuses DELETE (20009), cancels, then refuses cancel (30409)."""
    send_at = datetime.fromtimestamp(api.emu.config.clock.now() + 3600, UTC)
    sent = await api.send(
        From="",
        MessagingServiceSid="MG" + "c" * 32,
        ScheduleType="fixed",
        SendAt=send_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert (sent["status"], sent["num_segments"]) == ("scheduled", "0")
    path = f"/Messages/{sent['sid']}.json"
    status, body = await api.call("DELETE", path)
    assert (status, body["code"]) == (400, 20009)
    status, body = await api.call("POST", path, {"Body": ""})
    assert (status, body["code"]) == (400, 20009)
    status, body = await api.call("POST", path, {"Status": "canceled"})
    assert (status, body["status"]) == (200, "canceled")
    status, body = await api.call("POST", path, {"Status": "canceled"})
    assert (status, body["code"]) == (400, 30409)
    api.emu.advance(7200)
    assert api.emu.messages(sid=sent["sid"])[0]["status"] == "canceled"
    assert (await api.call("DELETE", path))[0] == 204


async def test_malformed_and_oversized_bodies_get_twilio_errors(api: Api) -> None:
    """An undecodable form is 400 / 20001 and an over-size body 413, both in the JSON error shape."""
    status, body = await api.call(
        "POST",
        "/Messages.json",
        b"To=%2B15551230001&Body=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, set(body), body["code"]) == (400, ERROR_KEYS, 20001)
    huge = io.BytesIO(b"To=%2B15551230001&From=%2B15005550006&Body=" + b"x" * 2_000_000)
    status, body = await api.call(
        "POST",
        "/Messages.json",
        huge,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, set(body), body["status"]) == (413, ERROR_KEYS, 413)
    assert api.emu.messages() == []


async def test_basic_scheme_is_case_insensitive_and_own_account_path_is_not_401(
    api: Api,
) -> None:
    """'basic' authenticates like 'Basic'; the own account's .json path is 404, not 401."""
    lower = aiohttp.encode_basic_auth(api.emu.account_sid, api.emu.auth_token).replace(
        "Basic ", "basic "
    )
    status, page = await api.call("GET", "/Messages.json", headers={"Authorization": lower})
    assert status == 200 and page["messages"] == []
    status, body = await api.call("GET", f"{api.base}.json")
    assert (status, body["code"]) == (404, 20404)
    other = f"{api.emu.base_url}/2010-04-01/Accounts/AC{'0' * 32}.json"
    status, body = await api.call("GET", other)
    assert (status, body["code"]) == (401, 20003)
