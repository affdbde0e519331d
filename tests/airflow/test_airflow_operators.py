"""The operators and the notifier called directly, with a task's context at hand."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

# First of all: it gives Airflow a temporary home before anything imports Airflow.
import airflow_home  # noqa: F401
import pytest

import connector.plugin as plugin_module
from connector.airflow import (
    TwilioActionOperator,
    TwilioError,
    TwilioMessageStatusTrigger,
    TwilioNotifier,
    TwilioSendMessageOperator,
)
from connector.consent import RedisLedger, SQLiteLedger
from connector.emulator import EmulatorServer
from connector.plugin import Plugin, Registry


if TYPE_CHECKING:
    from airflow_support import ThreadedEmulator

pytest_plugins = ["airflow_support"]

try:
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowSkipException, TaskDeferred


ACME = Path(__file__).parents[1] / "data" / "plugin_dist" / "acme" / "acme_connector" / "acme.yaml"
SENDER = "+15005550006"


def context(try_number: int = 1, **extra: Any) -> Any:
    """The parts of a task's context the operators read."""
    now = dt.datetime.now(dt.UTC)
    return {
        "ti": SimpleNamespace(
            dag_id="dag", run_id="run", task_id="task", map_index=-1, try_number=try_number
        ),
        "dag_run": SimpleNamespace(start_date=now - dt.timedelta(minutes=1), run_after=now),
        **extra,
    }


