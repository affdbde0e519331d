"""twilio-python's names for inputs (from_, status_callback, page_size, sid...) work everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector import InvalidInputError, default_connector, input_schema
from connector._validation import compile_action
from connector.cli import main
from connector.emulator import EmulatorServer
from connector.workflow import check_workflow, load_workflow


SEND = compile_action(default_connector().action("send_text_message"))


def test_aliases_mean_their_keys() -> None:
    """from_ and status_callback are the seed's from and StatusCallback."""
    clean = SEND.validate(
        {
            "from_": "+15005550006",
            "to": "+15551234567",
            "body": "hi",
            "status_callback": "https://example.com/status",
        }
    )
    assert clean["from"] == "+15005550006"
    assert clean["StatusCallback"] == "https://example.com/status"
    assert "from_" not in clean


def test_an_alias_with_its_key_is_an_error() -> None:
    """Giving from and from_ together names one input twice."""
    with pytest.raises(InvalidInputError, match="from and from_ name the same input; give one"):
        SEND.validate({"from": "+15005550006", "from_": "+15005550006", "to": "+1555", "body": "x"})


def test_every_alias_in_the_table() -> None:
    """The aliases are twilio-python's parameter names of create, list and fetch."""
    names = {
        (a.id, p.key): p.aliases
        for a in default_connector().actions.values()
        for p in a.parameters
        if p.aliases
    }
    assert names[("get_message", "MessageId")] == ("sid",)
    assert names[("list_messages_v2", "DateSentAfter")] == ("date_sent_after",)
    assert names[("list_messages_v2", "PageSize")] == ("page_size",)
    assert names[("send_message", "from")] == ("from_",)
    python = [p.python_name for p in default_connector().action("send_text_message").parameters]
    assert python[:5] == ["from_", "to", "body", "media_url", "status_callback"]


def test_host_schemas_list_aliases_in_an_extension() -> None:
    """x-aliases on the key, x-alias-of on the alias, and never both names at once."""
    schema = input_schema(default_connector().action("send_text_message"))
    assert schema["properties"]["from"]["x-aliases"] == ["from_"]
    assert schema["properties"]["from_"]["x-alias-of"] == "from"
    assert {"not": {"required": ["from", "from_"]}} in schema["allOf"]


def test_describe_shows_both_names(capsys: pytest.CaptureFixture[str]) -> None:
    """describe lists an input by its key and its alias."""
    assert main(["describe", "send_text_message"]) == 0
    assert "StatusCallback or status_callback" in capsys.readouterr().out


async def test_call_and_workflows_take_aliases(
    twilio_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """call -i from_=... and a workflow's with: {status_callback: ...} are valid."""
    import asyncio

    monkeypatch.setenv("TWILIO_ACCOUNT_SID", twilio_emulator.account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", twilio_emulator.auth_token)
    monkeypatch.setenv("TWILIO_BASE_URL", twilio_emulator.base_url)
    args = ["call", "send_text_message", "-i", "from_=+15005550006", "-i", "to=+15551234567"]
    assert await asyncio.to_thread(main, [*args, "-i", "body=hi"]) == 0
    assert json.loads(capsys.readouterr().out)["from"] == "+15005550006"
    path = tmp_path / "w.yaml"
    path.write_text(
        "name: w\nsteps:\n  - id: s\n    uses: twilio/send_text_message\n"
        "    with: {from_: '+15005550006', to: '+15551234567', body: hi,"
        " status_callback: 'https://example.com/cb'}\n"
    )
    assert check_workflow(load_workflow(path), default_connector()) == []
