"""Flows against the emulator: sends, the status wait, Twilio's errors and retries."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest


pytest.importorskip("prefect", reason="Prefect is not installed; `nox -s prefect` runs these tests")

from prefect import flow, unmapped

from connector import Record
from connector.emulator import ALWAYS_VALID_FROM, FAILURE_NUMBERS, MAGIC_TO_ERRORS
from connector.errors import BadRequestError, InvalidInputError
from connector.models import Message, MessageStatus
from connector.plugin import Plugin, Registry, installed
from connector.prefect import (
    ConnectorCredentials,
    MessageFailedError,
    TwilioCredentials,
    send_text_message,
    wait_for_message_status,
)
from connector.prefect._tasks import build_tasks


if TYPE_CHECKING:
    from prefect_harness import Emulator


pytest_plugins = ["prefect_harness"]
pytestmark = pytest.mark.usefixtures("prefect_test")

FROM = ALWAYS_VALID_FROM

ACME = Path(__file__).resolve().parents[1] / "tests/data/plugin_dist/acme/acme_connector/acme.yaml"
RECIPIENTS = ["+15551230001", "+15551230002", "+15551230003"]


@flow
def text_and_wait(
    credentials: TwilioCredentials, recipients: list[str], body: str = "Your order shipped"
) -> list[Message]:
    sent = send_text_message.map(
        from_=unmapped(FROM), to=recipients, body=unmapped(body), credentials=unmapped(credentials)
    )
    sids = [message.sid for message in sent.result()]
    waits = wait_for_message_status.map(
        sids,
        until=unmapped(("delivered",)),
        timeout=unmapped(5.0),
        credentials=unmapped(credentials),
    )
    return list(waits.result())


def test_a_flow_texts_three_recipients_and_waits_for_delivery(emulator: Emulator) -> None:
    """Three mapped sends and three mapped waits end with three delivered messages."""
    delivered = text_and_wait(emulator.credentials(), RECIPIENTS)
    assert [m.to for m in delivered] == RECIPIENTS
    assert {m.status for m in delivered} == {MessageStatus.DELIVERED}
    stored = emulator.messages()
    assert sorted(m["to"] for m in stored) == RECIPIENTS
    assert {m["status"] for m in stored} == {"delivered"}
    assert {m["body"] for m in stored} == {"Your order shipped"}


@pytest.fixture
def virtual_wait(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the status wait's sleeps move a clock of its own and the emulator's instead of passing."""
    from connector.prefect import _wait

    slept: list[float] = []
    now = [0.0]
    emulators: list[Emulator] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        for emulator in emulators:
            emulator.advance(seconds)

    monkeypatch.setattr(_wait, "_sleep", sleep)
    monkeypatch.setattr(_wait, "_clock", lambda: now[0])

    def watch(emulator: Emulator) -> list[float]:
        emulators.append(emulator)
        return slept

    return watch


@flow
async def wait_once(
    credentials: TwilioCredentials,
    sid: str,
    seconds: float,
    until: tuple[str, ...] = ("delivered",),
) -> Message:
    return await wait_for_message_status(
        sid, until=until, timeout=seconds, poll_interval=4.0, credentials=credentials
    )


@flow
def send_flow(credentials: TwilioCredentials, to: str) -> Message:
    sent: Message = send_text_message(from_=FROM, to=to, body="Hello", credentials=credentials)
    return sent


def send_one(emulator: Emulator, to: str = RECIPIENTS[0]) -> Message:
    return send_flow(emulator.credentials(), to)


async def test_the_wait_polls_until_the_message_is_delivered(
    start_emulator: Any, virtual_wait: Any
) -> None:
    """A message delivered 10 s after it was sent is found delivered at the third poll."""
    emulator = start_emulator(delivery_delay=10.0)
    slept = virtual_wait(emulator)
    sid = str(send_one(emulator).sid)
    message = await wait_once(emulator.credentials(), sid, seconds=60.0)
    assert message.status == MessageStatus.DELIVERED
    assert slept == [4.0, 4.0, 4.0]


async def test_the_wait_gives_up_after_its_timeout(start_emulator: Any, virtual_wait: Any) -> None:
    """A message still on its way when the timeout runs out is a TimeoutError naming its status."""
    emulator = start_emulator(delivery_delay=60.0)
    slept = virtual_wait(emulator)
    sid = str(send_one(emulator).sid)
    with pytest.raises(TimeoutError, match=f"message {sid} is still .* after 10 s"):
        await wait_once(emulator.credentials(), sid, seconds=10.0)
    assert slept == [4.0, 4.0, 2.0]


