"""
A deterministic fake of Twilio's Messages API behind a MockTransport.

SIDs are derived from what was sent, and a message's status moves on each time it is
fetched, so two runs of one workflow (one per driver) see identical answers whatever
order their concurrent calls happen in. People in ``REPLIES`` answer every message they
get, a fixed number of seconds after it was created, so waits for replies see the same
messages in both drivers.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connector import HttpRequest, HttpResponse, MockTransport


ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-token"
BASE = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages"
#: Sends to this number are refused (Twilio's magic invalid number).
INVALID = "+15005550001"
#: Sends to these numbers end undelivered instead of delivered.
UNDELIVERED = frozenset({"+15005550102"})
#: Statuses a fetched message goes through, one step per fetch.
LIFECYCLE = ("queued", "sent", "delivered")
CREATED = "Thu, 24 Aug 2023 05:01:45 +0000"
#: CREATED as POSIX seconds.
CREATED_AT = email.utils.parsedate_to_datetime(CREATED).timestamp()
#: Who answers what, and how many seconds after our message was created.
REPLIES: dict[str, tuple[str, int]] = {
    "+15005550201": ("a.", 40),
    "+15005550202": ("what?", 10),
    "+15005550203": ("STOP", 70),
    "+15005550205": ("HELP", 5),
}


def rfc2822(seconds: float) -> str:
    """A POSIX time as Twilio writes dates."""
    return email.utils.formatdate(seconds, usegmt=True).replace("GMT", "+0000")


class FakeTwilio:
    """The fake's state: messages by SID, how often each was fetched."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.fetches: dict[str, int] = {}

    def transport(self) -> MockTransport:
        """A transport answering from this fake."""
        return MockTransport(self.handle)

    def handle(self, request: HttpRequest) -> HttpResponse:
        parts = urlsplit(request.url)
        path = parts.path
        if request.method == "POST" and path == BASE + ".json":
            form = dict(parse_qsl((request.body or b"").decode()))
            return self._create(form)
        if request.method == "GET" and path == BASE + ".json":
            return self._list(dict(parse_qsl(parts.query)))
        if request.method == "GET" and path.startswith(BASE + "/"):
            return self._fetch(path.removeprefix(BASE + "/").removesuffix(".json"))
        return _error(404, 20404, "not found")

    def _create(self, form: dict[str, str]) -> HttpResponse:
        to = form.get("To", "")
        if to == INVALID:
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        digest = hashlib.sha256(f"{form.get('From')}|{to}|{form.get('Body')}".encode())
        sid = "SM" + digest.hexdigest()[:32]
        message = {
            "account_sid": ACCOUNT_SID,
            "sid": sid,
            "from": form.get("From"),
            "to": to,
            "body": form.get("Body"),
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": "0",
            "error_code": None,
            "date_created": CREATED,
            "date_updated": CREATED,
            "date_sent": None,
        }
        self.messages[sid] = message
        self.fetches[sid] = 0
        answer = REPLIES.get(to)
        if answer is not None:
            body, delay = answer
            self.inbound(to, form.get("From", ""), body, CREATED_AT + delay)
            if to == "+15005550202":
                # Asked again, they answer properly a little later.
                self.inbound(to, form.get("From", ""), "B", CREATED_AT + delay + 50)
        return _json(201, message)

    def inbound(self, from_: str, to: str, body: str, at: float) -> dict[str, Any]:
        """A message from a person to one of our numbers, sent at *at* (POSIX seconds)."""
        digest = hashlib.sha256(f"in|{from_}|{to}|{body}|{at}".encode())
        sid = "SM" + digest.hexdigest()[:32]
        date = rfc2822(at)
        message = {
            "account_sid": ACCOUNT_SID,
            "sid": sid,
            "from": from_,
            "to": to,
            "body": body,
            "status": "received",
            "direction": "inbound",
            "num_segments": "1",
            "num_media": "0",
            "error_code": None,
            "date_created": date,
            "date_updated": date,
            "date_sent": date,
        }
        self.messages[sid] = message
        self.fetches[sid] = 0
        return message

    def _fetch(self, sid: str) -> HttpResponse:
        message = self.messages.get(sid)
        if message is None:
            return _error(404, 20404, f"The requested resource {sid} was not found")
        self.fetches[sid] += 1
        step = min(self.fetches[sid], len(LIFECYCLE) - 1)
        status = LIFECYCLE[step]
        if status == "delivered" and message["to"] in UNDELIVERED:
            message.update(status="undelivered", error_code=30003)
        else:
            message["status"] = status
        return _json(200, message)

    def _list(self, query: dict[str, str]) -> HttpResponse:
        to, sender = query.get("To"), query.get("From")
        found = [
            m
            for m in self.messages.values()
            if (to is None or m["to"] == to) and (sender is None or m["from"] == sender)
        ]
        # Newest first, as Twilio lists; messages of one second in SID order.
        found.sort(key=lambda m: m["sid"])
        found.sort(key=lambda m: email.utils.parsedate_to_datetime(m["date_created"]), reverse=True)
        return _json(
            200,
            {
                "messages": found,
                "next_page_uri": None,
                "page": 0,
                "page_size": int(query.get("PageSize", "50")),
            },
        )


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode(), {"content-type": "application/json"})


def _error(status: int, code: int, message: str) -> HttpResponse:
    return _json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )
