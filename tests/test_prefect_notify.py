"""The notification block: texts what automations and flows notify, checked in the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest


pytest.importorskip("prefect", reason="Prefect is not installed; `nox -s prefect` runs these tests")

from prefect import flow
from prefect.blocks.abstract import NotificationError

from connector.emulator import ALWAYS_VALID_FROM
from connector.prefect import TwilioSMSNotification


if TYPE_CHECKING:
    from prefect_harness import Emulator


pytest_plugins = ["prefect_harness"]
pytestmark = pytest.mark.usefixtures("prefect_test")

FROM = ALWAYS_VALID_FROM


def notifier(emulator: Emulator, *numbers: str) -> TwilioSMSNotification:
    return TwilioSMSNotification(
        credentials=emulator.credentials(), from_number=FROM, to_numbers=list(numbers)
    )


def test_notify_texts_every_number(emulator: Emulator) -> None:
    """notify() sends one SMS per number, the subject on the first line."""
    notifier(emulator, "+15551230001", "+15551230002").notify("The load failed", "nightly-etl")
    stored = emulator.messages()
    assert sorted(m["to"] for m in stored) == ["+15551230001", "+15551230002"]
    assert {m["body"] for m in stored} == {"nightly-etl\nThe load failed"}
    assert {m["from"] for m in stored} == {FROM}


def test_a_flow_notifies_through_a_saved_block(emulator: Emulator) -> None:
    """A block saved on the server and loaded in a flow texts from inside the flow run."""
    notifier(emulator, "+15551230003").save("on-call", overwrite=True)

    @flow
    def alert() -> None:
        TwilioSMSNotification.load("on-call").notify("Disk is full")

    alert()
    (message,) = emulator.messages()
    assert (message["to"], message["body"]) == ("+15551230003", "Disk is full")


async def test_automations_see_failures_under_raise_on_failure(emulator: Emulator) -> None:
    """
    Awaited under raise_on_failure(), as an automation calls it, a refused number raises
    NotificationError naming it and Twilio's code; the other numbers are still texted.
    """
    block = notifier(emulator, "+15005550001", "+15551230004")
    with block.raise_on_failure(), pytest.raises(NotificationError) as failed:
        await block.notify("Deploy finished")
    assert "+15005550001" in failed.value.log
    assert "21211" in failed.value.log
    assert [m["to"] for m in emulator.messages()] == ["+15551230004"]


def test_failures_are_logged_otherwise(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside raise_on_failure(), as Prefect's notification blocks do, a failure is logged."""
    notifier(emulator, "+15005550001").notify("Deploy finished")
    assert "Twilio SMS notification failed for 1 number(s)" in caplog.text
    assert emulator.messages() == []


def test_a_long_notification_is_cut_to_twilios_limit(emulator: Emulator) -> None:
    """A notification over 1600 characters is sent cut short, not refused."""
    notifier(emulator, "+15551230005").notify("x" * 2000, "subject")
    (message,) = emulator.messages()
    assert len(message["body"]) == 1600
    assert message["body"].startswith("subject\nxxx")
    assert message["body"].endswith("…")
