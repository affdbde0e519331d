# SPDX-License-Identifier: MIT
"""
List filters and Twilio's page envelope (``PageSize``, ``Page``, ``PageToken``).
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import islice
from typing import Any
from urllib.parse import urlencode

from multidict import MultiMapping

from connector.emulator._errors import ApiError
from connector.emulator._records import MessageRecord
from connector.emulator._store import MessageStore


__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "message_filter", "page_envelope"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_ZONES = {
    "UTC": 0, "GMT": 0, "Z": 0,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip
_FILTER_KEYS = ("To", "From", "DateSent", "DateSent<", "DateSent>")

Match = Callable[[MessageRecord], bool]


def parse_filter_date(value: str) -> tuple[datetime, bool]:
    """
    Parse a date filter in any of the formats Twilio's examples use.

    Accepted: ``2008-01-02``, ISO 8601 (``2024-01-02T00:00:00Z``,
    ``2019-06-11 22:05:25.000``), ``06/11/2019 22:05:25 MST`` and RFC 2822
    (``Wed, 19 Jun 2019 22:04:00 -0000``). Times without a zone are UTC.

    Args:
        value: The query value.

    Returns:
        The aware datetime, and whether to compare by calendar day only (a bare date,
        or a midnight time as twilio-python sends for ``date`` objects).

    Raises:
        ApiError: 400 when the value matches no format.
    """
    text = value.strip()
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    if moment is None:
        head, _, zone = text.rpartition(" ")
        if zone.upper() in _ZONES:
            try:
                naive = datetime.strptime(head, "%m/%d/%Y %H:%M:%S")
            except ValueError:
                pass
            else:
                moment = naive.replace(tzinfo=timezone(timedelta(hours=_ZONES[zone.upper()])))
    if moment is None:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            moment = None
    if moment is None:
        raise ApiError(400, 20001, f"Invalid date filter value: {value}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    day_only = len(text) == 10 or moment.time() == datetime.min.time()
    return moment, day_only


def _day(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def message_filter(query: MultiMapping[str]) -> tuple[Match, list[tuple[str, str]]]:
    """
    Build the record predicate for ``GET Messages.json``.

    ``DateSent`` matches the calendar day (UTC); ``DateSent<`` / ``DateSent>`` are "on or
    before" / "on or after", by day for bare dates and by instant otherwise. Messages
    without ``date_sent`` never match a date filter.

    Args:
        query: The request's query parameters.

    Returns:
        The predicate, and the filters to repeat in page URIs (in Twilio's order).
    """
    tests: list[Match] = []
    echoed: list[tuple[str, str]] = []
    for key in _FILTER_KEYS:
        raw = query.get(key)
        if raw is None:
            continue
        echoed.append((key, raw))
        if key in ("To", "From"):
            tests.append(_field_test(key, raw))
        else:
            moment, day_only = parse_filter_date(raw)
            tests.append(_date_test(key[-1], moment, day_only))
    if not tests:
        return (lambda _record: True), echoed
    if len(tests) == 1:
        return tests[0], echoed
    return (lambda record: all(test(record) for test in tests)), echoed


def _field_test(key: str, value: str) -> Match:
    if key == "To":
        return lambda record: record.to == value
    return lambda record: record.from_ == value


def _date_test(op: str, moment: datetime, day_only: bool) -> Match:
    stamp, day = moment.timestamp(), moment.date()

    def test(record: MessageRecord) -> bool:
        sent = record.date_sent
        if sent is None:
            return False
        if op == "t" or day_only:
            value: Any = _day(sent)
            bound: Any = day
        else:
            value, bound = sent, stamp
        if op == "t":
            return bool(value == bound)
        if op == "<":
            return bool(value <= bound)
        return bool(value >= bound)

    return test


def page_size_of(query: MultiMapping[str]) -> int:
    """
    Read ``PageSize``: default 50, clamped to 1..1000.

    Over 1000 is clamped rather than refused because twilio-python sends
    ``PageSize=<limit>`` for ``list(limit=5000)``.

    Args:
        query: The query parameters.

    Returns:
        The page size.

    Raises:
        ApiError: 400 if it is not an integer.
    """
    raw = query.get("PageSize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, 20001, f"Invalid PageSize: {raw}") from None
    return max(1, min(MAX_PAGE_SIZE, size))


def select_page(
    store: MessageStore,
    match: Match,
    query: MultiMapping[str],
    page_size: int,
    page: int,
) -> tuple[list[MessageRecord], bool]:
    """
    Pick the records of one page, newest first.

    Args:
        store: The message store.
        match: The filter.
        query: Query parameters (for ``PageToken``).
        page_size: Records per page.
        page: Page index (used as an offset when there is no token).

    Returns:
        The records and whether an older page exists.

    Raises:
        ApiError: 400 / 21481 for a malformed or unknown token.
    """
    token = query.get("PageToken")
    if token:
        seq = store.position(token[2:]) if token[:2] in ("PA", "PB") else None
        if seq is None:
            raise ApiError(400, 21481, "Invalid PageToken")
        if token.startswith("PA"):
            records = list(islice(store.older_than(seq, match), page_size))
        else:
            records = list(islice(store.newer_than(seq, match), page_size))[::-1]
    else:
        offset = page * page_size
        records = list(islice(store.older_than(None, match), offset, offset + page_size))
    has_next = bool(records) and next(store.older_than(records[-1].seq, match), None) is not None
    return records, has_next


def page_envelope(
    path: str,
    key: str,
    items: Sequence[dict[str, Any]],
    *,
    filters: Iterable[tuple[str, str]],
    page: int,
    page_size: int,
    token: str | None,
    first_sid: str | None,
    last_sid: str | None,
    has_next: bool,
) -> dict[str, Any]:
    """
    Build Twilio's list envelope with exactly its keys and relative URIs.

    Args:
        path: The list path, e.g. ``/2010-04-01/Accounts/AC.../Messages.json``.
        key: The array key (``messages`` or ``media_list``).
        items: Rendered records.
        filters: Filters to repeat in every URI.
        page: This page's index.
        page_size: Records per page.
        token: The ``PageToken`` of this request, if any.
        first_sid: SID of the first record here (for the previous-page token).
        last_sid: SID of the last record here (for the next-page token).
        has_next: Whether an older page exists.

    Returns:
        The envelope; twilio-python rejects any extra top-level key.
    """
    base = [*filters, ("PageSize", str(page_size))]

    def uri(page_index: int, page_token: str | None) -> str:
        params = [*base, ("Page", str(page_index))]
        if page_token:
            params.append(("PageToken", page_token))
        return f"{path}?{urlencode(params)}"

    start = page * page_size
    return {
        "end": start + len(items) - 1 if items else 0,
        "first_page_uri": uri(0, None),
        key: list(items),
        "next_page_uri": uri(page + 1, f"PA{last_sid}") if has_next else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": (uri(page - 1, f"PB{first_sid}") if page > 0 and first_sid else None),
        "start": start if items else 0,
        "uri": uri(page, token),
    }
