"""
A rate limit shared by every process that uses a connection, kept in Redis.

The in-process limiter (the default) holds one connection's budget inside one event
loop. When many workers call Twilio on behalf of the same account, each would spend a
full budget of its own; :class:`RedisLimiter` makes them share one: at most *calls*
acquisitions in any window of *period* seconds, across every process that uses the same
Redis server and the same key.

It is an exact sliding log. A Lua script, which Redis runs atomically, keeps the times
of the admitted calls in a sorted set; it drops those older than the window, admits the
caller if fewer than *calls* remain, and otherwise says how long until the oldest one
leaves the window. Every time comes from the Redis server's clock (``TIME``), so the
workers' clocks need not agree.

Sender pacing is shared the same way: :class:`RedisSenderBook` keeps, per sender,
when its queue at Twilio will have drained, so that every process feeds a sender only
as fast as its queue drains (``docs/throughput.md``).

Install the extra: ``pip install 'twilio-workflow-connector[redis]'``. Then::

    limiter = RedisLimiter.for_account("redis://127.0.0.1:6379/0", account_sid)
    book = RedisSenderBook.for_account("redis://127.0.0.1:6379/0", account_sid)
    async with Connection(
        account_sid, auth_token, limiter=limiter, pacing=Pacing(book=book)
    ) as conn:
        ...
    await limiter.aclose()
    await book.aclose()

(``open_connection(redis_url=...)`` does all of this.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Self

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ._pacing import Booking
from ._ratelimit import ARRIVAL_MARGIN


log = logging.getLogger("connector")

__all__ = [
    "IN_FLIGHT",
    "KEY_PREFIX",
    "SENDERS_PREFIX",
    "STICKY_PREFIX",
    "RedisAdmission",
    "RedisLimiter",
    "RedisSenderBook",
    "limit_key",
]

#: The prefix of the keys :meth:`RedisLimiter.for_account` uses.
KEY_PREFIX: Final = "twilio-connector:limit:"
#: The prefix of the keys of senders' queues (:meth:`RedisSenderBook.for_account`).
SENDERS_PREFIX: Final = "twilio-connector:senders:"
#: The prefix of the keys of sticky senders (:meth:`RedisSenderBook.for_account`).
STICKY_PREFIX: Final = "twilio-connector:sticky:"

#: Seconds a call admitted with :meth:`RedisLimiter.admit` counts as in flight until its
#: answer is reported (a process that dies mid-call frees its place after this).
IN_FLIGHT: Final = 120.0

# KEYS[1]: the sorted set of admitted calls; each scores when it counts as answered
# (server time in microseconds): its reported answer, or a provisional time.
# ARGV: calls, period in microseconds, a unique member for this attempt, and how long
# after now the call counts as answered until it is reported (microseconds).
# Returns {wait_us, now_us}: wait_us is 0 when admitted, else how long to wait before
# asking again.
# Lua numbers are doubles: microseconds since 1970 (about 1.8e15) are exact below 2^53.
_SCRIPT: Final = """
local key = KEYS[1]
local calls = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local pending = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- A call answered a period ago or more has left the window; one still in flight counts.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
if redis.call('ZCARD', key) < calls then
  redis.call('ZADD', key, now + pending, ARGV[3])
  -- An idle key removes itself once every entry would have expired anyway.
  redis.call('PEXPIRE', key, math.ceil((pending + period) / 1000) + 1000)
  return {0, now}
end
local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
if oldest > now then
  -- The oldest is still in flight: its answer may come any moment; look again soon.
  return {100000, now}
end
return {math.max(1, oldest + period - now), now}
"""

# KEYS[1]: the sorted set. ARGV[1]: a member. Its answer came now (if it is still there).
_DONE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
end
return now
"""


def limit_key(account_sid: str) -> str:
    """The Redis key of an account's shared budget: ``twilio-connector:limit:<sid>``."""
    return KEY_PREFIX + account_sid


class RedisLimiter:
    """
    At most *calls* acquisitions in any *period* seconds, shared through Redis by every
    process that uses the same server and *key*.

    It fits :class:`connector.Limiter`: pass it as ``Connection(..., limiter=...)``.
    Every process (and every connection object) that calls on behalf of one account
    must use the same Redis server and the same key, and one key must never be shared
    by two accounts. The client is bound to the event loop of its first ``acquire``;
    make one limiter per event loop, and close it with :meth:`aclose`.

    Redis must be reachable: if it is not, ``acquire`` raises redis-py's
    ``ConnectionError`` rather than letting calls through unmetered.

    Args:
        url: The Redis server, ``redis://host:port/db`` (``rediss://`` for TLS,
            ``unix:///path`` for a socket).
        key: The sorted set that holds the budget; see :func:`limit_key`.
        calls: How many calls the window allows.
        period: The window, in seconds.
        jitter: Up to this many seconds are added at random to each wait, so waiters of
            different processes do not all ask again in the same instant.
        margin: For calls admitted with :meth:`acquire`: seconds after admission they
            count as answered (``connector._ratelimit.ARRIVAL_MARGIN``).

    Raises:
        ValueError: *calls* is not positive, or *period*, *jitter* or *margin* is out of
            range.
    """

    def __init__(
        self,
        url: str,
        key: str,
        calls: int,
        period: float,
        *,
        jitter: float = 0.005,
        margin: float = ARRIVAL_MARGIN,
    ) -> None:
        if calls < 1 or not period > 0 or not math.isfinite(period):
            raise ValueError(f"a limit needs calls >= 1 and period > 0, not {calls}/{period}")
        if not 0 <= jitter <= period:
            raise ValueError(f"jitter must be between 0 and the period, not {jitter}")
        if not 0 <= margin < math.inf:
            raise ValueError(f"the margin must be 0 or more seconds, not {margin}")
        self.url = url
        self.key = key
        self.calls = calls
        self.period = period
        self.jitter = jitter
        self.margin = margin
        self._period_us = math.ceil(period * 1_000_000)
        self._margin_us = math.ceil(margin * 1_000_000)
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: tuple[AsyncScript, AsyncScript] | None = None
        self._closed = False
        # One id per limiter plus a counter makes each sorted-set member unique, so two
        # calls admitted in the same microsecond are both counted.
        self._member_prefix = uuid.uuid4().hex
        self._counter = 0

    @classmethod
    def for_account(
        cls,
        url: str,
        account_sid: str,
        *,
        calls: int = 1200,
        period: float = 60.0,
        jitter: float = 0.005,
        margin: float = ARRIVAL_MARGIN,
    ) -> RedisLimiter:
        """
        The limiter of one Twilio account, under :func:`limit_key`.

        The default is Twilio's connector limit, 1200 calls in any 60 seconds.

        Args:
            url: The Redis server, such as ``redis://127.0.0.1:6379/0``.
            account_sid: The account whose budget it holds.
            calls: How many calls the window allows.
            period: The window, in seconds.
            jitter: See :class:`RedisLimiter`.
            margin: See :class:`RedisLimiter`.
        """
        return cls(url, limit_key(account_sid), calls, period, jitter=jitter, margin=margin)

    def __repr__(self) -> str:
        return f"<RedisLimiter {self.key!r} {self.calls}/{self.period}s +{self.margin:g}s>"

    def _bind(self) -> tuple[AsyncScript, AsyncScript]:
        if self._closed:
            raise RuntimeError("this RedisLimiter is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._client = aioredis.Redis.from_url(self.url)
            self._scripts = (
                self._client.register_script(_SCRIPT),
                self._client.register_script(_DONE),
            )
        elif self._loop is not loop:
            # redis.asyncio connections belong to the loop that opened them.
            raise RuntimeError(
                "this RedisLimiter is bound to another event loop; make one per loop"
            )
        assert self._scripts is not None
        return self._scripts

    async def _admit(self, pending_us: int) -> tuple[str, float]:
        script, _ = self._bind()
        while True:
            self._counter += 1
            member = f"{self._member_prefix}:{self._counter}"
            wait_us, now_us = await script(
                keys=[self.key], args=[self.calls, self._period_us, member, pending_us]
            )
            if wait_us == 0:
                return member, int(now_us) / 1_000_000
            await asyncio.sleep(int(wait_us) / 1_000_000 + random.uniform(0, self.jitter))

    async def admit(self) -> RedisAdmission:
        """
        Wait until the shared budget admits one more call, and take it.

        Returns:
            The admission; report the call's answer with ``await admission.done()``
            (until then it counts as in flight, for at most :data:`IN_FLIGHT` seconds).
        """
        member, at = await self._admit(math.ceil(IN_FLIGHT * 1_000_000))
        return RedisAdmission(self, member, at)

    async def _done(self, member: str) -> None:
        _, done = self._bind()
        await done(keys=[self.key], args=[member])

    async def reserve(self) -> float:
        """
        Wait until the budget admits one more call whose answer will not be reported.

        Returns:
            The Redis server's time of the admission, in seconds since 1970.
        """
        _, at = await self._admit(self._margin_us)
        return at

    async def acquire(self) -> None:
        """Wait until the shared budget admits one more call (the Limiter protocol)."""
        await self.reserve()

    async def aclose(self) -> None:
        """Close the connections to Redis. The limiter cannot be used afterwards."""
        self._closed = True
        client, self._client, self._scripts = self._client, None, None
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


class RedisAdmission:
    """
    A call :meth:`RedisLimiter.admit` let through.

    Attributes:
        at: When Redis admitted it (server time, seconds since 1970).
    """

    __slots__ = ("_limiter", "_member", "at")

    def __init__(self, limiter: RedisLimiter, member: str, at: float) -> None:
        self._limiter = limiter
        self._member = member
        self.at = at

    async def done(self) -> None:
        """
        The call's answer came back: from now it leaves the window after a period.

        It never raises: if Redis cannot be told, the call keeps counting as in flight
        (for at most :data:`IN_FLIGHT` seconds), which errs on the safe side.
        """
        try:
            await self._limiter._done(self._member)
        except Exception as exc:  # the answer itself must not be lost to this
            log.warning(
                "could not report an answer to Redis (%s); the call counts as in flight", exc
            )


# KEYS: the queue key of each candidate sender, then the recipient's sticky key.
# ARGV: n, whether to look at the sticky key (1/0), then per sender: seconds of work
# (microseconds), horizon (microseconds), sender name.
# Returns {index (1-based), wait_us, now_us, drains_at_us}. A queue key holds when the
# sender's queue will have drained (server time, microseconds), and expires a minute
# after that.
_BOOK: Final = """
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local choice = nil
if ARGV[2] == '1' then
  local sticky = redis.call('GET', KEYS[n + 1])
  if sticky then
    for i = 1, n do
      if ARGV[2 + 3 * i] == sticky then choice = i end
    end
  end
end
local best, best_finish = nil, nil
for i = 1, n do
  local drain = tonumber(redis.call('GET', KEYS[i]) or '0')
  local finish = math.max(drain, now) + tonumber(ARGV[3 * i])
  if choice == i or (choice == nil and (best == nil or finish < best_finish)) then
    best, best_finish = i, finish
  end
end
local horizon = tonumber(ARGV[3 * best + 1])
redis.call('SET', KEYS[best], string.format('%.0f', best_finish),
           'PX', math.ceil((best_finish - now) / 1000) + 60000)
return {best, math.max(0, best_finish - horizon - now), now, best_finish}
"""

# KEYS[1]: a queue key. ARGV: seconds of work (microseconds), and the mode: 'refund'
# takes them out (never below now), 'saturate' makes the queue at least that long.
_ADJUST: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local drain = tonumber(redis.call('GET', KEYS[1]) or '0')
local work = tonumber(ARGV[1])
local value
if ARGV[2] == 'refund' then
  value = math.max(now, drain - work)
else
  value = math.max(drain, now + work)
end
redis.call('SET', KEYS[1], string.format('%.0f', value),
           'PX', math.ceil((value - now) / 1000) + 60000)
return value
"""


class RedisSenderBook:
    """
    Senders' queue estimates kept in Redis, shared by every process that paces sends
    for the same account (:class:`connector.Pacing` ``book``).

    Each sender has a key holding when its queue at Twilio will have drained, on the
    Redis server's clock; a Lua script chooses the sender for a message (the recipient's
    sticky sender, else the one that would finish it first) and books its work
    atomically, so processes never overfill a sender between them. A recipient's sticky
    sender is kept for *sticky_ttl* seconds.

    Like :class:`RedisLimiter`, it binds to the event loop of its first use and raises
    redis-py's ``ConnectionError`` when Redis is down (nothing is sent unpaced).

    Args:
        url: The Redis server.
        prefix: The prefix of its keys; one per account (:meth:`for_account`).
        sticky_ttl: How long a recipient keeps its sender, in seconds.
    """

    def __init__(self, url: str, prefix: str, *, sticky_ttl: float = 7 * 86400) -> None:
        if not sticky_ttl > 0:
            raise ValueError(f"sticky_ttl must be above 0, not {sticky_ttl}")
        self.url = url
        self.prefix = prefix
        self.sticky_ttl = sticky_ttl
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: tuple[AsyncScript, AsyncScript] | None = None
        self._closed = False

    @classmethod
    def for_account(cls, url: str, account_sid: str, **kw: float) -> RedisSenderBook:
        """The book of one account: keys under ``twilio-connector:senders:<sid>:``."""
        return cls(url, f"{account_sid}:", **kw)

    def __repr__(self) -> str:
        return f"<RedisSenderBook {self.prefix!r}>"

    def queue_key(self, sender: str) -> str:
        """The key of *sender*'s queue."""
        return f"{SENDERS_PREFIX}{self.prefix}{sender}"

    def sticky_key(self, recipient: str) -> str:
        """The key of *recipient*'s sticky sender."""
        return f"{STICKY_PREFIX}{self.prefix}{recipient}"

    def _bind(self) -> tuple[aioredis.Redis, tuple[AsyncScript, AsyncScript]]:
        if self._closed:
            raise RuntimeError("this RedisSenderBook is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._client = aioredis.Redis.from_url(self.url)
            self._scripts = (
                self._client.register_script(_BOOK),
                self._client.register_script(_ADJUST),
            )
        elif self._loop is not loop:
            raise RuntimeError(
                "this RedisSenderBook is bound to another event loop; make one per loop"
            )
        assert self._client is not None and self._scripts is not None
        return self._client, self._scripts

    async def book(
        self,
        senders: Sequence[str],
        seconds: Sequence[float],
        horizons: Sequence[float],
        recipient: str | None,
    ) -> Booking:
        """See :class:`connector.Pacing`'s ``book``."""
        _, (script, _) = self._bind()
        keys = [self.queue_key(sender) for sender in senders]
        keys.append(self.sticky_key(recipient) if recipient is not None else keys[0])
        args: list[Any] = [len(senders), 1 if recipient is not None else 0]
        for sender, work, horizon in zip(senders, seconds, horizons, strict=True):
            args += [round(work * 1_000_000), round(horizon * 1_000_000), sender]
        index, wait_us, _, drains_us = await script(keys=keys, args=args)
        chosen = int(index) - 1
        return Booking(
            senders[chosen], seconds[chosen], int(wait_us) / 1_000_000, int(drains_us) / 1_000_000
        )

    async def refund(self, booking: Booking) -> None:
        """Take a booking's work back out of its sender's queue."""
        _, (_, adjust) = self._bind()
        work = round(booking.seconds * 1_000_000)
        await adjust(keys=[self.queue_key(booking.sender)], args=[work, "refund"])

    async def saturate(self, sender: str, seconds: float) -> None:
        """Make *sender*'s queue at least *seconds* long from now (Twilio said it is full)."""
        _, (_, adjust) = self._bind()
        await adjust(keys=[self.queue_key(sender)], args=[round(seconds * 1_000_000), "full"])

    async def remember(self, recipient: str, sender: str) -> None:
        """Keep *recipient* on *sender*."""
        client, _ = self._bind()
        await client.set(self.sticky_key(recipient), sender, ex=math.ceil(self.sticky_ttl))

    async def aclose(self) -> None:
        """Close the connections to Redis. The book cannot be used afterwards."""
        self._closed = True
        client, self._client, self._scripts = self._client, None, None
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
