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

Install the extra: ``pip install 'twilio-workflow-connector[redis]'``. Then::

    limiter = RedisLimiter.for_account("redis://127.0.0.1:6379/0", account_sid)
    async with Connection(account_sid, auth_token, limiter=limiter) as conn:
        ...
    await limiter.aclose()
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from types import TracebackType
from typing import Final, Self

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ._ratelimit import ARRIVAL_MARGIN


__all__ = ["KEY_PREFIX", "RedisLimiter", "limit_key"]

#: The prefix of the keys :meth:`RedisLimiter.for_account` uses.
KEY_PREFIX: Final = "twilio-connector:limit:"

# KEYS[1]: the sorted set of admitted calls (score: server time in microseconds).
# ARGV: calls, period in microseconds, a unique member for this attempt.
# Returns {wait_us, now_us}: wait_us is 0 when admitted, else the microseconds until
# the oldest admitted call leaves the window.
# Lua numbers are doubles: microseconds since 1970 (about 1.8e15) are exact below 2^53.
_SCRIPT: Final = """
local key = KEYS[1]
local calls = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- The window is (now - period, now]: a call exactly one period old has left it.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
if redis.call('ZCARD', key) < calls then
  redis.call('ZADD', key, now, ARGV[3])
  -- An idle key removes itself once every entry would have expired anyway.
  redis.call('PEXPIRE', key, math.ceil(period / 1000) + 1000)
  return {0, now}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {math.max(1, tonumber(oldest[2]) + period - now), now}
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
        margin: Seconds added to the window for the spread of the delay between
            admission and arrival (``connector._ratelimit.ARRIVAL_MARGIN``).

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
        self._period_us = math.ceil((period + margin) * 1_000_000)
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._script: AsyncScript | None = None
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

        The default is Twilio's connector limit, 1200 calls in any 60 seconds (held
        over 60.05 s, see :class:`RedisLimiter`).

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

    def _bind(self) -> AsyncScript:
        if self._closed:
            raise RuntimeError("this RedisLimiter is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._client = aioredis.Redis.from_url(self.url)
            self._script = self._client.register_script(_SCRIPT)
        elif self._loop is not loop:
            # redis.asyncio connections belong to the loop that opened them.
            raise RuntimeError(
                "this RedisLimiter is bound to another event loop; make one per loop"
            )
        assert self._script is not None
        return self._script

    async def reserve(self) -> float:
        """
        Wait until the budget admits one more call, and take it.

        Returns:
            The Redis server's time of the admission, in seconds since 1970.
        """
        script = self._bind()
        while True:
            self._counter += 1
            member = f"{self._member_prefix}:{self._counter}"
            wait_us, now_us = await script(
                keys=[self.key], args=[self.calls, self._period_us, member]
            )
            if wait_us == 0:
                return int(now_us) / 1_000_000
            await asyncio.sleep(int(wait_us) / 1_000_000 + random.uniform(0, self.jitter))

    async def acquire(self) -> None:
        """Wait until the shared budget admits one more call (the Limiter protocol)."""
        await self.reserve()

    async def aclose(self) -> None:
        """Close the connections to Redis. The limiter cannot be used afterwards."""
        self._closed = True
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
