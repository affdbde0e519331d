"""
Sender pacing through a mock Twilio on a virtual clock: segments, horizons, pools, sticky
senders, and the answers to Twilio's throughput errors.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
from conftest import ACCOUNT_SID, AUTH_TOKEN
from virtual_clock import run_virtual

from connector import (
    BadRequestError,
    Connection,
    HttpRequest,
    HttpResponse,
    InvalidInputError,
    MockTransport,
    Pacing,
    RetryPolicy,
    SenderProfile,
    default_connector,
)
from connector._pacing import (
    DEFAULT_HORIZON,
    LocalSenderBook,
    Pacer,
    parse_duration,
    parse_rate,
    validate_pool,
)
from connector._retry import THROUGHPUT_ERRORS, Reaction, throughput_error
from connector._twilio import DEFAULT_SENDER_RATES, QUEUE_LIMIT, count_segments
from connector._validation import compile_action


LONG_CODES = ["+15005550006", "+15005550010", "+15005550011"]
TOLL_FREE = "+18005550100"
GSM_2 = "Two segments: " + "x" * 150  # 164 GSM-7 characters
UCS_1 = "Grüße aus Köln ✓"  # the check mark is not GSM-7
UCS_2 = "✓" * 100  # 100 UCS-2 units: 67 + 33


class Twilio:
    """A mock Messages API that records each send's arrival (loop time), sender and body."""

    def __init__(
        self, refuse: Callable[[dict[str, str], int], tuple[int, int] | None] | None = None
    ):
        self.sends: list[tuple[float, str, str, str]] = []
        self.refused: list[tuple[float, str, int]] = []
        self.refuse = refuse

    def __call__(self, request: HttpRequest) -> HttpResponse:
        now = asyncio.get_running_loop().time()
        form = dict(parse_qsl((request.body or b"").decode()))
        sender = form.get("From") or form.get("MessagingServiceSid", "")
        answer = self.refuse(form, len(self.sends)) if self.refuse else None
        if answer is not None:
            status, code = answer
            self.refused.append((now, sender, code))
            body = {"code": code, "message": f"refused {code}", "status": status}
            return HttpResponse(status, json.dumps(body).encode())
        self.sends.append((now, sender, form["To"], form.get("Body", "")))
        message = {
            "sid": f"SM{len(self.sends):032x}",
            "account_sid": ACCOUNT_SID,
            "from": sender,
            "to": form["To"],
            "body": form.get("Body", ""),
            "status": "queued",
            "num_segments": str(count_segments(form.get("Body", ""))),
        }
        return HttpResponse(201, json.dumps(message).encode())

    def queue_peaks(self, rates: dict[str, float]) -> dict[str, float]:
        """The longest queue (seconds of work) each sender had at Twilio, replaying the sends."""
        free: dict[str, float] = defaultdict(lambda: -1.0)
        peak: dict[str, float] = defaultdict(float)
        for at, sender, _, body in self.sends:
            free[sender] = max(free[sender], at) + count_segments(body) / rates[sender]
            peak[sender] = max(peak[sender], free[sender] - at)
        return dict(peak)

    def finish(self, rates: dict[str, float]) -> float:
        """When Twilio would have sent the last segment."""
        free: dict[str, float] = defaultdict(lambda: -1.0)
        for at, sender, _, body in self.sends:
            free[sender] = max(free[sender], at) + count_segments(body) / rates[sender]
        return max(free.values())


def connection(twilio: Twilio, pacing: Pacing | None = None, **kw: Any) -> Connection:
    return Connection(
        ACCOUNT_SID,
        AUTH_TOKEN,
        transport=MockTransport(twilio),
        rate_limit=False,
        pacing=pacing,
        env={},
        **kw,
    )


def sms(i: int, body: str = "hello", sender: Any = "+15005550006") -> dict[str, Any]:
    return {"from": sender, "to": f"+1555{i:07d}", "body": body}


# -- values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1/s", 1.0),
        ("100/s", 100.0),
        ("1 segment/s", 1.0),
        ("3 segments / sec", 3.0),
        ("30/min", 0.5),
        ("3600/h", 1.0),
        ("80 mps", 80.0),
        ("0.5", 0.5),
        (2, 2.0),
    ],
)
def test_rates_read_as_units_per_second(text: str | float, rate: float) -> None:
    """Rates are N per second, minute or hour, with an optional unit name."""
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["", "fast", "1/fortnight", "0/s", "-1/s", True])
def test_malformed_rates_are_refused(text: Any) -> None:
    """A rate must be a positive number per known unit."""
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_durations_read_as_seconds() -> None:
    """Horizons are given in seconds, minutes or hours."""
    assert [parse_duration(v) for v in ("90", "90s", "15m", "1.5h", "10min", 60)] == [
        90,
        90,
        900,
        5400,
        600,
        60,
    ]
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


