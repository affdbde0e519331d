"""The twilio-connector command, run as users run it: in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest
from conftest import ACCOUNT_SID, AUTH_TOKEN

from connector.emulator import EmulatorServer


# Every test runs the command in a subprocess.
pytestmark = pytest.mark.slow


async def cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run ``python -m connector ARGS`` without blocking the event loop."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    full_env.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        *args,
        env=full_env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def credentials(emulator: EmulatorServer) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": emulator.account_sid,
        "TWILIO_AUTH_TOKEN": emulator.auth_token,
        "TWILIO_BASE_URL": emulator.base_url,
    }


async def test_actions_json_lists_every_action_with_inputs_and_returns() -> None:
    """`actions --json` is an array of actions with id, title, description, deprecated, inputs, returns."""
    code, out, _ = await cli("actions", "--json")
    assert code == 0
    actions: list[dict[str, Any]] = json.loads(out)
    by_id = {a["id"]: a for a in actions}
    assert set(by_id) >= {"get_message", "list_messages", "list_messages_v2", "send_text_message"}
    send = by_id["send_text_message"]
    assert send["title"] == "Send Text Message (SMS)"
    assert send["deprecated"] is False and by_id["list_messages"]["deprecated"] is True
    assert send["returns"] == "Message"
    inputs = {i["key"]: i for i in send["inputs"]}
    assert inputs["to"]["required"] is True and inputs["to"]["type"] == "string"
    assert inputs["media_url"]["type"] == "array"
    # from is required too, given as from or as twilio-python's from_.
    assert send["input_schema"]["required"] == ["to", "body"]
    assert {"anyOf": [{"required": ["from"]}, {"required": ["from_"]}]} in send["input_schema"][
        "allOf"
    ]
    assert inputs["from"]["aliases"] == ["from_"]
    assert send["output_schema"]["$ref"] == "#/$defs/Message"


async def test_actions_table_and_describe() -> None:
    """The plain listing and describe show titles, keys and the returned fields."""
    code, out, _ = await cli("actions")
    assert code == 0 and "List Messages [DEPRECATED]" in out
    code, out, _ = await cli("describe", "send_text_message")
    assert code == 0
    for text in (
        "Send Text Message (SMS)",
        "media_url",
        "StatusCallback",
        "Returns Message",
        "date_created",
    ):
        assert text in out
    code, out, _ = await cli("describe", "twilio/list_messages_v2", "--json")
    schemas = json.loads(out)
    assert "@odata.nextLink" in schemas["inputs"]["properties"]
    assert schemas["output"]["$ref"] == "#/$defs/MessageListV2"
    code, _, err = await cli("describe", "send_fax")
    assert code == 2 and "no action 'send_fax'" in err


async def test_call_prints_the_output_as_json(twilio_emulator: EmulatorServer) -> None:
    """`call` sends through the given credentials and prints the typed output's JSON form."""
    code, out, err = await cli(
        "call", "send_text_message",
        "-i", "from=+15005550006", "-i", "to=+15551234567", "-i", "body=hi",
        "-i", "media_url=https://example.com/a.png", "-i", "media_url=https://example.com/b.png",
        env=credentials(twilio_emulator),
    )  # fmt: skip
    assert code == 0, err
    message = json.loads(out)
    assert message["sid"].startswith("MM") or message["sid"].startswith("SM")
    assert message["num_media"] == 2
    assert message["date_created"].endswith("Z")
    assert "emulator" not in err
    stored = twilio_emulator.messages(to="+15551234567")
    assert [m["sid"] for m in stored] == [message["sid"]]