async def test_the_wait_returns_any_status_it_was_given(emulator: Emulator) -> None:
    """Waiting for "undelivered" on a failure number returns the message instead of raising."""
    number = next(iter(FAILURE_NUMBERS))
    sid = str(send_one(emulator, number).sid)
    message = await wait_once(emulator.credentials(), sid, seconds=5.0, until=("undelivered",))
    assert message.status == MessageStatus.UNDELIVERED


def test_a_failure_number_fails_the_flow_with_its_twilio_code(emulator: Emulator) -> None:
    """A message that ends undelivered fails the wait, and the flow, with Twilio's code 30003."""
    number = "+15005530003"
    assert FAILURE_NUMBERS[number][:2] == ("undelivered", 30003)
    with pytest.raises(MessageFailedError) as failed:
        text_and_wait(emulator.credentials(), [RECIPIENTS[0], number])
    assert failed.value.code == 30003
    assert failed.value.status == "undelivered"
    assert "Twilio error 30003" in str(failed.value)


def test_an_invalid_number_fails_the_send_with_its_twilio_code(emulator: Emulator) -> None:
    """Twilio refusing a send (21211, invalid To) fails the task with the typed error and code."""
    number = "+15005550001"
    assert MAGIC_TO_ERRORS[number][0] == 21211
    with pytest.raises(BadRequestError) as refused:
        text_and_wait(emulator.credentials(), [number])
    assert refused.value.code == 21211
    assert refused.value.status == 400
    assert emulator.messages() == []


@attrs.frozen
class Fault:
    """What the emulator does to one request (its middleware reads these three)."""

    error_status: int | None = None
    delay: float = 0.0
    drop: bool = False


class Script:
    """Faults for the next requests, in order; none after them."""

    def __init__(self, *faults: Fault) -> None:
        self.faults = list(faults)

    def decide(self) -> Fault:
        return self.faults.pop(0) if self.faults else Fault()

    def reset(self) -> None:
        self.faults.clear()


@flow
def send_with_retry(credentials: TwilioCredentials) -> Message:
    retried = send_text_message.with_options(retries=1, retry_delay_seconds=0)
    sent: Message = retried(from_=FROM, to=RECIPIENTS[0], body="Once", credentials=credentials)
    return sent


def test_a_retry_after_the_message_was_created_does_not_send_it_again(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """
    The first try's send is stored but its answer lost, and looking it up fails; the
    task's retry finds that message instead of sending a second.
    """
    emulator.server.state.faults = Script(Fault(drop=True), Fault(error_status=400))
    caplog.set_level("INFO")
    message = send_with_retry(emulator.credentials())
    stored = emulator.messages()
    assert [m["sid"] for m in stored] == [message.sid]
    assert emulator.stats()["faults"] == {"errors": 1, "dropped": 1, "delayed": 0}
    assert f"found the message {message.sid} sent earlier" in caplog.text


def test_a_retry_after_a_refused_send_sends_once(emulator: Emulator) -> None:
    """
    The first try is refused (a 400: nothing was sent) and fails the task; the retry
    looks for a message first, finds none, and sends one.
    """
    emulator.server.state.faults = Script(Fault(error_status=400))
    message = send_with_retry(emulator.credentials())
    assert [m["sid"] for m in emulator.messages()] == [message.sid]
    assert emulator.stats()["faults"]["errors"] == 1
    # The refused send, the retry's lookup (GETs), and its send.
    assert emulator.stats()["requests"] > 2


def test_the_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/prefect/send_and_wait.py, with no TWILIO_* set, texts through an embedded emulator."""
    path = Path(__file__).resolve().parents[1] / "examples" / "prefect" / "send_and_wait.py"
    spec = importlib.util.spec_from_file_location("send_and_wait_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    statuses = example.send_and_wait(RECIPIENTS)
    assert statuses == dict.fromkeys(RECIPIENTS, "delivered")


def test_another_connectors_task_runs_with_its_credentials_block(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third-party connector's task calls its API with ConnectorCredentials and returns a Record."""
    acme = Plugin.from_manifest(ACME)
    registry = Registry.from_plugins([installed().get("twilio"), acme])
    monkeypatch.setattr("connector.prefect._shared.installed", lambda: registry)
    page_size = build_tasks(registry)["acme_page_size"]
    values = {
        "account": emulator.server.account_sid,
        "password": emulator.server.auth_token,
        "base_url": emulator.server.base_url,
    }

    @flow
    def measure() -> Record:
        page: Record = page_size(
            PageSize=7, credentials=ConnectorCredentials(connector="acme", values=values)
        )
        return page

    page = measure()
    assert page.definition == "Page"
    assert page["page_size"] == 7
    with pytest.raises(InvalidInputError, match="are for 'twilio', not 'acme'"):
        page_size.fn(credentials=emulator.credentials())
