"""Triggers in the workflow format: parsing, static checks, run --trigger-json and listen's refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from connector._connection import default_connector
from connector.cli import main
from connector.receiving._triggers import inbound_event, matches
from connector.workflow import (
    TriggerOn,
    WorkflowError,
    check_workflow,
    load_workflow,
    trigger_payload,
)


HEAD = "name: t\n"
STEPS = """
steps:
  - id: save
    uses: workflow/write_json
    with: {path: out.json, value: "${{ trigger }}"}
"""


def _load(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        workflow = load_workflow(path)
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in check_workflow(workflow, default_connector())]


def test_on_is_read_as_a_key_not_as_yaml_true(tmp_path: Path) -> None:
    """A bare `on:` key (YAML 1.1's true) is the trigger section, with its filters parsed."""
    path = tmp_path / "wf.yaml"
    path.write_text(
        HEAD
        + 'on:\n  twilio/message_received:\n    to: ["+15005550006", "+15005550007"]\n'
        + '    body_matches: "^(?i:stop)"\n    reply: "bye"\n'
        + STEPS,
        encoding="utf-8",
    )
    trigger = load_workflow(path).trigger
    assert trigger is not None
    assert trigger.uses == "twilio/message_received"
    assert trigger.to == ("+15005550006", "+15005550007")
    assert trigger.reply == "bye" and trigger.body_matches is not None


def test_body_matches_runs_in_linear_time(tmp_path: Path) -> None:
    """A pattern that makes a backtracking engine take minutes answers at once (RE2)."""
    path = tmp_path / "wf.yaml"
    path.write_text(
        HEAD + 'on:\n  twilio/message_received:\n    body_matches: "^(a+)+$"\n' + STEPS,
        encoding="utf-8",
    )
    trigger = load_workflow(path).trigger
    assert trigger is not None and trigger.body_matches is not None
    started = time.perf_counter()
    assert trigger.body_matches.search("a" * 40 + "!") is None
    assert time.perf_counter() - started < 0.5


def test_a_bare_trigger_without_filters_is_allowed(tmp_path: Path) -> None:
    """`twilio/message_status_changed:` with no body matches every status."""
    assert _load(tmp_path, HEAD + "on:\n  twilio/message_status_changed:\n" + STEPS) == []


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        ("  twilio/message_recieved: {}\n", "did you mean 'twilio/message_received'"),
        ("  twilio/message_received: {bodymatches: x}\n", "unknown key"),
        ("  twilio/message_received: {body_matches: '('}\n", "not a valid regular expression"),
        (
            "  twilio/message_received: {body_matches: 'yes(?!terday)'}\n",
            "searches use RE2: no backreferences or lookaround",
        ),
        ("  twilio/message_received: {poll_interval: 30}\n", "poll_interval needs to"),
        ("  twilio/message_status_changed: {status: [deliverd]}\n", "deliverd"),
        ("  twilio/message_status_changed: {reply: hi}\n", "unknown key"),
        (
            "  twilio/message_received: {}\n  twilio/message_status_changed: {}\n",
            "a workflow has one trigger",
        ),
        ("  acme/message_received: {}\n", "unknown connector 'acme'"),
    ],
)
def test_bad_triggers_are_reported(tmp_path: Path, on: str, expected: str) -> None:
    """Misspelt triggers, unknown keys, bad regexes and invalid statuses are static problems."""
    problems = _load(tmp_path, HEAD + "on:\n" + on + STEPS)
    assert any(expected in p for p in problems), problems


def test_trigger_fields_are_checked_against_the_payload_definition(tmp_path: Path) -> None:
    """trigger.<field> must be a field of the trigger's payload definition (with a suggestion)."""
    text = (
        HEAD
        + "on:\n  twilio/message_received:\n    reply: 'hi ${{ trigger.Fromm }}'\n"
        + STEPS.replace("${{ trigger }}", "${{ trigger.media[0].urll }}")
    )
    problems = _load(tmp_path, text)
    assert any("trigger has no field 'Fromm'; did you mean 'From'?" in p for p in problems)
    assert any("has no field 'urll'; did you mean 'url'?" in p for p in problems), problems


def test_trigger_is_unknown_in_a_workflow_without_on(tmp_path: Path) -> None:
    """A workflow without on: cannot read trigger."""
    problems = _load(tmp_path, HEAD + STEPS)
    assert any("unknown name 'trigger'" in p for p in problems), problems


SM1 = "SM" + "1" * 32


