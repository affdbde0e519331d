# SPDX-License-Identifier: MIT
"""
The consent ledger: who opted out of messages from which sender, so that a send to an
opted-out recipient is skipped before any request goes to Twilio.

What it records, and from where:

- an inbound message whose whole body is one of Twilio's default keywords
  (``connector._twilio.keyword_of``): STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT
  opt out; START, YES, UNSTOP opt back in; HELP and INFO change nothing (Twilio answers
  them itself). A webhook's ``OptOutType`` (Twilio's Advanced Opt-Out, which may use
  other keywords) is honoured too;
- a send Twilio refused with error 21610 ("Attempt to send to unsubscribed
  recipient"): the recipient opted out of that sender somewhere the ledger did not see;
- a list a team brings (``twilio-connector consent import``).

Scopes. Twilio keeps an opt-out per pair of (sender, recipient), where the sender is the
number (short code, alphanumeric ID) the keyword was texted to, or the Messaging
Service that number belongs to, whose whole sender pool then honours it. The ledger
keeps one entry per (scope, recipient):

- ``+15005550006`` / ``+15551230002``: the recipient and that number;
- ``MG...`` / ``+15551230002``: every send through that Messaging Service (recorded when
  the inbound webhook names the service);
- ``*`` / ``+15551230002``: every sender of the account (STOPALL, or an imported row
  with no sender).

A send is checked against the scopes it has: its ``From``, its Messaging Service, and
``*``. Among the entries found, the most recent decides: a START to one number after a
STOPALL opts back in to that number only. Every entry carries the time of the word that
made it, and an older word never replaces a newer one, so the order in which webhooks
and polls arrive does not matter.

Addresses are kept as Twilio writes them (E.164, ``whatsapp:+...`` is an address of its
own), trimmed.

Two stores: :class:`SQLiteLedger` (one machine: the run journal's file for workflows,
or a file of its own, created 0600) and :class:`RedisLedger` (workers on many
machines). :func:`open_ledger` opens either from a location string, the form
``TWILIO_CONSENT_LEDGER`` and ``--consent`` take.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, Self, runtime_checkable

import attrs

from ._private import create_private
from ._twilio import keyword_of


if TYPE_CHECKING:
    from types import TracebackType


__all__ = [
    "ACCOUNT_WIDE",
    "LEDGER_VARIABLE",
    "UNSUBSCRIBED_CODE",
    "ConsentEntry",
    "ConsentLedger",
    "ConsentState",
    "RedisLedger",
    "SQLiteLedger",
    "check_location",
    "inbound_change",
    "open_ledger",
    "record_inbound",
]

ConsentState = Literal["opted_out", "opted_in"]

#: The scope of an opt-out from every sender of the account (STOPALL).
ACCOUNT_WIDE: Final = "*"
#: Twilio's error for a send to a recipient who opted out of the sender.
UNSUBSCRIBED_CODE: Final = 21610
#: Where hosts find the ledger when none is given: a file path or a ``redis://`` URL.
LEDGER_VARIABLE: Final = "TWILIO_CONSENT_LEDGER"

#: Twilio's default keyword that opts out of every sender of the account.
_ACCOUNT_STOP_WORDS: Final = frozenset({"STOPALL"})
_OPT_OUT_TYPES: Final = {"STOP": "opted_out", "START": "opted_in"}
_STATES: Final = ("opted_out", "opted_in")
#: The URLs that name a Redis ledger; any other location is a SQLite file.
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
_URL_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@attrs.frozen
class ConsentEntry:
    """
    One recipient's consent for one scope.

    Attributes:
        sender: The scope: a sender address, a Messaging Service SID (``MG...``) or
            ``*`` (every sender of the account).
        recipient: The person's address.
        state: ``opted_out`` or ``opted_in``.
        source: What said so: the keyword (``STOP``, ``START``...), ``21610``, ``import``.
        at: When (seconds since 1970, UTC): the message's time, not when it was recorded.
    """

    sender: str
    recipient: str
    state: ConsentState
    source: str
    at: float

    @property
    def scope(self) -> str:
        """The scope in words: a number, a Messaging Service, or every sender."""
        if self.sender == ACCOUNT_WIDE:
            return "every sender of the account"
        if self.sender.startswith("MG"):
            return f"Messaging Service {self.sender}"
        return self.sender

    def reason(self) -> str:
        """Why a send to the recipient is skipped, in a sentence."""
        when = dt.datetime.fromtimestamp(self.at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        how = {
            str(UNSUBSCRIBED_CODE): "Twilio refused a send with 21610",
            "import": "imported",
        }.get(self.source, f"texted {self.source}")
        return f"{self.recipient} opted out of {self.scope} ({how}, {when})"


@runtime_checkable
class ConsentLedger(Protocol):
    """
    Where opt-outs and opt-ins are kept. A :class:`~connector.Connection` with one checks
    every send against it and records 21610 answers in it.
    """

    async def opted_out(
        self, sender: str | None, recipient: str, *, service: str | None = None
    ) -> str | None:
        """
        Why a send from *sender* (or through *service*) to *recipient* must not go out.

        Returns:
            The reason in words, or ``None`` when the send may go.
        """
        ...

    async def record(
        self,
        sender: str,
        recipient: str,
        state: ConsentState,
        source: str,
        *,
        at: float | None = None,
    ) -> bool:
        """
        Record a word of *recipient* about messages from *sender* (a scope).

        Returns:
            Whether the ledger changed (an older word than the one kept changes nothing).
        """
        ...


def _clean(address: str) -> str:
    return address.strip()


def _deciding(entries: Iterable[ConsentEntry]) -> ConsentEntry | None:
    latest: ConsentEntry | None = None
    for entry in entries:
        # On a tie an opt-out wins: refusing a send is the safe side.
        if (
            latest is None
            or entry.at > latest.at
            or (entry.at == latest.at and entry.state == "opted_out")
        ):
            latest = entry
    return latest


def _scopes(sender: str | None, service: str | None) -> list[str]:
    scopes = [_clean(s) for s in (sender, service) if s and _clean(s)]
    return [*dict.fromkeys(scopes), ACCOUNT_WIDE]


def _checked_state(state: str) -> ConsentState:
    if state not in _STATES:
        raise ValueError(f"a consent state is opted_out or opted_in, not {state!r}")
    return state  # type: ignore[return-value]


# -- SQLite ------------------------------------------------------------------------

#: The table, as a ledger file of its own creates it; the run journal creates the same
#: one in its migration 4.
_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS consent (recipient TEXT NOT NULL, sender TEXT NOT NULL,"
    " state TEXT NOT NULL, source TEXT NOT NULL, at REAL NOT NULL,"
    " PRIMARY KEY (recipient, sender)) WITHOUT ROWID"
)
_BUSY_TIMEOUT: Final = 30.0
#: The most recipients one lookup statement asks for.
_LOOKUP_MOST: Final = 64


@functools.cache
def _lookup_sql(size: int) -> str:
    marks = ", ".join("?" * size)
    return f"SELECT sender, recipient, state, source, at FROM consent WHERE recipient IN ({marks})"


def _answer(entries: list[ConsentEntry] | None, scopes: tuple[str, ...]) -> str | None:
    """Why a send to the owner of *entries* in *scopes* is refused, or ``None``."""
    if not entries:
        return None
    entry = _deciding(e for e in entries if e.sender in scopes)
    return entry.reason() if entry is not None and entry.state == "opted_out" else None


@attrs.define
class _Ask:
    """One send's question to a :class:`SQLiteLedger`, answered with others of its turn."""

    recipient: str
    scopes: tuple[str, str, str]
    answer: asyncio.Future[str | None] = attrs.field(
        factory=lambda: asyncio.get_running_loop().create_future()
    )