async def test_call_reads_inputs_from_a_file_or_stdin(twilio_emulator: EmulatorServer) -> None:
    """--inputs takes a YAML/JSON mapping; --input overrides it."""
    code, out, err = await cli(
        "call", "send_text_message", "--inputs", "-", "-i", "body=overridden",
        env=credentials(twilio_emulator),
        stdin=b"from: '+15005550006'\nto: '+15551234567'\nbody: original\n",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["body"] == "overridden"


async def test_invalid_input_exits_2_and_sends_nothing(twilio_emulator: EmulatorServer) -> None:
    """Bad inputs exit 2 with every problem on stderr, and nothing reaches the API."""
    code, out, err = await cli(
        "call", "send_text_message", "-i", "from=+15005550006", "-i", "to=5551234", "-i", "bdy=x",
        env=credentials(twilio_emulator),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert "to: must be an E.164 number" in err
    assert "bdy: unknown input; did you mean 'body'?" in err
    assert "body: is required" in err
    assert twilio_emulator.messages() == []


async def test_api_errors_exit_1_with_the_twilio_code(twilio_emulator: EmulatorServer) -> None:
    """A Twilio error exits 1 and names the code on stderr."""
    code, out, err = await cli(
        "call", "send_text_message", "-i", "from=+15005550006", "-i", "to=+15005550001", "-i", "body=x",
        env=credentials(twilio_emulator),
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "Twilio error 21211" in err


async def test_wrong_credentials_exit_1_without_showing_the_token(
    twilio_emulator: EmulatorServer,
) -> None:
    """An authentication failure exits 1 with code 20003; the token is not printed."""
    env = {**credentials(twilio_emulator), "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    code, _, err = await cli("call", "get_message", "-i", "MessageId=SM" + "0" * 32, env=env)
    assert code == 1 and "20003" in err and AUTH_TOKEN not in err


async def test_without_credentials_the_embedded_emulator_answers() -> None:
    """With no TWILIO_ACCOUNT_SID the call goes to an in-process emulator, said on stderr."""
    code, out, err = await cli(
        "call",
        "send_text_message",
        "-i",
        "from=+15005550006",
        "-i",
        "to=+15551234567",
        "-i",
        "body=hi",
    )
    assert code == 0, err
    assert "nothing leaves this machine" in err
    assert json.loads(out)["status"] == "queued"


async def test_unreachable_api_exits_1() -> None:
    """A refused connection is a transport error: exit 1."""
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_BASE_URL": "http://127.0.0.1:9",
    }
    code, _, err = await cli("call", "get_message", "-i", "MessageId=SM" + "0" * 32, env=env)
    assert code == 1 and "cannot connect" in err


@pytest.mark.parametrize(
    ("body", "rule"),
    [(b"ab\xffc", "must be valid Unicode text"), (b"\xed\xb3\xbf", "must be valid Unicode text")],
)
async def test_undecodable_bytes_in_an_input_exit_2_naming_it(
    twilio_emulator: EmulatorServer, body: bytes, rule: str
) -> None:
    """A non-UTF-8 byte on the command line is an input error naming the field, not a traceback."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connector", "call", "send_text_message",
        "-i", "from=+15005550006", "-i", "to=+15551234567", b"-i", b"body=" + body,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")},
             **credentials(twilio_emulator)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 2 and out == b""
    assert f"body: {rule}" in err.decode() and "Traceback" not in err.decode()
    assert twilio_emulator.messages() == []


async def test_a_nul_in_an_inputs_file_exits_2(twilio_emulator: EmulatorServer) -> None:
    """A NUL in a body given through --inputs is refused before anything is sent."""
    code, out, err = await cli(
        "call", "send_text_message", "--inputs", "-",
        env=credentials(twilio_emulator),
        stdin=b'{"from": "+15005550006", "to": "+15551234567", "body": "a\\u0000b"}',
    )  # fmt: skip
    assert code == 2 and out == ""
    assert "body: must not contain a NUL character" in err
    assert twilio_emulator.messages() == []


async def test_worker_help_works_without_the_temporal_extra() -> None:
    """`worker --help` prints its options in an interpreter where temporalio cannot be imported."""
    script = (
        "import sys; sys.modules['temporalio'] = None\n"
        "from connector.cli import main\n"
        "sys.exit(main(['worker', '--help']))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "--task-queue" in out.decode()
    assert "temporal extra" in out.decode()