def test_status_filters_match() -> None:
    """Status, to and from filters select the events that start runs."""
    connector = default_connector()
    event = trigger_payload(
        connector,
        "twilio/message_status_changed",
        {"MessageSid": SM1, "MessageStatus": "failed", "ErrorCode": "30003", "To": "+1555"},
    )
    assert event["ErrorCode"] == 30003 and event["MessageStatus"] == "failed"
    assert matches(
        TriggerOn("twilio/message_status_changed", status=("failed",)),
        "twilio/message_status_changed",
        event,
    )
    assert not matches(
        TriggerOn("twilio/message_status_changed", status=("delivered",)),
        "twilio/message_status_changed",
        event,
    )
    assert not matches(
        TriggerOn("twilio/message_status_changed", to=("+1666",)),
        "twilio/message_status_changed",
        event,
    )
    assert not matches(TriggerOn("twilio/message_received"), "twilio/message_status_changed", event)


def test_media_is_built_from_the_numbered_parameters() -> None:
    """MediaUrlN and MediaContentTypeN become the typed media list."""
    raw = inbound_event(
        {
            "MessageSid": "MM" + "1" * 32,
            "NumMedia": "2",
            "MediaUrl0": "https://api.twilio.com/m/0",
            "MediaContentType0": "image/jpeg",
            "MediaUrl1": "https://api.twilio.com/m/1",
            "MediaContentType1": "image/png",
        }
    )
    event = trigger_payload(default_connector(), "twilio/message_received", raw)
    assert event["NumMedia"] == 2
    assert event["media"] == [
        {"url": "https://api.twilio.com/m/0", "content_type": "image/jpeg"},
        {"url": "https://api.twilio.com/m/1", "content_type": "image/png"},
    ]
    assert event["Body"] is None  # every field of the definition is present


def test_run_with_trigger_json_runs_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --trigger-json` runs a triggered workflow once with a typed trigger; without it, run refuses."""
    path = tmp_path / "wf.yaml"
    path.write_text(HEAD + "on:\n  twilio/message_received:\n" + STEPS, encoding="utf-8")
    state = str(tmp_path / "runs.sqlite3")
    assert main(["run", str(path), "--state", state, "--json"]) == 2
    assert "twilio-connector listen" in capsys.readouterr().err
    event = json.dumps({"MessageSid": SM1, "From": "+15551230001", "NumSegments": "2"})
    assert main(["run", str(path), "--state", state, "--json", "--trigger-json", event]) == 0
    saved = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert (saved["MessageSid"], saved["NumSegments"], saved["media"]) == (SM1, 2, [])
    assert main(["run", str(path), "--state", state, "--trigger-json", "[1]"]) == 2
    capsys.readouterr()
    bad = json.dumps({"MessageSid": "../../../tmp/x", "From": "+15551230001"})
    assert main(["run", str(path), "--state", state, "--trigger-json", bad]) == 2
    assert "MessageSid must match ^(SM|MM)[0-9a-f]{32}$" in capsys.readouterr().err


def test_listen_refuses_to_start_without_an_auth_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With API-key credentials but no auth token, listen exits 2: webhooks could not be verified."""
    path = tmp_path / "wf.yaml"
    path.write_text(HEAD + "on:\n  twilio/message_received:\n" + STEPS, encoding="utf-8")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_API_KEY", "SK" + "0" * 32)
    monkeypatch.setenv("TWILIO_API_SECRET", "secret")
    assert main(["listen", str(path), "--state", str(tmp_path / "j.sqlite3")]) == 2
    err = capsys.readouterr().err
    assert "TWILIO_AUTH_TOKEN is not set" in err and "signs webhooks" in err


def test_listen_refuses_a_workflow_without_a_trigger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """listen runs only workflows with on:, and says so."""
    path = tmp_path / "wf.yaml"
    path.write_text(HEAD + STEPS.replace("${{ trigger }}", "1"), encoding="utf-8")
    assert main(["listen", str(path), "--state", str(tmp_path / "j.sqlite3"), "--port", "0"]) == 2
    assert "has no trigger" in capsys.readouterr().err


def test_listen_compares_connection_blocks_and_refuses_two_connections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Workflows with connection blocks are compared by content: two different ones exit 2."""
    trigger = "on:\n  twilio/message_received:\n"
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    block = "connection:\n  env: {account_sid: SID_A, auth_token: TOKEN_A}\n"
    first.write_text(HEAD + block + trigger + STEPS, encoding="utf-8")
    second.write_text(HEAD + block.replace("_A", "_B") + trigger + STEPS, encoding="utf-8")
    args = ["--state", str(tmp_path / "j.sqlite3"), "--port", "0"]
    assert main(["listen", str(first), str(second), *args]) == 2
    assert "different connections" in capsys.readouterr().err
