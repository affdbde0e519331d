# SPDX-License-Identifier: MIT
"""
Replies: what counts as a person's answer to a message, and finding answers among the
incoming messages with one cursor, however many people are waited for.

The executor runs ``kind: reply`` actions (``wait_for_reply``) with this module. Called
on its own, :func:`wait_for_one` polls for one person. In a workflow the interpreter
parks every waiting item, and its driver lists the incoming messages once per look for
the whole step (:func:`list_inbound`), then hands each message to the items waiting
for its sender.

What a message from the person (to our number, or to a number of our Messaging
Service, sent at or after ``after``) comes to, in order:

1. an opt-out keyword (``STOP``...; or Advanced Opt-Out's ``OptOutType: STOP``): the
   wait ends, *opted out* (the consent ledger records it, as the listener does);
2. a help keyword (``HELP``, ``INFO``): not an answer; Twilio answers it itself;
3. with ``keywords`` or a ``pattern``: a reply whose whole text is a keyword (trimmed,
   surrounding punctuation ignored) or in which the pattern is found is the answer;
   any other is ignored and the wait goes on;
4. without either: any message is the answer.

Opt-in keywords (``START``, ``YES``, ``UNSTOP``) count as answers: a survey may well ask
for YES. Twilio's dates are to the second, so ``after`` is too.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._clock import Clock
from ._convert import build_record, field_value, to_json_data
from ._manifest import ActionSpec, ConnectorSpec
from ._patterns import BodyPattern, PatternError, compile_linear
from ._twilio import keyword_of
from ._types import json_datetime
from .consent import ConsentLedger, inbound_change, record_inbound
from .errors import InputIssue, InvalidInputError, NoReplyError


if TYPE_CHECKING:
    from ._connection import Connection


__all__ = [
    "LIST_SETTLE",
    "PAGE_SIZE",
    "Inbound",
    "InboxCursor",
    "InboxPage",
    "ReplyRule",
    "ReplySettings",
    "ReplyStatus",
    "Verdict",
    "list_inbound",
    "message_event",
    "opted_out_before",
    "reply_data",
    "wait_for_one",
]

ReplyStatus = Literal["replied", "timed_out", "opted_out"]

#: Messages asked for per page when listing: a look usually finds a few new ones,
#: newest first, so a small page saves bytes; a burst of replies takes a few pages.
PAGE_SIZE = 100
#: Seconds a message may take, after its ``date_sent``, to show in Twilio's list. A
#: look that finds no new reply still moves its cursor up to this long before Twilio's
#: clock at the look (its answers' ``Date``), so that a step waiting on a Messaging
#: Service or on several numbers (whose lists cannot be filtered by ``To``) does not
#: page again, at each look, through every message since the last reply, its own
#: questions among them. This machine's clock is not used: one running ahead of
#: Twilio's would move the cursor past replies.
LIST_SETTLE = 120.0
#: What may surround a keyword without changing it: "A.", "(a)" and " b! " are A and B.
_AROUND = " \t\r\n.,;:!?'\"()[]{}"


def _normal(text: str, ignore_case: bool) -> str:
    word = " ".join(text.strip(_AROUND).split())
    return word.casefold() if ignore_case else word


@attrs.frozen
class Verdict:
    """
    What one message from the person waited for comes to.

    Attributes:
        kind: ``replied`` (the answer), ``opted_out`` (a STOP) or ``ignored`` (not an
            answer: the wait goes on).
        keyword: The keyword the answer matched, as written in ``keywords``.
        match: The text the pattern matched.
    """

    kind: Literal["replied", "opted_out", "ignored"]
    keyword: str | None = None
    match: str | None = None


@functools.lru_cache(maxsize=256)
def _matchers(
    keywords: tuple[str, ...], pattern: str | None, ignore_case: bool
) -> tuple[Mapping[str, str], BodyPattern | None]:
    """
    A rule's keyword table and compiled pattern, made once for every wait with the same
    rule: 100,000 people asked the same question share one RE2 program, not 100,000.
    """
    compiled = None
    if pattern is not None:
        compiled = compile_linear(("(?i)" if ignore_case else "") + pattern)
    # The first of two keywords that compare equal wins: "A" and "a" are one answer.
    words: dict[str, str] = {}
    for keyword in keywords:
        words.setdefault(_normal(keyword, ignore_case), keyword)
    return words, compiled


@attrs.frozen
class ReplyRule:
    """
    Which messages are answers.

    Attributes:
        keywords: Whole replies that count (none: any reply, unless a pattern is given).
        pattern: A regular expression (RE2) searched in the reply.
        ignore_case: Compare keywords and search the pattern without regard to case.

    Raises:
        PatternError: The pattern is not one RE2 compiles.
    """

    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    ignore_case: bool = True
    _compiled: BodyPattern | None = attrs.field(init=False, eq=False, repr=False)
    _words: Mapping[str, str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        words, compiled = _matchers(self.keywords, self.pattern, self.ignore_case)
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_words", words)

    def judge(self, body: str | None, opt_out_type: str | None = None) -> Verdict:
        """
        What a message from the person comes to.

        Args:
            body: Its text.
            opt_out_type: The webhook's ``OptOutType`` (Advanced Opt-Out), if any.
        """
        change = inbound_change(body, opt_out_type)
        if change is not None and change[0] == "opted_out":
            return Verdict("opted_out")
        if keyword_of(body or "") == "help" or (opt_out_type or "").upper() == "HELP":
            return Verdict("ignored")
        if not self._words and self._compiled is None:
            return Verdict("replied")
        text = body or ""
        keyword = self._words.get(_normal(text, self.ignore_case))
        if keyword is not None:
            return Verdict("replied", keyword=keyword)
        if self._compiled is not None:
            found = self._compiled.search(text)
            if found is not None:
                return Verdict("replied", match=found.group(0))
        return Verdict("ignored")


@attrs.frozen
class ReplySettings:
    """
    One wait for a reply, from a reply action's validated inputs.

    Attributes:
        to: The person.
        from_: Our number they reply to.
        service: Our Messaging Service they reply to (any of its numbers).
        after: Messages sent at or after this moment count (POSIX seconds, whole);
            ``None``: when the wait starts.
        rule: Which messages are answers.
        timeout: Seconds to wait.
        on_timeout: ``continue`` (status ``timed_out``) or ``fail``.
        interval: Seconds between looks.
    """

    to: str
    from_: str | None
    service: str | None
    after: float | None
    rule: ReplyRule
    timeout: float
    on_timeout: Literal["continue", "fail"] = "continue"
    interval: float = 30.0

    @classmethod
    def from_inputs(cls, action_id: str, clean: Mapping[str, Any]) -> ReplySettings:
        """
        Read a reply action's validated inputs (``compile_action(spec).validate``).

        Raises:
            InvalidInputError: The pattern is not one RE2 compiles (naming ``pattern``
                and why); nothing was listed.
        """
        after = clean.get("after")
        if isinstance(after, str):
            after = dt.datetime.fromisoformat(after.replace("Z", "+00:00"))
        try:
            rule = ReplyRule(
                tuple(str(k) for k in clean.get("keywords") or ()),
                clean.get("pattern"),
                bool(clean.get("ignore_case", True)),
            )
        except PatternError as exc:
            raise InvalidInputError(
                action_id, [InputIssue("pattern", str(exc), clean.get("pattern"))]
            ) from None
        return cls(
            to=str(clean["to"]),
            from_=clean.get("from") or None,
            service=clean.get("messaging_service_sid") or None,
            after=None if after is None else float(math.floor(after.timestamp())),
            rule=rule,
            timeout=float(clean.get("timeout") or 86400),
            on_timeout="fail" if clean.get("on_timeout") == "fail" else "continue",
            interval=float(clean.get("poll_interval") or 30),
        )

    @property
    def ours(self) -> tuple[str, ...]:
        """Our side: the number and the Messaging Service replies may go to."""
        return tuple(x for x in (self.from_, self.service) if x)

    def addressed(self, message: Inbound) -> bool:
        """Whether *message* comes from the person to our side."""
        if message.person != self.to:
            return False
        return (self.from_ is not None and message.to == self.from_) or (
            self.service is not None and message.service == self.service
        )

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON (a Temporal activity's answer carries them)."""
        return {
            "to": self.to,
            "from": self.from_,
            "service": self.service,
            "after": self.after,
            "keywords": list(self.rule.keywords),
            "pattern": self.rule.pattern,
            "ignore_case": self.rule.ignore_case,
            "timeout": self.timeout,
            "on_timeout": self.on_timeout,
            "interval": self.interval,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReplySettings:
        """The settings :meth:`to_json` gave."""
        return cls(
            to=data["to"],
            from_=data["from"],
            service=data["service"],
            after=data["after"],
            rule=ReplyRule(tuple(data["keywords"]), data["pattern"], data["ignore_case"]),
            timeout=data["timeout"],
            on_timeout=data["on_timeout"],
            interval=data["interval"],
        )


@attrs.frozen
class Inbound:
    """
    An incoming message, as the waits read it.

    Attributes:
        at: When it was sent (POSIX seconds; Twilio's ``date_sent``, to the second).
        event: The message as the ``message_received`` trigger gives it (the
            InboundMessage JSON form).
    """

    at: float
    event: Mapping[str, Any]

    @property
    def sid(self) -> str:
        """Its SID."""
        return str(self.event.get("MessageSid") or "")

    @property
    def person(self) -> str | None:
        """Who sent it (``From``)."""
        return self.event.get("From")

    @property
    def to(self) -> str | None:
        """Our number it was sent to (``To``)."""
        return self.event.get("To")

    @property
    def service(self) -> str | None:
        """The Messaging Service of that number, if any."""
        return self.event.get("MessagingServiceSid") or None

    @property
    def body(self) -> str | None:
        """Its text."""
        return self.event.get("Body")

    @property
    def opt_out_type(self) -> str | None:
        """Advanced Opt-Out's ``OptOutType``, if any."""
        return self.event.get("OptOutType") or None

    def to_json(self) -> dict[str, Any]:
        """As JSON, with the event's absent (``null``) fields left out."""
        return {
            "at": self.at,
            "event": {k: v for k, v in self.event.items() if v is not None and v != []},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], fields: Sequence[str] = ()) -> Inbound:
        """
        The message :meth:`to_json` gave, with every field of *fields* present again
        (``null``, or an empty list for ``media``).
        """
        event: dict[str, Any] = {name: [] if name == "media" else None for name in fields}
        event.update(data["event"])
        return cls(float(data["at"]), event)