@pytest.fixture
def emulator(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> ThreadedEmulator:
    """An emulator (instant delivery, a clock that stands still); twilio_default points at it."""
    started = threaded_emulator()
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", started.connection())
    return started


def test_any_action_runs_with_templated_inputs_and_json_output(
    emulator: ThreadedEmulator,
) -> None:
    """send_text_message through TwilioActionOperator: the Message as JSON, dates as strings."""
    operator = TwilioActionOperator(
        task_id="t",
        action="send_text_message",
        inputs={"from": SENDER, "to": "+15551230001", "body": "hi"},
    )
    assert operator.template_fields == ("action", "inputs", "twilio_conn_id")
    output = operator.execute(context())
    json.dumps(output)
    assert output["sid"] == emulator.messages()[0]["sid"]
    assert isinstance(output["date_created"], str)


def test_invalid_inputs_fail_before_anything_is_sent(
    emulator: ThreadedEmulator,
) -> None:
    """A malformed number is the task's error (the core's validation); no request is made."""
    operator = TwilioActionOperator(
        task_id="t", action="send_text_message", inputs={"from": SENDER, "to": "0", "body": "x"}
    )
    with pytest.raises(
        TwilioError, match=r"(?s)send_text_message failed: .*- to: must be an E.164 number"
    ):
        operator.execute(context())
    assert emulator.messages() == []


def test_another_connector_s_action_uses_its_own_airflow_connection(
    emulator: ThreadedEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """acme/page_size runs on acme_default: login and password fill acme's pair, extras the rest."""
    registry = Registry.from_plugins(
        [plugin_module.installed().get("twilio"), Plugin.from_manifest(ACME)]
    )
    monkeypatch.setattr(plugin_module, "installed", lambda: registry)
    monkeypatch.setattr("connector.airflow.hooks.installed", lambda: registry)
    monkeypatch.setattr("connector.airflow.operators.installed", lambda: registry)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACME_DEFAULT",
        json.dumps(
            {
                "conn_type": "twilio",
                "login": emulator.account_sid,
                "password": emulator.auth_token,
                "extra": {"base_url": emulator.base_url},
            }
        ),
    )
    operator = TwilioActionOperator(task_id="t", action="acme/page_size", inputs={"PageSize": 7})
    assert operator.execute(context()) == {"page_size": 7}


def test_a_send_defers_to_the_status_trigger(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message not yet final defers with a trigger that knows its deadline and schedule."""
    emulator = threaded_emulator(delivery_delay=30)  # its clock stands still: queued
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection())
    operator = TwilioSendMessageOperator(
        task_id="t",
        to="+15551230001",
        from_=SENDER,
        body="hi",
        timeout=dt.timedelta(minutes=5),
        poll_interval=3,
    )
    before = dt.datetime.now(dt.UTC).timestamp()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, TwilioMessageStatusTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert trigger.message_sid == emulator.messages()[0]["sid"]
    assert (trigger.poll_interval, trigger.max_poll_interval, trigger.wait_for) == (
        3,
        60.0,
        "delivered",
    )
    assert before + 300 <= trigger.end_time <= before + 310


def test_without_deferral_the_worker_waits_on_the_same_schedule(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """deferrable=False polls from the task itself and returns the delivered message."""
    from connector.emulator import Clock

    emulator = threaded_emulator(clock=Clock(), delivery_delay=0.2)
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection())
    operator = TwilioSendMessageOperator(
        task_id="t",
        to="+15551230001",
        from_=SENDER,
        body="hi",
        deferrable=False,
        poll_interval=0.05,
        max_poll_interval=0.1,
    )
    assert operator.execute(context())["status"] == "delivered"


def test_an_embedded_emulator_waits_in_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """With emulator: true the emulator lives as long as the task: no deferral, still delivered."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT",
        json.dumps({"conn_type": "twilio", "extra": {"emulator": True}}),
    )
    operator = TwilioSendMessageOperator(
        task_id="t", to="+15551230001", from_=SENDER, body="hi", poll_interval=0.01
    )
    assert operator.execute(context())["status"] == "delivered"


def test_wait_for_none_returns_what_twilio_accepted(
    emulator: ThreadedEmulator,
) -> None:
    """wait_for=None: the send's answer is the result; a wrong wait_for is refused early."""
    operator = TwilioSendMessageOperator(
        task_id="t", to="+15551230001", from_=SENDER, body="hi", wait_for=None
    )
    assert operator.execute(context())["sid"] == emulator.messages()[0]["sid"]
    with pytest.raises(ValueError, match="wait_for"):
        TwilioSendMessageOperator(task_id="u", to="+1", wait_for="read")  # type: ignore[arg-type]


def test_a_retry_without_the_earlier_message_sends_it(
    emulator: ThreadedEmulator,
) -> None:
    """A retry whose earlier try sent nothing (nothing to find) sends, once."""
    operator = TwilioSendMessageOperator(
        task_id="t", to="+15551230077", from_=SENDER, body="second try", wait_for=None
    )
    operator.execute(context(try_number=2))
    assert len(emulator.messages(to="+15551230077")) == 1


def test_the_notifier_texts_every_number(emulator: ThreadedEmulator) -> None:
    """Called as a callback: the body is rendered with the context, one text per number."""
    notifier = TwilioNotifier(
        to=["+15551230001", "+15551230002"], from_=SENDER, body="{{ ti.task_id }} failed"
    )
    notifier(context())
    assert sorted(m["to"] for m in emulator.messages()) == ["+15551230001", "+15551230002"]
    assert {m["body"] for m in emulator.messages()} == {"task failed"}


async def test_the_notifier_is_awaitable_where_airflow_awaits_it(
    twilio_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the triggerer, ``await notifier`` sends without blocking the event loop."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT",
        json.dumps(
            {
                "conn_type": "twilio",
                "login": twilio_emulator.account_sid,
                "password": twilio_emulator.auth_token,
                "extra": {"base_url": twilio_emulator.base_url},
            }
        ),
    )
    await TwilioNotifier(to="+15551230003", from_=SENDER, body="deadline missed", context=context())
    (texted,) = twilio_emulator.messages()
    assert (texted["to"], texted["body"]) == ("+15551230003", "deadline missed")


def test_a_notifier_that_cannot_send_says_for_whom(
    emulator: ThreadedEmulator,
) -> None:
    """A refused number fails the callback naming it and Twilio's reason; the others are sent."""
    notifier = TwilioNotifier(to=["+15005550001", "+15551230001"], from_=SENDER, body="x")
    with pytest.raises(RuntimeError, match=r"\+15005550001: .*21211"):
        notifier(context())
    assert [m["to"] for m in emulator.messages()] == ["+15551230001"]


# -- the consent gate ---------------------------------------------------------------------

OPTED_OUT = "+15551230066"
#: How the gate says why: who, of which sender, and what they texted.
REASON = rf"\{OPTED_OUT} opted out of \{SENDER} \(texted STOP"


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    """A consent ledger (SQLite) in which OPTED_OUT texted STOP to SENDER."""
    path = tmp_path / "consent.sqlite3"

    async def record() -> None:
        with SQLiteLedger(path) as ledger:
            await ledger.record(SENDER, OPTED_OUT, "opted_out", "STOP")

    asyncio.run(record())
    return path


def sends_to(to: str) -> list[Any]:
    """Both operators, sending to *to*."""
    return [
        TwilioSendMessageOperator(task_id="send", to=to, from_=SENDER, body="hi", wait_for=None),
        TwilioActionOperator(
            task_id="act",
            action="send_text_message",
            inputs={"from": SENDER, "to": to, "body": "x"},
        ),
    ]


def test_a_send_to_an_opted_out_recipient_skips_the_task(
    emulator: ThreadedEmulator, ledger_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """extra consent_ledger: both operators end skipped, with the reason, before any request."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection(consent_ledger=str(ledger_file))
    )
    for operator in sends_to(OPTED_OUT):
        with pytest.raises(AirflowSkipException, match=rf"send_\w+ skipped: {REASON}"):
            operator.execute(context())
    assert emulator.stats()["requests"] == 0
    for operator in sends_to("+15551230067"):  # anyone else is texted
        assert operator.execute(context())["to"] == "+15551230067"
    assert len(emulator.messages()) == 2


def test_without_the_extra_the_workers_ledger_variable_applies(
    emulator: ThreadedEmulator, ledger_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No consent_ledger in the extra: the core's rule, TWILIO_CONSENT_LEDGER in the worker's environment."""
    monkeypatch.setenv("TWILIO_CONSENT_LEDGER", str(ledger_file))
    for operator in sends_to(OPTED_OUT):
        with pytest.raises(AirflowSkipException, match=REASON):
            operator.execute(context())
    assert emulator.stats()["requests"] == 0


@pytest.mark.slow
def test_without_either_the_redis_url_holds_the_ledger(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
) -> None:
    """No consent_ledger, no variable, a redis_url: the opt-outs every worker shares in that Redis."""
    monkeypatch.delenv("TWILIO_CONSENT_LEDGER", raising=False)
    emulator = threaded_emulator()

    async def record() -> None:
        async with RedisLedger(redis_url, emulator.account_sid) as ledger:
            await ledger.record(SENDER, OPTED_OUT, "opted_out", "STOP")

    asyncio.run(record())
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection(redis_url=redis_url))
    (operator, _) = sends_to(OPTED_OUT)
    with pytest.raises(AirflowSkipException, match=REASON):
        operator.execute(context())
    assert emulator.stats()["requests"] == 0


def test_the_notifier_passes_over_an_opted_out_number(
    emulator: ThreadedEmulator,
    ledger_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An opted-out number is not texted and does not fail the callback; the others are texted."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection(consent_ledger=str(ledger_file))
    )
    notifier = TwilioNotifier(to=[OPTED_OUT, "+15551230001"], from_=SENDER, body="x")
    notifier._log = logging.getLogger("test.notifier")  # Airflow's own goes to structlog
    caplog.set_level(logging.INFO, logger="test.notifier")
    notifier(context())
    assert [m["to"] for m in emulator.messages()] == ["+15551230001"]
    said = [r.getMessage() for r in caplog.records if r.name == "test.notifier"]
    assert said[0].startswith(f"did not text {OPTED_OUT}: {OPTED_OUT} opted out of {SENDER}")
    assert said[1].startswith("texted +15551230001")
