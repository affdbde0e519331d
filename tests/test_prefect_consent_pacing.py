"""
The TwilioCredentials block's sender pacing and consent ledger: read and checked when
the block is made, handed to the connection as they are, and a skipped send reported as
Prefect reports work not done on purpose.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest


pytest.importorskip("prefect", reason="Prefect is not installed; `nox -s prefect` runs these tests")

import pydantic
from prefect import flow, unmapped
from prefect.states import State, StateType
from pydantic import SecretStr

from connector import Connection, Pacing
from connector.consent import SQLiteLedger
from connector.emulator import ALWAYS_VALID_FROM
from connector.models import Message
from connector.prefect import TwilioCredentials, TwilioSMSNotification, send_text_message


if TYPE_CHECKING:
    from prefect_harness import Emulator


pytest_plugins = ["prefect_harness"]
pytestmark = pytest.mark.usefixtures("prefect_test")

FROM = ALWAYS_VALID_FROM
PACING = {"senders": {FROM: "2/s", "12345": "100/s"}, "horizon": "30m"}
OPTED_OUT = "+15551230066"
#: How the gate says why: who, of which sender, and what they texted.
REASON = f"{OPTED_OUT} opted out of {FROM} (texted STOP"


# -- the fields -----------------------------------------------------------------------------


def test_pacing_takes_the_hosts_mapping_or_false() -> None:
    """pacing holds what Pacing.from_config reads, or False; unset is the default rates."""
    assert TwilioCredentials(pacing=PACING).pacing == PACING
    assert TwilioCredentials(pacing=False).pacing is False
    assert TwilioCredentials().pacing is None


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ({"speed": "fast"}, r"unknown pacing settings \['speed'\]"),
        ({"senders": {FROM: "fast"}}, r"\+15005550006: expected a rate such as 1/s"),
        ({"horizon": "11h"}, "must be under Twilio's queue limit"),
        ({"horizon": [1]}, "horizon: expected a duration"),
        (True, "expected the settings Pacing.from_config reads .* or false, not True"),
        ("1/s", "expected the settings Pacing.from_config reads .* or false, not '1/s'"),
    ],
    ids=["unknown-key", "bad-rate", "horizon", "list", "true", "text"],
)
def test_malformed_pacing_is_refused_naming_the_field(given: Any, rule: str) -> None:
    """The core's reader checks pacing when the block is made; pydantic names the field."""
    with pytest.raises(pydantic.ValidationError, match=rf"(?s)pacing\n.*{rule}"):
        TwilioCredentials(pacing=given)


def test_the_consent_ledger_is_a_file_or_a_redis_url() -> None:
    """consent_ledger: a path or redis://; another URL is refused naming the field."""
    for location in ("/srv/consent.sqlite3", "redis://127.0.0.1:6379/0"):
        block = TwilioCredentials(consent_ledger=location)  # type: ignore[arg-type]
        assert block.consent_ledger is not None
        assert block.consent_ledger.get_secret_value() == location
    with pytest.raises(
        pydantic.ValidationError,
        match=r"(?s)consent_ledger\n.*file path or a redis://.*not a s3://",
    ):
        TwilioCredentials(consent_ledger=SecretStr("s3://bucket/optouts"))
    assert TwilioCredentials(consent_ledger=SecretStr(" ")).consent_ledger is None


def test_saved_blocks_keep_pacing_and_the_ledger() -> None:
    """Both survive a save and a load on the Prefect server (the ledger as a secret)."""
    TwilioCredentials(
        account_sid=SecretStr("AC" + "2" * 32),
        auth_token=SecretStr("token"),
        pacing=PACING,
        consent_ledger=SecretStr("redis://127.0.0.1:6379/3"),
    ).save("paced-twilio", overwrite=True)
    loaded = TwilioCredentials.load("paced-twilio")
    assert loaded.pacing == PACING
    assert loaded.consent_ledger is not None
    assert loaded.consent_ledger.get_secret_value() == "redis://127.0.0.1:6379/3"
    TwilioCredentials(pacing=False).save("unpaced-twilio", overwrite=True)
    assert TwilioCredentials.load("unpaced-twilio").pacing is False


def test_equal_pacing_shares_a_connection_whatever_its_key_order(emulator: Emulator) -> None:
    """Blocks whose pacing says the same share the process's connection; other pacing opens another."""
    reordered = {"horizon": "30m", "senders": dict(reversed(PACING["senders"].items()))}
    first = emulator.credentials(pacing=PACING)
    assert first.get_client() is emulator.credentials(pacing=reordered).get_client()
    assert first.get_client() is not emulator.credentials(pacing={"horizon": "20m"}).get_client()


# -- pacing reaches the connection ----------------------------------------------------------