def test_profiles_take_the_kind_and_its_default_rate() -> None:
    """An undeclared sender is paced at its kind's default; a declaration wins."""
    pacing = Pacing(
        senders={
            "+15005550010": "2/s",
            "+15005550011": {"rate": "5/s", "kind": "toll_free", "horizon": "10m"},
            "MG" + "a" * 32: "30/s",
        },
        kind_rates={"toll_free": "10/s"},
    )
    assert pacing.profile("+15005550006") == SenderProfile("+15005550006", 1.0, "long_code")
    assert pacing.profile("+15005550010").rate == 2.0
    assert pacing.profile("+15005550011") == SenderProfile("+15005550011", 5.0, "toll_free", 600.0)
    assert pacing.profile(TOLL_FREE) == SenderProfile(TOLL_FREE, 10.0, "toll_free")
    assert pacing.profile("12345") == SenderProfile("12345", 100.0, "short_code")
    assert pacing.profile("whatsapp:+15005550006").rate == DEFAULT_SENDER_RATES["whatsapp"]
    assert pacing.profile("MG" + "a" * 32).rate == 30.0
    # A Messaging Service's rate is the sum of its senders': unknown unless declared.
    assert pacing.profile("MG" + "b" * 32).rate is None
    assert pacing.horizon == DEFAULT_HORIZON < QUEUE_LIMIT


def test_hosts_hand_pacing_over_as_a_mapping() -> None:
    """The shape hosts use (a workflow's block, an Airflow extra, a Prefect block) reads back."""
    pacing = Pacing.from_config(
        {
            "senders": {"+15005550006": "1/s", "12345": "100/s"},
            "horizon": "30m",
            "account_rate": "1000/s",
            "sticky": False,
        }
    )
    assert pacing.horizon == 1800
    assert pacing.account_rate == 1000
    assert not pacing.sticky
    assert set(pacing.senders) == {"+15005550006", "12345"}
    with pytest.raises(ValueError, match="unknown pacing settings"):
        Pacing.from_config({"speed": "fast"})
    with pytest.raises(ValueError, match="unknown keys"):
        Pacing.from_config({"senders": {"+15005550006": {"mps": 1}}})
    with pytest.raises(ValueError, match="under Twilio's queue limit"):
        Pacing(horizon="11h")


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"horizon": [1]}, r"^horizon: expected a duration such as 30m, not \[1\]$"),
        ({"queue_limit": None}, "^queue_limit: expected a duration"),
        ({"account_rate": {}}, "^account_rate: expected a rate"),
        ({"kind_rates": 5}, "^kind_rates: expected a mapping of sender kinds to rates"),
        ({"senders": ["+15005550006"]}, "^senders must map each sender to its rate"),
        ({"senders": {"+15005550006": "fast"}}, r"^\+15005550006: expected a rate such as 1/s"),
        ({"senders": {"+15005550006": [1]}}, r"^\+15005550006: expected a rate"),
        ({"senders": {"+15005550006": {"kind": ["x"]}}}, r"^\+15005550006: unknown kind"),
    ],
)
def test_a_host_s_malformed_json_is_a_value_error_naming_its_key(
    config: dict[str, Any], error: str
) -> None:
    """Whatever JSON a form holds, a wrong value is a ValueError that says where, never a crash."""
    with pytest.raises(ValueError, match=error):
        Pacing.from_config(config)


async def test_open_connection_takes_the_hosts_mapping_as_plugin_connect_does() -> None:
    """open_connection reads a host's pacing mapping with Pacing.from_config, like Plugin.connect."""
    from connector import open_connection
    from connector.plugin import installed

    config = {"senders": {"+15005550006": "2/s"}, "horizon": "30m", "sticky": False}
    values = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}
    async with open_connection(values=values, pacing=config) as conn:
        assert conn.pacing == Pacing.from_config(config)
    assert installed().get("twilio").connect(values, pacing=config).pacing == conn.pacing
    with pytest.raises(ValueError, match="unknown pacing settings"):
        async with open_connection(values=values, pacing={"speed": "fast"}):
            pass  # pragma: no cover


