"""The consent ledger in Redis: shared by workers, against a private redis-server."""

from __future__ import annotations

import uuid

import pytest

from connector import open_connection
from connector.consent import ACCOUNT_WIDE, ConsentEntry, RedisLedger, record_inbound
from connector.emulator import EmulatorServer
from connector.errors import OptedOutError


# Starts a redis-server.
pytestmark = pytest.mark.slow

OURS = "+15005550006"
PERSON = "+15551230002"


def _account() -> str:
    return "AC" + uuid.uuid4().hex


async def test_two_workers_share_one_ledger(redis_url: str) -> None:
    """What one worker's ledger records, another's sees; the newer word wins on both."""
    account = _account()
    async with RedisLedger(redis_url, account) as one, RedisLedger(redis_url, account) as two:
        assert await one.opted_out(OURS, PERSON) is None
        await record_inbound(one, to=OURS, from_=PERSON, body="STOP", at=100.0)
        assert "texted STOP" in str(await two.opted_out(OURS, PERSON))
        assert await two.record(OURS, PERSON, "opted_in", "START", at=200.0)
        assert not await one.record(OURS, PERSON, "opted_out", "STOP", at=150.0)
        assert await one.opted_out(OURS, PERSON) is None
        await record_inbound(two, to=OURS, from_=PERSON, body="STOPALL", at=300.0)
        assert "every sender" in str(await one.opted_out("+15005550011", PERSON))
        assert [e async for e in one.entries()] == [
            ConsentEntry(ACCOUNT_WIDE, PERSON, "opted_out", "STOPALL", 300.0),
            ConsentEntry(OURS, PERSON, "opted_in", "START", 200.0),
        ]
    async with RedisLedger(redis_url, _account()) as stranger:
        assert await stranger.opted_out(OURS, PERSON) is None


async def test_a_worker_connection_with_redis_gates_on_the_shared_ledger(
    redis_url: str,
    twilio_emulator: EmulatorServer,
) -> None:
    """open_connection with a Redis URL (the workers' shared limit) checks sends against the ledger there."""
    env = {
        "TWILIO_ACCOUNT_SID": twilio_emulator.account_sid,
        "TWILIO_AUTH_TOKEN": twilio_emulator.auth_token,
        "TWILIO_BASE_URL": twilio_emulator.base_url,
    }
    async with RedisLedger(redis_url, twilio_emulator.account_sid) as listener_side:
        await record_inbound(listener_side, to=OURS, from_=PERSON, body="STOP")
    async with open_connection(env=env, redis_url=redis_url, rate_limit=(100, 1.0)) as conn:
        with pytest.raises(OptedOutError):
            await conn.call("send_text_message", {"from": OURS, "to": PERSON, "body": "hi"})
    assert twilio_emulator.stats()["requests"] == 0
