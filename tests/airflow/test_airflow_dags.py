"""DAGs run with ``dag.test()`` against the emulator: deferred sends, failures with
Twilio's codes, a texting notifier, a shared limit, a retry that does not resend."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

# First of all: it gives Airflow a temporary home before anything imports Airflow.
import airflow_home  # noqa: F401
import pytest

from connector.airflow import TwilioError, TwilioMessageFailedError, TwilioMessageStatusTrigger
from connector.airflow import operators as operators_module


if TYPE_CHECKING:
    from airflow_support import ThreadedEmulator

pytest_plugins = ["airflow_support"]
pytestmark = pytest.mark.usefixtures("airflow_db")


def load(name: str, home: Path) -> ModuleType:
    """A DAG file of the session's DAG folder, imported afresh."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_{time.time_ns()}", home / "dags" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outcome(
    module: ModuleType,
) -> tuple[Any, dict[tuple[str, int], str], dict[tuple[str, int], Any]]:
    """Run the module's DAG; its state, the tasks' states and return values by (task, map index)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    run = module.dag.test()
    with create_session() as session:
        states = {
            (ti.task_id, ti.map_index): str(ti.state)
            for ti in run.get_task_instances(session=session)
        }
        rows = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, key="return_value")
        ).all()
        values = {(row.task_id, row.map_index): XComModel.deserialize_value(row) for row in rows}
    return run.state, states, values


def try_numbers(home: Path) -> dict[tuple[str, int], int]:
    """The try numbers of the last run's task instances, by (task, map index)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        last = session.scalars(
            select(TaskInstance).order_by(TaskInstance.start_date.desc())
        ).first()
        assert last is not None
        rows = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == last.dag_id, TaskInstance.run_id == last.run_id
            )
        ).all()
        return {(ti.task_id, ti.map_index): ti.try_number for ti in rows}


@pytest.fixture
def emulator(
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
) -> ThreadedEmulator:
    """An emulator on the real clock that delivers in 0.3 s; twilio_default points at it."""
    from connector.emulator import Clock

    started = threaded_emulator(clock=Clock(), delivery_delay=0.3)
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", started.connection())
    return started


@pytest.fixture
def trigger_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The message SIDs the status trigger's run() was started for."""
    runs: list[str] = []
    real_run = TwilioMessageStatusTrigger.run

    def run(self: TwilioMessageStatusTrigger) -> Any:
        runs.append(self.message_sid)
        return real_run(self)

    monkeypatch.setattr(TwilioMessageStatusTrigger, "run", run)
    yield runs


def test_a_send_to_three_defers_and_ends_delivered(
    airflow_db: Path, emulator: ThreadedEmulator, trigger_runs: list[str]
) -> None:
    """Each mapped send defers to the status trigger (run inline) and resumes 'delivered' into XCom."""
    state, states, values = outcome(load("twilio_test_send", airflow_db))
    assert state == "success"
    assert states == {("send", i): "success" for i in range(3)}
    sent = emulator.messages(direction="outbound-api")
    assert sorted(m["to"] for m in sent) == ["+15551230001", "+15551230002", "+15551230003"]
    assert {m["status"] for m in sent} == {"delivered"}
    assert {m["body"] for m in sent} == {"Hello from twilio_test_send"}  # templated
    # The send itself answered "queued": "delivered" came from the trigger's event.
    assert sorted(trigger_runs) == sorted(m["sid"] for m in sent)
    assert {v["status"] for v in values.values()} == {"delivered"}
    assert {v["sid"] for v in values.values()} == {m["sid"] for m in sent}