class SQLiteLedger:
    """
    A ledger in a SQLite file: the run journal's (its ``consent`` table), or a file of
    its own, created readable by its owner only (mode 0600) with its directory.

    Every process on the machine that opens the same file shares the ledger; a check is
    one indexed read, so a send pays a few microseconds for it.

    Args:
        path: The file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private(self.path)
        # Used from whichever thread runs the event loop (a BlockingConnection's, a
        # worker's); the lock keeps one statement at a time.
        self._db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, check_same_thread=False)
        self._lock = threading.Lock()
        self._asks: dict[asyncio.AbstractEventLoop, list[_Ask]] = {}
        try:
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._db:
                self._db.execute(_TABLE)
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"<SQLiteLedger {str(self.path)!r}>"

    @property
    def location(self) -> str:
        """Where it is, for messages: the file."""
        return str(self.path)

    async def opted_out(
        self, sender: str | None, recipient: str, *, service: str | None = None
    ) -> str | None:
        """Why a send must not go out, or ``None`` (see :class:`ConsentLedger`)."""
        # Every send asks, many at once in a busy run: the questions asked in one turn
        # of the event loop share one statement, so a send costs a dict lookup, not a
        # read transaction (and its GIL hand-off while the journal's writer commits).
        ask = _Ask(
            recipient.strip(), ((sender or "").strip(), (service or "").strip(), ACCOUNT_WIDE)
        )
        loop = asyncio.get_running_loop()
        waiting = self._asks.get(loop)
        if waiting is None:
            for gone in [other for other in self._asks if other.is_closed()]:
                del self._asks[gone]  # a loop closed before it answered: nobody waits
            waiting = self._asks[loop] = []
            loop.call_soon(self._answer, loop)
        waiting.append(ask)
        return await ask.answer

    def _answer(self, loop: asyncio.AbstractEventLoop) -> None:
        asks = self._asks.pop(loop, [])
        try:
            found = self._lookup([*{a.recipient: None for a in asks}])
            for ask in asks:
                if ask.answer.done():  # cancelled
                    continue
                try:
                    ask.answer.set_result(_answer(found.get(ask.recipient), ask.scopes))
                except Exception as exc:  # an entry that cannot be read fails its send alone
                    ask.answer.set_exception(exc)
        except Exception as exc:
            for ask in asks:
                if not ask.answer.done():
                    ask.answer.set_exception(exc)

    def _lookup(self, recipients: list[str]) -> dict[str, list[ConsentEntry]]:
        """The entries of *recipients*, by recipient, read in statements of a few sizes."""
        found: dict[str, list[ConsentEntry]] = {}
        for start in range(0, len(recipients), _LOOKUP_MOST):
            chunk = recipients[start : start + _LOOKUP_MOST]
            # Padded to a power of two: SQLite keeps a handful of statements compiled.
            size = 1 << (len(chunk) - 1).bit_length()
            params = chunk + [chunk[0]] * (size - len(chunk))
            with self._lock:
                rows = self._db.execute(_lookup_sql(size), params).fetchall()
            for row in rows:
                found.setdefault(row[1], []).append(ConsentEntry(*row))
        return found

    async def record(
        self,
        sender: str,
        recipient: str,
        state: ConsentState,
        source: str,
        *,
        at: float | None = None,
    ) -> bool:
        """Record a word (see :class:`ConsentLedger`)."""
        entry = ConsentEntry(
            _clean(sender), _clean(recipient), _checked_state(state), source, at or time.time()
        )
        return self._store([entry]) == 1

    async def record_many(self, entries: Iterable[ConsentEntry]) -> int:
        """Record many entries in one transaction (an import); return how many changed."""
        return self._store(entries)

    def _store(self, entries: Iterable[ConsentEntry]) -> int:
        changed = 0
        with self._lock, self._db:
            for e in entries:
                cursor = self._db.execute(
                    "INSERT INTO consent (recipient, sender, state, source, at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (recipient, sender) DO UPDATE SET"
                    " state = excluded.state, source = excluded.source, at = excluded.at"
                    " WHERE excluded.at > consent.at OR (excluded.at = consent.at"
                    " AND excluded.state = 'opted_out' AND consent.state != 'opted_out')",
                    (e.recipient, e.sender, e.state, e.source, e.at),
                )
                changed += cursor.rowcount
        return changed

    async def entries(self, recipient: str | None = None) -> AsyncIterator[ConsentEntry]:
        """Every entry (of one recipient, if given), by recipient then scope."""
        after = ("", "")
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT sender, recipient, state, source, at FROM consent"
                    " WHERE (recipient, sender) > (?, ?) AND (? IS NULL OR recipient = ?)"
                    " ORDER BY recipient, sender LIMIT 1000",
                    (after[0], after[1], recipient, recipient),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield ConsentEntry(*row)
            after = (rows[-1][1], rows[-1][0])
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        """Close the file."""
        self.close()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- Redis -------------------------------------------------------------------------

#: The prefix of a ledger's keys; one hash per recipient, one field per scope.
KEY_PREFIX: Final = "twilio-connector:consent:"

# KEYS[1]: the recipient's hash. ARGV: scope, "at|state|source", at.
# Keeps the newer word (an opt-out on a tie), atomically, whatever order workers record in.
_RECORD: Final = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local at = tonumber(string.match(current, '^([^|]+)'))
  local new_at = tonumber(ARGV[3])
  if at > new_at then return 0 end
  if at == new_at and (string.find(current, '|opted_out|', 1, true)
      or not string.find(ARGV[2], '|opted_out|', 1, true)) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _encode(entry: ConsentEntry) -> str:
    return f"{entry.at!r}|{entry.state}|{entry.source}"


def _decode(sender: str, recipient: str, value: str) -> ConsentEntry:
    at, state, source = value.split("|", 2)
    return ConsentEntry(sender, recipient, _checked_state(state), source, float(at))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLedger:
    """
    A ledger in Redis, shared by every worker that uses the same server and account:
    Temporal workers, Airflow and Prefect workers on many machines, and the listener
    that records the keywords.

    Keys: ``twilio-connector:consent:<account>:<recipient>``, a hash of scope ->
    ``at|state|source``. Entries never expire: consent is not a cache.

    The client is bound to the event loop of its first use, like
    :class:`~connector.redis_limiter.RedisLimiter`; close it with :meth:`aclose`.

    Args:
        url: The Redis server (``redis://host:port/db``, ``rediss://`` for TLS).
        account: The account whose ledger it is (its Account SID): one account's
            senders are not another's.
    """

    def __init__(self, url: str, account: str) -> None:
        self.url = url
        self.account = account
        self._prefix = f"{KEY_PREFIX}{account}:"
        self._client: Any = None
        self._script: Any = None

    def __repr__(self) -> str:
        return f"<RedisLedger {self._prefix}*>"

    @property
    def location(self) -> str:
        """Where it is, for messages: the server (without a password) and the keys."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path} ({self._prefix}*)"

    def _bind(self) -> Any:
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(self.url)
            self._script = self._client.register_script(_RECORD)
        return self._client

    async def opted_out(
        self, sender: str | None, recipient: str, *, service: str | None = None
    ) -> str | None:
        """Why a send must not go out, or ``None`` (see :class:`ConsentLedger`)."""
        recipient = _clean(recipient)
        scopes = _scopes(sender, service)
        values = await self._bind().hmget(self._prefix + recipient, scopes)
        entry = _deciding(
            _decode(scope, recipient, _text(value))
            for scope, value in zip(scopes, values, strict=True)
            if value is not None
        )
        return entry.reason() if entry is not None and entry.state == "opted_out" else None

    async def record(
        self,
        sender: str,
        recipient: str,
        state: ConsentState,
        source: str,
        *,
        at: float | None = None,
    ) -> bool:
        """Record a word (see :class:`ConsentLedger`)."""
        entry = ConsentEntry(
            _clean(sender), _clean(recipient), _checked_state(state), source, at or time.time()
        )
        return await self._put(entry)

    async def _put(self, entry: ConsentEntry) -> bool:
        self._bind()
        changed = await self._script(
            keys=[self._prefix + entry.recipient], args=[entry.sender, _encode(entry), entry.at]
        )
        return bool(changed)

    async def record_many(self, entries: Iterable[ConsentEntry]) -> int:
        """Record many entries (an import); return how many changed."""
        return sum([await self._put(entry) for entry in entries])

    async def entries(self, recipient: str | None = None) -> AsyncIterator[ConsentEntry]:
        """Every entry (of one recipient, if given), in no particular order of recipients."""
        client = self._bind()
        if recipient is not None:
            keys: AsyncIterator[Any] | None = None
            names = [self._prefix + _clean(recipient)]
        else:
            keys = client.scan_iter(match=self._prefix + "*", count=500)
            names = []

        async def hashes() -> AsyncIterator[str]:
            for name in names:
                yield name
            if keys is not None:
                async for key in keys:
                    yield _text(key)

        async for key in hashes():
            who = key.removeprefix(self._prefix)
            found = await client.hgetall(key)
            for scope, value in sorted((_text(k), _text(v)) for k, v in found.items()):
                yield _decode(scope, who, value)

    async def aclose(self) -> None:
        """Close the connections to Redis."""
        client, self._client, self._script = self._client, None, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def check_location(location: str | Path) -> str:
    """
    Check where a ledger is said to be, before anything opens it: a ``redis://``
    (``rediss://``, ``unix://``) URL, or a file path (hosts read it from a form).

    Returns:
        The location as text.

    Raises:
        ValueError: It is empty, or a URL of another scheme (``http://...``), which
            would otherwise be taken for the name of a file.
    """
    text = str(location).strip()
    if not text:
        raise ValueError("a consent ledger's location is a file path or a redis:// URL, not empty")
    scheme = _URL_SCHEME.match(text)
    if scheme is not None and not text.startswith(_REDIS_SCHEMES):
        raise ValueError(
            f"a consent ledger is a file path or a redis:// (rediss://, unix://) URL, "
            f"not a {scheme.group(1)}:// URL"
        )
    return text


def open_ledger(location: str | Path, *, account: str = "") -> SQLiteLedger | RedisLedger:
    """
    Open the ledger at *location*: a ``redis://`` (``rediss://``, ``unix://``) URL, or a
    SQLite file (created 0600 if missing).

    Args:
        location: Where it is (``TWILIO_CONSENT_LEDGER``, ``--consent``).
        account: The Account SID, which names a Redis ledger's keys.

    Raises:
        ValueError: *location* is not a place for a ledger (:func:`check_location`).
    """
    text = check_location(location)
    if text.startswith(_REDIS_SCHEMES):
        return RedisLedger(text, account)
    return SQLiteLedger(Path(text).expanduser())


# -- inbound keywords --------------------------------------------------------------


def inbound_change(
    body: str | None, opt_out_type: str | None = None
) -> tuple[ConsentState, str, bool] | None:
    """
    What an inbound message says about consent.

    Args:
        body: The message text.
        opt_out_type: The webhook's ``OptOutType`` (Advanced Opt-Out), if any.

    Returns:
        ``(state, word, account_wide)``, or ``None`` when it is no opt-out or opt-in
        keyword (HELP and INFO included: Twilio answers those, nothing changes).
    """
    word = (body or "").strip().upper()
    kind = (opt_out_type or "").strip().upper()
    if kind in _OPT_OUT_TYPES:
        state: ConsentState = _OPT_OUT_TYPES[kind]  # type: ignore[assignment]
        return state, word[:40] or kind, word in _ACCOUNT_STOP_WORDS
    keyword = keyword_of(body or "")
    if keyword == "stop":
        return "opted_out", word, word in _ACCOUNT_STOP_WORDS
    if keyword == "start":
        return "opted_in", word, False
    return None


async def record_inbound(
    ledger: ConsentLedger,
    *,
    to: str,
    from_: str,
    body: str | None,
    messaging_service_sid: str | None = None,
    opt_out_type: str | None = None,
    at: float | None = None,
) -> ConsentState | None:
    """
    Record the opt-out or opt-in an inbound message makes, if it makes one.

    The person (*from_*) is the recipient of later sends; the number texted (*to*) is
    the sender they opted out of, and so is its Messaging Service when the webhook
    names one. STOPALL opts out of every sender of the account.

    Args:
        ledger: Where to record it.
        to: The account's number that received the message.
        from_: The person.
        body: The text.
        messaging_service_sid: The webhook's ``MessagingServiceSid``, if any.
        opt_out_type: The webhook's ``OptOutType``, if any.
        at: When the message was sent; now unless given.

    Returns:
        The state recorded, or ``None`` for a message that is no keyword.
    """
    change = inbound_change(body, opt_out_type)
    if change is None or not from_ or not to:
        return None
    state, word, account_wide = change
    scopes = [ACCOUNT_WIDE] if account_wide else [to]
    if messaging_service_sid and not account_wide:
        scopes.append(messaging_service_sid)
    for scope in scopes:
        await ledger.record(scope, from_, state, word, at=at)
    return state