def test_a_pool_is_validated_sender_by_sender() -> None:
    """Each sender of a pool is checked as `from`; the result keeps the pool."""
    spec = default_connector().action("send_text_message")
    action = compile_action(spec)
    clean = validate_pool(spec, action.validate, sms(1, sender=[*LONG_CODES, LONG_CODES[0]]))
    assert clean["from"] == LONG_CODES
    with pytest.raises(InvalidInputError, match="from"):
        validate_pool(spec, action.validate, sms(1, sender=["+15005550006", "not a number"]))
    # twilio-python's name for the parameter takes a pool too.
    aliased = {"from_": LONG_CODES, "to": "+15551230000", "body": "hi"}
    assert validate_pool(spec, action.validate, aliased)["from"] == LONG_CODES


def test_the_error_table_says_what_each_code_is() -> None:
    """21611 waits for the queue, 63017 backs off, 30001, 30036 and 14107 fail with a reason."""
    assert throughput_error(21611).reaction is Reaction.WAIT_FOR_QUEUE  # type: ignore[union-attr]
    assert throughput_error(63017).reaction is Reaction.BACK_OFF  # type: ignore[union-attr]
    for code in (30001, 30036, 14107):
        entry = THROUGHPUT_ERRORS[code]
        assert entry.reaction is Reaction.FAIL
        assert not entry.on_create
        assert entry.reason
    assert throughput_error(21211) is None
    assert throughput_error(None) is None


# -- one sender ---------------------------------------------------------------------------


def test_a_long_code_is_fed_no_faster_than_its_queue_drains() -> None:
    """A horizon's worth goes at once, then one segment a second; the queue never passes the horizon."""
    run_virtual(_test_a_long_code_is_fed_no_faster_than_its_queue_drains())


async def _test_a_long_code_is_fed_no_faster_than_its_queue_drains() -> None:
    twilio = Twilio()
    async with connection(twilio, Pacing(horizon=60)) as conn:
        await asyncio.gather(*(conn.call("send_text_message", sms(i)) for i in range(200)))
    times = [at for at, *_ in twilio.sends]
    assert sum(1 for t in times if t < 1) == 60
    assert twilio.queue_peaks({"+15005550006": 1.0})["+15005550006"] <= 60 + 1e-6
    # Twilio finishes when it would have anyway: 200 segments at 1/s.
    assert twilio.finish({"+15005550006": 1.0}) == pytest.approx(200, abs=1e-3)


def test_segments_and_encodings_set_the_pace() -> None:
    """Two-segment and UCS-2 bodies cost their segments; an MMS and a WhatsApp message cost one."""
    run_virtual(_test_segments_and_encodings_set_the_pace())


async def _test_segments_and_encodings_set_the_pace() -> None:
    twilio = Twilio()
    bodies = [GSM_2, UCS_1, UCS_2, "hi"] * 5  # 2 + 1 + 2 + 1 segments, five times: 30
    assert [count_segments(b) for b in bodies[:4]] == [2, 1, 2, 1]
    async with connection(twilio, Pacing(horizon=10)) as conn:
        for i, body in enumerate(bodies):
            await conn.call("send_text_message", sms(i, body))
        status = conn.pacer.status()  # type: ignore[union-attr]
    assert (status.messages, status.units) == (20, 30)
    assert twilio.queue_peaks({"+15005550006": 1.0})["+15005550006"] <= 10 + 1e-6
    # 30 segments at 1/s, 10 of them queued at once: the last send goes out at 20 s.
    assert twilio.sends[-1][0] == pytest.approx(20, abs=1e-3)

    pacer = Pacer(Pacing(horizon=10))
    mms = {"to": "+15551230000", "media_url": ["https://example.com/a.jpg"], "body": UCS_2}
    whatsapp = {"from": "whatsapp:+15005550006", "to": "whatsapp:+15551230000", "body": GSM_2}
    spec = default_connector().action("send_message")
    action = compile_action(spec)

    async def exchange(clean: dict[str, Any]) -> Any:
        return clean

    await pacer.send(spec, {**mms, "from": "+15005550006"}, action.validate, exchange)
    await pacer.send(spec, whatsapp, action.validate, exchange)
    assert pacer.status().units == 2


def test_a_validity_period_shortens_the_horizon() -> None:
    """A message with ValidityPeriod V never waits behind more than V/2 of queue."""
    run_virtual(_test_a_validity_period_shortens_the_horizon())


async def _test_a_validity_period_shortens_the_horizon() -> None:
    twilio = Twilio()
    async with connection(twilio, Pacing(horizon=600)) as conn:
        await asyncio.gather(
            *(conn.call("send_text_message", {**sms(i), "validity_period": 20}) for i in range(40))
        )
    assert twilio.queue_peaks({"+15005550006": 1.0})["+15005550006"] <= 10 + 1e-6


def test_scheduled_and_unpaced_sends_go_at_once() -> None:
    """A scheduled send, and a Messaging Service of unknown rate, are not held."""
    run_virtual(_test_scheduled_and_unpaced_sends_go_at_once())