def test_a_send_is_paced_at_the_rate_the_block_declares(emulator: Emulator) -> None:
    """The block's pacing reaches the connection through open_connection: the sender's declared rate."""

    async def status(conn: Connection) -> Any:
        assert conn.pacer is not None
        return conn.pacer.status()

    client = emulator.credentials(pacing=PACING).get_client()
    assert client.connection.pacing == Pacing.from_config(PACING)
    client.call("send_text_message", {"from": FROM, "to": "+15551230001", "body": "hi"})
    paced = client.run(status)
    assert [(s.sender, s.rate) for s in paced.senders] == [(FROM, 2.0)]
    assert (paced.messages, paced.units) == (1, 1)
    unpaced = emulator.credentials(pacing=False).get_client()
    assert unpaced.connection.pacing is False and unpaced.connection.pacer is None


# -- the consent gate -----------------------------------------------------------------------


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    """A consent ledger (SQLite) in which OPTED_OUT texted STOP to FROM."""
    path = tmp_path / "consent.sqlite3"

    async def record() -> None:
        with SQLiteLedger(path) as ledger:
            await ledger.record(FROM, OPTED_OUT, "opted_out", "STOP")

    asyncio.run(record())
    return path


@flow
def send_state(credentials: TwilioCredentials, to: str) -> State[Message | None]:
    state: State[Message | None] = send_text_message(
        from_=FROM, to=to, body="Your order shipped", credentials=credentials, return_state=True
    )
    return state


@flow
def broadcast(credentials: TwilioCredentials, recipients: list[str]) -> list[Message | None]:
    sent = send_text_message.map(
        from_=unmapped(FROM),
        to=recipients,
        body=unmapped("Your order shipped"),
        credentials=unmapped(credentials),
    )
    return list(sent.result())


def test_a_send_to_an_opted_out_recipient_ends_completed_as_skipped(
    emulator: Emulator, ledger_file: Path
) -> None:
    """The task run is Completed, named Skipped, with the reason; its result is None; no request is made."""
    credentials = emulator.credentials(consent_ledger=SecretStr(str(ledger_file)))
    state = send_state(credentials, OPTED_OUT)
    assert state.type == StateType.COMPLETED
    assert state.name == "Skipped"
    assert state.message is not None
    assert state.message.startswith(f"send_text_message skipped: {REASON}")
    assert state.result() is None
    assert emulator.stats()["requests"] == 0


def test_a_broadcast_skips_the_opted_out_and_the_flow_completes(
    emulator: Emulator, ledger_file: Path
) -> None:
    """Mapped sends: the opted-out recipient's result is None, the others are sent, nothing fails."""
    credentials = emulator.credentials(consent_ledger=SecretStr(str(ledger_file)))
    results = broadcast(credentials, ["+15551230001", OPTED_OUT, "+15551230003"])
    assert [m.to if m is not None else None for m in results] == [
        "+15551230001",
        None,
        "+15551230003",
    ]
    assert sorted(m["to"] for m in emulator.messages()) == ["+15551230001", "+15551230003"]
    assert emulator.stats()["requests"] == 2


def test_unset_the_ledger_variable_applies(
    emulator: Emulator, ledger_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No consent_ledger: the core's rule, TWILIO_CONSENT_LEDGER, for blocks with values and without."""
    monkeypatch.setenv("TWILIO_CONSENT_LEDGER", str(ledger_file))
    assert send_state(emulator.credentials(), OPTED_OUT).name == "Skipped"
    for name, value in (
        ("TWILIO_ACCOUNT_SID", emulator.server.account_sid),
        ("TWILIO_AUTH_TOKEN", emulator.server.auth_token),
        ("TWILIO_BASE_URL", emulator.server.base_url),
    ):
        monkeypatch.setenv(name, value)
    assert send_state(TwilioCredentials(), OPTED_OUT).name == "Skipped"
    assert emulator.stats()["requests"] == 0


def test_outside_a_task_run_a_skipped_send_returns_none(
    emulator: Emulator, ledger_file: Path
) -> None:
    """Called as a plain function (task.fn), a skipped send is None, not a Prefect state."""
    credentials = emulator.credentials(consent_ledger=SecretStr(str(ledger_file)))
    skipped = send_text_message.fn(from_=FROM, to=OPTED_OUT, body="x", credentials=credentials)
    assert skipped is None
    assert emulator.stats()["requests"] == 0


async def test_the_notification_block_passes_over_an_opted_out_number(
    emulator: Emulator, ledger_file: Path
) -> None:
    """Even under raise_on_failure() an opted-out number is no failure; the others are texted."""
    block = TwilioSMSNotification(
        credentials=emulator.credentials(consent_ledger=SecretStr(str(ledger_file))),
        from_number=FROM,
        to_numbers=[OPTED_OUT, "+15551230004"],
    )
    with block.raise_on_failure():
        await block.notify("Deploy finished")
    assert [m["to"] for m in emulator.messages()] == ["+15551230004"]