@pytest.fixture
def raised(monkeypatch: pytest.MonkeyPatch) -> dict[str, BaseException]:
    """What TwilioSendMessageOperator's execute and execute_complete raised, by task id."""
    errors: dict[str, BaseException] = {}
    cls = operators_module.TwilioSendMessageOperator
    for name in ("execute", "execute_complete"):
        real = getattr(cls, name)

        def recording(self: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            try:
                return _real(self, *args, **kwargs)
            except Exception as exc:
                errors[self.task_id] = exc
                raise

        monkeypatch.setattr(cls, name, recording)
    return errors


def test_failing_numbers_fail_their_tasks_with_twilio_s_codes(
    airflow_db: Path, emulator: ThreadedEmulator, raised: dict[str, BaseException]
) -> None:
    """21211 at create; 30003 once the deferred wait sees 'undelivered'."""
    state, states, _ = outcome(load("twilio_test_failures", airflow_db))
    assert state == "failed"
    assert states == {("undelivered", -1): "failed", ("invalid", -1): "failed"}
    errors = raised
    undelivered = errors["undelivered"]
    assert isinstance(undelivered, TwilioMessageFailedError)
    assert (undelivered.code, undelivered.status) == (30003, "undelivered")
    invalid = errors["invalid"]
    assert isinstance(invalid, TwilioError) and invalid.code == 21211
    assert "21211" in str(invalid)


def test_the_notifier_texts_when_a_task_fails(airflow_db: Path, emulator: ThreadedEmulator) -> None:
    """on_failure_callback=TwilioNotifier(...) sends the rendered text; the emulator has it."""
    state, states, _ = outcome(load("twilio_test_notify", airflow_db))
    assert state == "failed" and states == {("load", -1): "failed"}
    (texted,) = emulator.messages(to="+15551230009")
    assert texted["body"] == "twilio_test_notify.load failed (try 1)"
    assert texted["from"] == "+15005550006"


def test_an_opted_out_recipient_s_send_is_skipped_and_the_run_succeeds(
    airflow_db: Path, emulator: ThreadedEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a consent ledger, the opted-out recipient's mapped send is skipped, not sent, not failed."""
    import asyncio

    from connector.consent import SQLiteLedger

    path = tmp_path / "consent.sqlite3"

    async def record() -> None:
        with SQLiteLedger(path) as ledger:
            await ledger.record("+15005550006", "+15551230066", "opted_out", "STOP")

    asyncio.run(record())
    monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", emulator.connection(consent_ledger=str(path)))
    state, states, values = outcome(load("twilio_test_consent", airflow_db))
    assert state == "success", states
    assert states == {
        ("send", 0): "success",
        ("send", 1): "skipped",
        ("send", 2): "success",
        ("report", -1): "success",
    }
    sent = emulator.messages(direction="outbound-api")
    assert sorted(m["to"] for m in sent) == ["+15551230001", "+15551230003"]
    assert ("send", 1) not in values


def test_the_example_dag_runs_as_written(airflow_db: Path, emulator: ThreadedEmulator) -> None:
    """examples/airflow/twilio_example_dag.py: three deliveries, then today's messages into XCom."""
    state, states, values = outcome(load("twilio_example_dag", airflow_db))
    assert state == "success", states
    delivered = [v for (task, _), v in values.items() if task == "send"]
    assert len(delivered) == 3 and {v["status"] for v in delivered} == {"delivered"}
    listed = values[("sent_today", -1)]
    assert sorted(m["to"] for m in listed) == ["+15551230001", "+15551230002", "+15551230003"]


def test_the_example_inbound_dag_parses(airflow_db: Path) -> None:
    """examples/airflow/twilio_inbound_dag.py: an asset watched by the inbound trigger."""
    module = load("twilio_inbound_dag", airflow_db)
    (watcher,) = module.inbox.watchers
    assert watcher.trigger.serialize()[1]["to"] == ["+15005550006"]


@pytest.mark.parametrize("state_store", [True, False], ids=["task-state-store", "reconciled"])
def test_a_retry_after_the_send_finds_the_message_and_does_not_resend(
    airflow_db: Path,
    emulator: ThreadedEmulator,
    monkeypatch: pytest.MonkeyPatch,
    state_store: bool,
) -> None:
    """The first try dies after its message left; the retry waits for that message, sends none."""
    if not state_store:  # Airflow before 3.3: no task state store, reconciliation only
        monkeypatch.setattr(operators_module, "_state_store", lambda context: None)
    tries: list[int] = []
    real_defer = operators_module.TwilioSendMessageOperator.defer

    def defer(self: Any, **kwargs: Any) -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("the worker died before deferring")
        return real_defer(self, **kwargs)

    monkeypatch.setattr(operators_module.TwilioSendMessageOperator, "defer", defer)
    state, states, values = outcome(load("twilio_test_retry", airflow_db))
    assert state == "success", states
    # The first try died; the second found the message and waited for it (deferring
    # again, unless it was delivered by then).
    assert tries and try_numbers(airflow_db) == {("send", -1): 2}
    (sent,) = emulator.messages(to="+15551230042")  # exactly one message
    assert values[("send", -1)]["sid"] == sent["sid"]
    assert values[("send", -1)]["status"] == "delivered"


@pytest.mark.slow
def test_mapped_sends_share_a_redis_limit_that_binds_and_holds(
    airflow_db: Path,
    threaded_emulator: Callable[..., ThreadedEmulator],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
) -> None:
    """Nine mapped sends at 3 calls per 2 s: paced across task instances, never over the limit."""
    from connector.emulator import Clock

    # The emulator refuses (429) a 4th request in any 2 s: it checks the limit holds.
    limited = threaded_emulator(clock=Clock(), throttle=(3, 2.0))
    monkeypatch.setenv(
        "AIRFLOW_CONN_TWILIO_LIMITED", limited.connection(rate_limit="3/2", redis_url=redis_url)
    )
    started = time.monotonic()
    state, states, _ = outcome(load("twilio_test_mapped_limit", airflow_db))
    elapsed = time.monotonic() - started
    assert state == "success", states
    assert len(limited.messages(direction="outbound-api")) == 9
    assert limited.stats()["throttled"] == 0  # it holds
    # It binds: 3 sends per window (2 s, stretched by the margin and Redis's slack).
    assert elapsed >= 2 * 2.0