async def _test_scheduled_and_unpaced_sends_go_at_once() -> None:
    twilio = Twilio()
    service = "MG" + "c" * 32
    async with connection(twilio, Pacing(horizon=5)) as conn:
        for i in range(20):
            await conn.call(
                "send_message",
                {"to": f"+1555{i:07d}", "messaging_service_sid": service, "body": "x"},
            )
    assert max(at for at, *_ in twilio.sends) < 0.01


def test_pacing_can_be_turned_off() -> None:
    """pacing=False sends at once, and a pool is then refused as an invalid from."""
    run_virtual(_test_pacing_can_be_turned_off())


async def _test_pacing_can_be_turned_off() -> None:
    twilio = Twilio()
    async with connection(twilio, False) as conn:  # type: ignore[arg-type]
        assert conn.pacer is None
        await asyncio.gather(*(conn.call("send_text_message", sms(i)) for i in range(50)))
        with pytest.raises(InvalidInputError, match="from"):
            await conn.call("send_text_message", sms(0, sender=LONG_CODES))
    assert max(at for at, *_ in twilio.sends) < 0.01


# -- pools ----------------------------------------------------------------------------------


def test_a_pool_keeps_every_sender_busy_and_finishes_together() -> None:
    """Three long codes and a toll-free number share a broadcast by rate and finish within one message."""
    run_virtual(_test_a_pool_keeps_every_sender_busy_and_finishes_together())


async def _test_a_pool_keeps_every_sender_busy_and_finishes_together() -> None:
    twilio = Twilio()
    pool = [*LONG_CODES, TOLL_FREE]
    rates = {**dict.fromkeys(LONG_CODES, 1.0), TOLL_FREE: 3.0}
    bodies = ["one", GSM_2, UCS_1, UCS_2]
    pacing = Pacing(senders={TOLL_FREE: "3/s"}, horizon=30)
    async with connection(twilio, pacing) as conn:
        await asyncio.gather(
            *(conn.call("send_text_message", sms(i, bodies[i % 4], pool)) for i in range(600))
        )
        status = conn.pacer.status()  # type: ignore[union-attr]
    segments = sum(count_segments(b) for *_, b in twilio.sends)
    assert segments == 900
    ideal = segments / sum(rates.values())
    assert twilio.finish(rates) <= ideal * 1.01
    assert status.rate == 6.0
    peaks = twilio.queue_peaks(rates)
    # Within the milliseconds a request takes to arrive (the virtual loop charges each
    # iteration 0.1 us, and 600 waiting sends make many).
    assert all(peak <= 30 + 0.01 for peak in peaks.values()), peaks
    # Each sender got work in proportion to its rate: the same seconds of sending each.
    work: Counter[str] = Counter()
    for _, sender, _, body in twilio.sends:
        work[sender] += count_segments(body) / rates[sender]
    assert set(work) == set(pool)
    assert max(work.values()) - min(work.values()) <= 2.0, work


def test_a_recipient_stays_on_its_sender() -> None:
    """With a pool, every message to one recipient goes from the sender it had first."""
    run_virtual(_test_a_recipient_stays_on_its_sender())


async def _test_a_recipient_stays_on_its_sender() -> None:
    twilio = Twilio()
    async with connection(twilio, Pacing(horizon=30)) as conn:
        for round_ in range(3):
            await asyncio.gather(
                *(
                    conn.call("send_text_message", sms(i, f"r{round_}", LONG_CODES))
                    for i in range(9)
                )
            )
    by_recipient: dict[str, set[str]] = defaultdict(set)
    for _, sender, to, _ in twilio.sends:
        by_recipient[to].add(sender)
    assert all(len(senders) == 1 for senders in by_recipient.values())
    assert len({next(iter(s)) for s in by_recipient.values()}) == 3

    twilio = Twilio()
    async with connection(twilio, Pacing(horizon=30, sticky=False)) as conn:
        for _ in range(3):
            await conn.call("send_text_message", sms(1, "again", LONG_CODES))
    assert len({sender for _, sender, *_ in twilio.sends}) == 3


# -- Twilio's throughput errors ---------------------------------------------------------------


def test_21611_waits_for_the_queue_then_sends_again() -> None:
    """A refused send (21611) is sent again once the sender's queue has drained below the horizon."""
    run_virtual(_test_21611_waits_for_the_queue_then_sends_again())


