"""
The connection's limit under Prefect: task threads share one connection per process,
and processes share a Redis-held limit.

Admissions are recorded where the limiter grants them, in the connection's own loop (and
in the other worker's process): the emulator's record of arrivals would also count the
moments its loop, busy in this process, was late to read them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest


pytest.importorskip("prefect", reason="Prefect is not installed; `nox -s prefect` runs these tests")

from prefect import flow, unmapped

from connector._ratelimit import SlidingWindowLimiter
from connector.emulator import ALWAYS_VALID_FROM
from connector.models import Message
from connector.prefect import TwilioCredentials, send_text_message
from connector.redis_limiter import RedisLimiter


if TYPE_CHECKING:
    from prefect_harness import Emulator


pytest_plugins = ["prefect_harness"]
pytestmark = pytest.mark.usefixtures("prefect_test")

FROM = ALWAYS_VALID_FROM

# Seconds a thread may be held up (by the GIL, on a loaded machine) between the
# limiter's grant and its record.
JITTER = 0.05


def _max_in_window(times: Sequence[float], period: float) -> int:
    # The most admissions in any half-open window [t, t + period), over every start t;
    # it is enough to start windows at admissions.
    ordered = sorted(times)
    best = 0
    end = 0
    for start, t in enumerate(ordered):
        while end < len(ordered) and ordered[end] < t + period:
            end += 1
        best = max(best, end - start)
    return best


#: The call limit's window in these tests (10 calls per 0.5 s).
PERIOD = 0.5


def _record(monkeypatch: pytest.MonkeyPatch, limiter: type[Any]) -> list[float]:
    """Record the wall-clock time of every grant of *limiter* (a class) in this process."""
    granted: list[float] = []
    admit = limiter.admit

    async def recording(self: Any) -> Any:
        # The connection asks for admission (and reports the answer to the ticket).
        admission = await admit(self)
        if self.period == PERIOD:  # not the account's messages-per-second limiter
            granted.append(time.time())
        return admission

    monkeypatch.setattr(limiter, "admit", recording)
    return granted


@flow
def broadcast(credentials: TwilioCredentials, recipients: list[str]) -> list[Message]:
    sent = send_text_message.map(
        from_=unmapped(FROM),
        to=recipients,
        body=unmapped("Flash sale"),
        credentials=unmapped(credentials),
    )
    return list(sent.result())


@pytest.mark.slow
def test_200_mapped_sends_on_worker_threads_hold_one_limit(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    200 sends mapped on the default thread-pool task runner go through one connection
    and one limiter: never more than 10 in half a second, and the limit is what paces
    them (Prefect alone runs them several times faster).
    """
    granted = _record(monkeypatch, SlidingWindowLimiter)
    recipients = [f"+1555100{n:04d}" for n in range(200)]
    sent = broadcast(emulator.credentials(rate_limit="10/0.5"), recipients)
    assert sorted(str(m.to) for m in sent) == recipients
    assert len(emulator.messages()) == 200
    assert len(granted) == 200
    # Holds: no half-second saw more than 10 (less the time a grant may wait for its record).
    assert _max_in_window(granted, 0.5 - JITTER) <= 10
    # Binds: windows are full, and the 190 after the first 10 took at least 19 periods.
    assert _max_in_window(granted, 0.5 + JITTER) >= 10
    assert max(granted) - min(granted) >= 190 / 10 * 0.5 - JITTER


def test_equal_credentials_share_one_connection(emulator: Emulator) -> None:
    """Blocks with equal values (Prefect copies them into each task) share a connection; others do not."""
    first = emulator.credentials(rate_limit="50/1")
    assert first.get_client() is emulator.credentials(rate_limit="50/1").get_client()
    assert first.get_client() is not emulator.credentials(rate_limit="10/1").get_client()


def test_environment_credentials_follow_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty block reads TWILIO_*; when they change, it opens another connection."""
    for name, value in (
        ("TWILIO_ACCOUNT_SID", emulator.server.account_sid),
        ("TWILIO_AUTH_TOKEN", emulator.server.auth_token),
        ("TWILIO_BASE_URL", emulator.server.base_url),
    ):
        monkeypatch.setenv(name, value)
    from_env = TwilioCredentials().get_client()
    message = from_env.call("send_text_message", {"from": FROM, "to": "+15551234567", "body": "x"})
    assert [m["sid"] for m in emulator.messages()] == [message.sid]
    assert TwilioCredentials().get_client() is from_env
    monkeypatch.setenv("TWILIO_EMULATOR", "1")
    assert TwilioCredentials().get_client() is not from_env


WORKER = """
import json, sys, time
from connector.prefect import TwilioCredentials
from connector.redis_limiter import RedisLimiter


granted = []
admit = RedisLimiter.admit

async def recording(self):
    admission = await admit(self)
    granted.append(time.time())
    return admission

RedisLimiter.admit = recording
client = TwilioCredentials(
    account_sid={sid!r}, auth_token={token!r}, base_url={url!r},
    rate_limit="10/0.5", redis_url={redis!r},
).get_client()
print("ready", flush=True)
sys.stdin.readline()
for n in range(20):
    client.call("send_text_message", {{"from": {sender!r}, "to": f"+1555300{{n:04d}}", "body": "B"}})
print(json.dumps(granted), flush=True)
"""


@pytest.mark.slow
def test_workers_in_two_processes_share_a_redis_held_limit(
    emulator: Emulator, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A flow's mapped sends here and another worker process's sends, both with the same
    Redis URL, are granted together within one limit (10 per 0.5 s, plus the shared
    limit's slack for arrival jitter), and both make progress meanwhile.
    """
    ours = _record(monkeypatch, RedisLimiter)
    script = WORKER.format(
        sid=emulator.server.account_sid,
        token=emulator.server.auth_token,
        url=emulator.server.base_url,
        redis=redis_url,
        sender=FROM,
    )
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"},
    ) as worker:
        assert worker.stdout is not None and worker.stdin is not None
        try:
            assert worker.stdout.readline().strip() == "ready"
            worker.stdin.write("go\n")
            worker.stdin.flush()
            here = [f"+1555400{n:04d}" for n in range(20)]
            broadcast(emulator.credentials(rate_limit="10/0.5", redis_url=redis_url), here)
            other: list[float] = json.loads(worker.stdout.readline())
        finally:
            if worker.poll() is None:
                worker.kill()
    assert len(emulator.messages()) == 40
    assert len(ours) == len(other) == 20
    window = 0.5  # the shared limit admits call k + 10 a window after call k's answer
    both = ours + other
    assert _max_in_window(both, window - JITTER) <= 10
    assert max(both) - min(both) >= 30 / 10 * window - JITTER
    # Each process was granted calls while the other was: neither had a budget of its own.
    assert min(other) < max(ours) and min(ours) < max(other)


@pytest.mark.slow
def test_a_process_with_an_open_shared_connection_exits() -> None:
    """
    The shared connections are closed before the interpreter joins their loop threads,
    so a process exits cleanly (left to the garbage collector, they hang or spill
    tracebacks).
    """
    script = textwrap.dedent(
        """
        from connector.prefect import TwilioCredentials

        TwilioCredentials().get_client()  # opens the embedded emulator: no TWILIO_* set
        print("open")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "open"
    assert done.stderr == ""
