"""Secrets never show: not in logs (DEBUG included), reprs, exception text or outputs."""

from __future__ import annotations

import base64
import logging

import pytest
from conftest import ACCOUNT_SID, API_KEY, API_SECRET, AUTH_TOKEN

from connector import (
    Connection,
    ConnectorError,
    InvalidInputError,
    MessageMayHaveBeenSentError,
    RetryPolicy,
    to_json_data,
)
from connector.emulator import EmulatorServer


SMS = {"from": "+15005550006", "to": "+15551234567", "body": "hello"}
SECRETS = (
    AUTH_TOKEN,
    API_SECRET,
    base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode(),
    base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode(),
)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_a_whole_session_with_debug_logging_never_logs_the_token(
    twilio_emulator_factory: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls, errors and retries at DEBUG level leave no secret in any log record."""
    emulator: EmulatorServer = await twilio_emulator_factory(  # type: ignore[operator]
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_key=API_KEY, api_secret=API_SECRET
    )
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for credentials in ({"auth_token": AUTH_TOKEN}, {"api_key": API_KEY, "api_secret": API_SECRET}):
        conn = Connection(
            ACCOUNT_SID,
            base_url=emulator.base_url,
            env={},
            retry=RetryPolicy(attempts=2, backoff=0),
            **credentials,  # type: ignore[arg-type]
        )
        seen.append(repr(conn))
        async with conn:
            message = await conn.call("send_text_message", SMS)
            seen.append(repr(message))
            seen.append(str(to_json_data(message)))
            fetched = await conn.call("get_message", {"MessageId": message.sid})
            seen.append(repr(fetched))
            for bad in ({**SMS, "to": "+15005550001"}, {**SMS, "to": "not a number"}):
                with pytest.raises(ConnectorError) as caught:
                    await conn.call("send_text_message", bad)
                seen += [str(caught.value), repr(caught.value)]
    wrong = Connection(ACCOUNT_SID, "wrong-token", base_url=emulator.base_url, env={})
    async with wrong:
        with pytest.raises(ConnectorError) as caught:
            await wrong.call("get_message", {"MessageId": "SM" + "0" * 32})
        seen.append(str(caught.value))
    assert caplog.records, "DEBUG logging should have recorded the calls"
    for record in caplog.records:
        assert_clean(record.getMessage())
    for text in seen:
        assert_clean(text)


def test_invalid_connection_values_are_masked() -> None:
    """A bad secret connection value is reported without its value."""
    with pytest.raises(InvalidInputError) as caught:
        Connection("AC-not-a-sid-" + AUTH_TOKEN, AUTH_TOKEN, env={})
    assert_clean(str(caught.value))
    assert "***" in str(caught.value)


def test_the_may_have_been_sent_error_carries_inputs_but_no_credentials() -> None:
    """The unknown-outcome error keeps the inputs for reconciliation, nothing else."""
    error = MessageMayHaveBeenSentError("send_text_message", SMS, OSError("reset"))
    assert error.inputs == SMS
    assert_clean(str(error))


def test_request_reprs_hide_the_authorization_header() -> None:
    """HttpRequest's repr omits headers (the Authorization header holds the secret)."""
    conn = Connection(ACCOUNT_SID, AUTH_TOKEN, env={})
    action = conn._compile("send_text_message")
    request = conn._build_request(action, action.validate(SMS))
    assert "Authorization" in request.headers
    assert "Authorization" not in repr(request)
    assert_clean(repr(conn))