async def _test_21611_waits_for_the_queue_then_sends_again() -> None:
    twilio = Twilio(lambda form, sent: (400, 21611) if sent == 3 and not twilio.refused else None)
    pacing = Pacing(horizon=60, queue_limit=600)
    async with connection(twilio, pacing) as conn:
        for i in range(5):
            await conn.call("send_text_message", sms(i))
    assert [code for *_, code in twilio.refused] == [21611]
    refused_at = twilio.refused[0][0]
    # Twilio said the queue is full (600 s of work): the send waited for 600 - 60 s.
    assert twilio.sends[3][0] - refused_at == pytest.approx(600 - 60 + 1, abs=1e-3)
    assert len(twilio.sends) == 5


def test_21611_in_a_pool_moves_on_to_another_sender() -> None:
    """When one sender of a pool is refused (21611), its messages go to the others at once."""
    run_virtual(_test_21611_in_a_pool_moves_on_to_another_sender())


async def _test_21611_in_a_pool_moves_on_to_another_sender() -> None:
    full = LONG_CODES[0]
    twilio = Twilio(lambda form, sent: (400, 21611) if form["From"] == full else None)
    async with connection(twilio, Pacing(horizon=60, sticky=False)) as conn:
        for i in range(10):
            await conn.call("send_text_message", sms(i, "x", LONG_CODES))
    assert len(twilio.refused) == 1
    assert {sender for _, sender, *_ in twilio.sends} == set(LONG_CODES[1:])
    assert max(at for at, *_ in twilio.sends) < 1


def test_63017_holds_every_send_then_sends_again() -> None:
    """Above the account's 2000 messages/s (63017) the connection holds all sends a second, doubling."""
    run_virtual(_test_63017_holds_every_send_then_sends_again())


async def _test_63017_holds_every_send_then_sends_again() -> None:
    twilio = Twilio(lambda form, sent: (429, 63017) if len(twilio.refused) < 2 else None)
    async with connection(twilio, Pacing(), retry=RetryPolicy.never()) as conn:
        await conn.call("send_text_message", sms(1))
    assert [code for *_, code in twilio.refused] == [63017, 63017]
    assert twilio.refused[1][0] - twilio.refused[0][0] == pytest.approx(1.0, abs=1e-3)
    assert twilio.sends[0][0] - twilio.refused[1][0] == pytest.approx(2.0, abs=1e-3)


def test_14107_fails_at_once() -> None:
    """A reply-loop refusal (14107) is raised, not retried."""
    run_virtual(_test_14107_fails_at_once())


async def _test_14107_fails_at_once() -> None:
    twilio = Twilio(lambda form, sent: (400, 14107))
    async with connection(twilio, Pacing()) as conn:
        with pytest.raises(BadRequestError, match="14107"):
            await conn.call("send_text_message", sms(1))
    assert len(twilio.refused) == 1


def test_a_refused_or_cancelled_send_gives_its_place_back() -> None:
    """A send Twilio refuses, or one cancelled while it waits, leaves nothing in the queue estimate."""
    run_virtual(_test_a_refused_or_cancelled_send_gives_its_place_back())


async def _test_a_refused_or_cancelled_send_gives_its_place_back() -> None:
    twilio = Twilio(lambda form, sent: (400, 21211) if form["To"].endswith("9") else None)
    book = LocalSenderBook()
    async with connection(twilio, Pacing(horizon=5, book=book)) as conn:
        start = book.clock.now()
        with pytest.raises(BadRequestError):
            await conn.call("send_text_message", sms(9))
        assert book.drains_at("+15005550006") <= book.clock.now()
        for i in range(5):
            await conn.call("send_text_message", sms(i))
        waiting = asyncio.ensure_future(conn.call("send_text_message", sms(5)))
        await asyncio.sleep(0.5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert book.drains_at("+15005550006") == pytest.approx(start + 5, abs=1e-3)


def test_the_status_gives_the_expected_finish() -> None:
    """Queued segments plus the rest at the average so far, over the senders' rate, give the finish."""
    run_virtual(_test_the_status_gives_the_expected_finish())


async def _test_the_status_gives_the_expected_finish() -> None:
    twilio = Twilio()
    async with connection(twilio, Pacing(horizon=100)) as conn:
        assert conn.pacer is not None
        assert conn.pacer.status().expected_finish(10) is None
        for i in range(10):
            await conn.call("send_text_message", sms(i, GSM_2 if i % 2 else "x"))
        status = conn.pacer.status()
    assert (status.messages, status.units, status.rate) == (10, 15, 1.0)
    assert status.queued_units == pytest.approx(15, abs=0.01)
    # 15 queued, 20 more messages at 1.5 segments each: 45 segments at 1/s.
    assert status.expected_finish(20) == pytest.approx(status.now + 45, abs=0.01)
