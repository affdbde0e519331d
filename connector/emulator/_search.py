# SPDX-License-Identifier: MIT
"""
Message search for the inbox, the admin API and the pytest helpers.

Unlike the Twilio list filters (exact ``To``/``From``/``DateSent``), these filters are
meant for people and tests: body substring or regular expression, status, error code,
direction, a date range, and the conversation a message belongs to. Conversations
themselves are listed newest activity first, a page at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import attrs

from connector._patterns import BodyPattern, PatternError, compile_linear
from connector.emulator._errors import ApiError
from connector.emulator._listing import parse_filter_date
from connector.emulator._records import MessageRecord
from connector.emulator._store import RefusedSend
from connector.emulator._validation import bare_number


__all__ = [
    "MessageQuery",
    "Thread",
    "group_threads",
    "page_threads",
    "send_thread_key",
    "thread_key",
    "thread_parties",
]


def thread_parties(record: MessageRecord) -> tuple[str, str]:
    """
    The two ends of the conversation a message belongs to.

    Args:
        record: A message.

    Returns:
        ``(account side, handset)``: the sending number or Messaging Service, and the
        handset's number. Messaging Service sends belong to the service's thread, even
        after a sender number was picked, because that is how the sender thinks of them.
    """
    if record.direction == "inbound":
        return record.messaging_service_sid or record.to, record.from_ or ""
    return record.messaging_service_sid or record.from_ or "", record.to


def thread_key(record: MessageRecord) -> str:
    """
    A stable identifier of the message's conversation, usable in URLs.

    Args:
        record: A message.

    Returns:
        ``"<account side>|<handset>"``.
    """
    return _key(*thread_parties(record))


def send_thread_key(*, to: str, from_: str | None, messaging_service_sid: str | None) -> str:
    """
    The conversation a send belongs to, before any message exists (for refused sends).

    Args:
        to: The handset.
        from_: The sender number, if given.
        messaging_service_sid: The Messaging Service, if given.

    Returns:
        The same key :func:`thread_key` gives the message the send would have created.
    """
    return _key(messaging_service_sid or from_ or "", to)


def _key(ours: str, handset: str) -> str:
    return f"{ours}|{handset}"


@attrs.define
class Thread:
    """
    One conversation: its messages and the sends the API refused in it.

    Attributes:
        key: ``"<account side>|<handset>"``.
        ours: The sending number or Messaging Service.
        handset: The handset's number.
        messages: Its messages, oldest first.
        refused: Its refused sends, oldest first.
    """

    key: str
    ours: str
    handset: str
    messages: list[MessageRecord] = attrs.Factory(list)
    refused: list[RefusedSend] = attrs.Factory(list)

    @property
    def activity(self) -> tuple[float, int]:
        """The newest ``(time, seq)`` of a message change or a refused send."""
        moments = [(r.date_updated, r.seq) for r in self.messages]
        moments += [(r.at, r.seq) for r in self.refused]
        return max(moments)

    @property
    def last(self) -> MessageRecord | None:
        """The most recently changed message, if any."""
        return max(self.messages, key=lambda r: (r.date_updated, r.seq), default=None)

    @property
    def cursor(self) -> str:
        """The page token that lists the conversations after this one."""
        moment, seq = self.activity
        return f"{moment!r}_{seq}"


def group_threads(
    records: Iterable[MessageRecord], refused: Iterable[RefusedSend] = ()
) -> list[Thread]:
    """
    Group messages and refused sends into conversations.

    Args:
        records: Messages, oldest first.
        refused: Refused sends, oldest first.

    Returns:
        The conversations, newest activity first.
    """
    threads: dict[str, Thread] = {}
    for record in records:
        ours, handset = thread_parties(record)
        key = _key(ours, handset)
        if key not in threads:
            threads[key] = Thread(key, ours, handset)
        threads[key].messages.append(record)
    for item in refused:
        if item.thread not in threads:
            ours = item.messaging_service_sid or item.from_ or ""
            threads[item.thread] = Thread(item.thread, ours, item.to)
        threads[item.thread].refused.append(item)
    return sorted(threads.values(), key=lambda t: t.activity, reverse=True)


def page_threads(
    threads: list[Thread], *, before: str | None, limit: int
) -> tuple[list[Thread], str | None]:
    """
    One page of conversations.

    Args:
        threads: Conversations, newest activity first (as :func:`group_threads` gives them).
        before: A page token (:attr:`Thread.cursor` of the previous page's last), or ``None``
            for the first page.
        limit: Conversations per page.

    Returns:
        The page and the token of the next one (``None`` on the last page).

    A malformed token raises the emulator's API error (a 400 answer).
    """
    start = 0
    if before:
        moment, _, seq = before.rpartition("_")
        try:
            bound = (float(moment), int(seq))
        except ValueError:
            raise ApiError(400, 20001, f"Invalid page token in 'before': {before}") from None
        start = next((i for i, t in enumerate(threads) if t.activity < bound), len(threads))
    page = threads[start : start + limit]
    more = start + limit < len(threads)
    return page, page[-1].cursor if more and page else None


def _compile(pattern: str) -> BodyPattern:
    try:
        return compile_linear(pattern)  # a request's pattern must not stall the server
    except PatternError as exc:
        raise ApiError(400, 20001, f"Invalid body_matches pattern: {exc}") from None


def _timestamp(value: str) -> float:
    moment, _ = parse_filter_date(value)
    return moment.timestamp()


@attrs.frozen(kw_only=True)
class MessageQuery:
    """
    A conjunction of message filters; empty fields match everything.

    Attributes:
        to: Exact ``to`` (channel prefixes ignored).
        from_: Exact ``from``.
        status: One of these statuses.
        error_code: Exact error code.
        body: Case-insensitive substring of the body.
        body_matches: Regular expression searched in the body (RE2 when it comes from
            a request; any compiled ``re`` pattern in Python).
        direction: ``inbound``, ``outbound-api`` or ``outbound-reply``; ``outbound``
            matches both outbound directions.
        since: Created at or after (epoch seconds).
        until: Created at or before (epoch seconds).
        thread: A conversation's key, ``"<account side>|<handset>"`` (as in inbox URLs).
        after_seq: Only messages created after this sequence number.
    """

    to: str | None = None
    from_: str | None = None
    status: frozenset[str] = frozenset()
    error_code: int | None = None
    body: str | None = None
    body_matches: BodyPattern | None = None
    direction: str | None = None
    since: float | None = None
    until: float | None = None
    thread: str | None = None
    after_seq: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> MessageQuery:
        """
        Build a query from admin-API or inbox query parameters.

        Recognised: ``to``, ``from``, ``status`` (comma-separated), ``error_code``,
        ``body``, ``body_matches``, ``direction``, ``since``, ``until`` (any date format
        the Twilio list filters accept, or epoch seconds), ``thread``. Empty values are
        ignored.

        Args:
            params: The parameters.

        Returns:
            The query.

        A malformed code, date or pattern raises the emulator's API error (a 400 answer).
        """
        values = {key: value.strip() for key, value in params.items() if value.strip()}
        try:
            code = int(values["error_code"]) if "error_code" in values else None
        except ValueError:
            raise ApiError(400, 20001, f"Invalid error_code: {values['error_code']}") from None
        dates: dict[str, float | None] = {}
        for key in ("since", "until"):
            raw = values.get(key)
            if raw is None:
                dates[key] = None
            elif re.fullmatch(r"\d+(\.\d+)?", raw):
                dates[key] = float(raw)
            else:
                dates[key] = _timestamp(raw)
        until = dates["until"]
        if until is not None and "until" in values and len(values["until"]) == 10:
            until += 86399.999  # a bare date means "until the end of that day"
        return cls(
            to=values.get("to"),
            from_=values.get("from"),
            status=frozenset(s.strip() for s in values.get("status", "").split(",") if s),
            error_code=code,
            body=values.get("body"),
            body_matches=_compile(values["body_matches"]) if "body_matches" in values else None,
            direction=values.get("direction"),
            since=dates["since"],
            until=until,
            thread=values.get("thread"),
        )

    def matches(self, record: MessageRecord) -> bool:
        """
        Whether *record* satisfies every filter.

        Args:
            record: A message.

        Returns:
            ``True`` if it matches.
        """
        if record.seq <= self.after_seq:
            return False
        if self.to is not None and bare_number(record.to) != bare_number(self.to):
            return False
        if self.from_ is not None and bare_number(record.from_ or "") != bare_number(self.from_):
            return False
        if self.status and record.status not in self.status:
            return False
        if self.error_code is not None and record.error_code != self.error_code:
            return False
        if self.body is not None and self.body.casefold() not in record.body.casefold():
            return False
        if self.body_matches is not None and not self.body_matches.search(record.body):
            return False
        if self.direction is not None:
            wanted = self.direction
            if wanted == "outbound":
                if not record.direction.startswith("outbound"):
                    return False
            elif record.direction != wanted:
                return False
        if self.since is not None and record.date_created < self.since:
            return False
        if self.until is not None and record.date_created > self.until:
            return False
        return self.thread is None or thread_key(record) == self.thread

    def select(self, records: Iterable[MessageRecord]) -> list[MessageRecord]:
        """
        Filter *records*, keeping their order.

        Args:
            records: Messages.

        Returns:
            The matching ones.
        """
        return [record for record in records if self.matches(record)]

    def describe(self) -> str:
        """
        Say what the query looks for, for failure messages.

        Returns:
            For example ``to='+1555...', body_matches='code \\d+'``.
        """
        parts = []
        for field in attrs.fields(MessageQuery):
            value = getattr(self, field.name)
            if field.name == "after_seq" or value in (None, frozenset()):
                continue
            if field.name == "body_matches":
                value = value.pattern
            elif isinstance(value, frozenset):
                value = ",".join(sorted(value))
            elif field.name in ("since", "until"):
                value = datetime.fromtimestamp(value, UTC).isoformat()
            parts.append(f"{field.name}={value!r}")
        return ", ".join(parts) or "any message"