def _whole(seconds: float) -> float:
    return float(math.floor(seconds))


@attrs.frozen
class InboxCursor:
    """
    Where one list of incoming messages got to: the whole step's, however many people
    are waited for.

    Attributes:
        at: Messages sent at or after this second are listed (Twilio's dates are whole
            seconds, so a fraction is dropped).
        seen: The SIDs of those sent in that very second that were handed over already.
    """

    at: float = attrs.field(converter=_whole)
    seen: frozenset[str] = frozenset()

    def rewound(self, since: float) -> InboxCursor:
        """
        The cursor moved back to *since* when a wait that counts from then began: what
        came from that second on is listed again (the waits that saw it already ignore
        it again), so the new wait misses nothing.
        """
        return InboxCursor(since) if math.floor(since) <= self.at else self

    def to_json(self) -> dict[str, Any]:
        """As JSON (it travels between a Temporal workflow and its activities)."""
        return {"at": self.at, "seen": sorted(self.seen)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InboxCursor:
        """The cursor :meth:`to_json` gave."""
        return cls(float(data["at"]), frozenset(data.get("seen", ())))


@attrs.frozen
class InboxPage:
    """
    What one look at the incoming messages found.

    Attributes:
        messages: The new messages to our side, oldest first.
        cursor: Where the next look starts.
        more: More new messages are waiting than *limit* allowed: look again at once.
    """

    messages: tuple[Inbound, ...]
    cursor: InboxCursor
    more: bool = False


def message_event(message: Any) -> dict[str, Any]:
    """
    An incoming-message event (the InboundMessage fields, with Twilio's webhook names)
    from a Message the API listed. The list gives no media URLs: ``media`` is empty
    (``list_message_media`` reads them).
    """
    data = to_json_data(message)
    return {
        "MessageSid": data.get("sid"),
        "SmsSid": data.get("sid"),
        "SmsMessageSid": data.get("sid"),
        "AccountSid": data.get("account_sid"),
        "MessagingServiceSid": data.get("messaging_service_sid"),
        "From": data.get("from"),
        "To": data.get("to"),
        "Body": data.get("body"),
        "NumMedia": data.get("num_media"),
        "NumSegments": data.get("num_segments"),
        "SmsStatus": data.get("status"),
        "ApiVersion": data.get("api_version"),
        "media": [],
    }


def _reply_definition(connector: ConnectorSpec, action: ActionSpec) -> str | None:
    """The definition a reply action's ``reply`` output field follows (InboundMessage)."""
    definition = connector.definitions.get(action.returns or "")
    for field in definition.fields if definition is not None else ():
        if field.path == "reply":
            return field.ref
    return None


async def list_inbound(
    connection: Connection[Any],
    action: ActionSpec,
    *,
    ours: Collection[str],
    cursor: InboxCursor,
    limit: int | None = None,
    ledger: ConsentLedger | None = None,
) -> InboxPage:
    """
    List the incoming messages to our side sent since *cursor*: one list, newest first,
    down to the cursor, for every person waited for at once.

    With one number on our side the list is filtered by ``To``; with a Messaging
    Service or several numbers it is not (the API has no such filter) and the
    messages are sorted out here. ``DateSent>`` counts whole days, so the list starts
    at the cursor's day and stops at the cursor. The next cursor is past the newest
    message handed over, and at least ``LIST_SETTLE`` seconds before Twilio's clock
    (:attr:`Connection.server_time`), so a quiet look does not leave it behind.

    Args:
        connection: An open connection of the reply action's connector.
        action: The reply action (its path says what to list).
        ours: Our numbers and Messaging Service SIDs.
        cursor: Where the previous look got to.
        limit: Hand over at most this many (the oldest), with ``more`` set.
        ledger: Where the opt-outs and opt-ins among them are recorded (each with its
            message's time, so a message seen again changes nothing).

    Returns:
        The new messages, oldest first, and the next cursor.

    Raises:
        ConnectorError: The list failed (the cursor stays where it was).
    """
    listing = connection.connector.listing(action)
    definition = _reply_definition(connection.connector, action)
    numbers = [x for x in ours if not x.startswith("MG")]
    query: dict[str, Any] = {
        "DateSentAfter": dt.datetime.fromtimestamp(cursor.at, dt.UTC).date(),
        "PageSize": PAGE_SIZE,
    }
    if len(numbers) == 1 and len(ours) == 1:
        query["To"] = numbers[0]
    found: list[Inbound] = []
    async for message in connection.paginate(listing.id, query):
        sent = field_value(message, "date_sent")
        if sent is None:
            continue  # not received yet (or an outbound message still queued)
        at = sent.timestamp()
        if at < cursor.at:
            break  # newest first: everything further was listed before
        if str(to_json_data(field_value(message, "direction"))) != "inbound":
            continue
        event = message_event(message)
        if event["To"] not in ours and event["MessagingServiceSid"] not in ours:
            continue
        if at == cursor.at and event["MessageSid"] in cursor.seen:
            continue
        if definition is not None:
            event = build_record(connection.connector.definitions, definition, event).to_json_data()
        found.append(Inbound(at, event))
    found.reverse()
    more = limit is not None and len(found) > limit
    if more:
        found = found[:limit]
    if ledger is not None:
        for inbound in found:
            await record_inbound(
                ledger,
                to=str(inbound.to or ""),
                from_=str(inbound.person or ""),
                body=inbound.body,
                messaging_service_sid=inbound.service,
                at=inbound.at,
            )
    # Past what was handed over (never past what `more` holds back), and past what is
    # old enough on Twilio's clock that nothing more will show up before it.
    now = connection.server_time
    settled = _whole(now - LIST_SETTLE) if now is not None and not more else -math.inf
    if not found:
        return InboxPage((), cursor if settled <= cursor.at else InboxCursor(settled))
    newest = found[-1].at
    if settled > newest:
        return InboxPage(tuple(found), InboxCursor(settled), more)
    seen = {m.sid for m in found if m.at == newest}
    if newest == cursor.at:
        seen |= cursor.seen
    return InboxPage(tuple(found), InboxCursor(newest, frozenset(seen)), more)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return json_datetime(dt.datetime.fromtimestamp(seconds, dt.UTC))


def reply_data(
    settings: ReplySettings,
    status: ReplyStatus,
    *,
    after: float,
    verdict: Verdict | None = None,
    message: Inbound | None = None,
) -> dict[str, Any]:
    """
    The output of a wait (the ``Reply`` definition's JSON form).

    Args:
        settings: The wait.
        status: What it came to.
        after: The moment from which messages counted.
        verdict: What the message that ended it came to.
        message: The message that ended it (a reply, or a STOP).
    """
    return {
        "status": status,
        "to": settings.to,
        "from": settings.from_,
        "messaging_service_sid": settings.service,
        "keyword": verdict.keyword if verdict is not None else None,
        "match": verdict.match if verdict is not None else None,
        "after": _iso(after),
        "replied_at": _iso(message.at) if message is not None else None,
        "reply": dict(message.event) if message is not None else None,
    }


async def opted_out_before(ledger: ConsentLedger | None, settings: ReplySettings) -> str | None:
    """
    Why the person cannot answer: the ledger says they opted out of our side (before
    the wait, so our question was not sent; or with a STOP a look already recorded);
    ``None`` otherwise.
    """
    if ledger is None:
        return None
    return await ledger.opted_out(settings.from_, settings.to, service=settings.service)


async def wait_for_one(
    connection: Connection[Any],
    action: ActionSpec,
    clean: Mapping[str, Any],
    *,
    clock: Clock,
) -> dict[str, Any]:
    """
    Wait for one person's reply, polling the incoming messages every ``poll_interval``
    seconds until the answer, a STOP or the timeout: what ``Connection.call`` does
    with a reply action.

    Args:
        connection: An open connection.
        action: The reply action.
        clean: Its validated inputs.
        clock: What the timeout and the polls follow.

    Returns:
        The ``Reply`` data.

    Raises:
        InvalidInputError: The pattern is invalid (before any request).
        NoReplyError: No reply in time, with ``on_timeout: fail``.
        ConnectorError: A list failed.
    """
    settings = ReplySettings.from_inputs(action.id, clean)
    started = clock.now()
    after = settings.after if settings.after is not None else float(math.floor(started))
    # Someone who opted out cannot answer: one look, for the STOP itself if it came
    # after *after*, and the wait is over.
    opted_out = await opted_out_before(connection.ledger, settings) is not None
    deadline = started if opted_out else started + settings.timeout
    cursor = InboxCursor(after)
    while True:
        looked = clock.now()
        page = await list_inbound(
            connection, action, ours=settings.ours, cursor=cursor, ledger=connection.ledger
        )
        cursor = page.cursor
        for message in page.messages:
            if message.at > deadline or not settings.addressed(message):
                continue  # not to us, or sent after the deadline (a late last look)
            verdict = settings.rule.judge(message.body, message.opt_out_type)
            if verdict.kind == "opted_out":
                return reply_data(settings, "opted_out", after=after, message=message)
            if verdict.kind == "replied":
                return reply_data(
                    settings, "replied", after=after, verdict=verdict, message=message
                )
        if page.more:
            continue
        # A look that started at or after the deadline saw every reply sent in time.
        if looked >= deadline:
            if opted_out:
                return reply_data(settings, "opted_out", after=after)
            if settings.on_timeout == "fail":
                raise NoReplyError(settings.to, settings.timeout)
            return reply_data(settings, "timed_out", after=after)
        await clock.sleep(min(settings.interval, max(0.0, deadline - clock.now())))
