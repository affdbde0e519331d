"""`twilio-connector consent list|import|export`, and the ledger in `run`."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
import yaml

from connector.cli import main


CSV = """recipient,sender,state,source,at
+15551230002,+15005550006,opted_out,STOP,2026-01-02T03:04:05Z
+15551230003,,,,2026-01-02T03:04:06.5Z
+15551230004,MG00000000000000000000000000000000,opted_in,START,2026-01-02T03:04:07+00:00
"""


def consent(*args: str) -> int:
    return main(["consent", *args])


def test_import_list_export_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A list imported into a file of its own exports as it came, and imports again unchanged."""
    source = tmp_path / "list.csv"
    source.write_text(CSV, encoding="utf-8")
    first = tmp_path / "team" / "consent.sqlite3"
    assert consent("import", str(source), "--consent", str(first)) == 0
    assert "imported 3 rows" in capsys.readouterr().err
    if sys.platform != "win32":
        assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert consent("list", "--json", "--opted-out", "--consent", str(first)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["recipient"], r["sender"], r["source"]) for r in listed] == [
        ("+15551230002", "+15005550006", "STOP"),
        ("+15551230003", "", "import"),
    ]
    exported = tmp_path / "out.csv"
    assert consent("export", "-o", str(exported), "--consent", str(first)) == 0
    text = exported.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "recipient,sender,state,source,at"
    assert "+15551230003,,opted_out,import,2026-01-02T03:04:06.500000Z" in text
    second = tmp_path / "second.sqlite3"
    assert consent("import", str(exported), "--consent", str(second)) == 0
    assert consent("export", "--consent", str(second)) == 0
    assert capsys.readouterr().out.replace("\r\n", "\n") == text.replace("\r\n", "\n")
    # Importing the same list again changes nothing: no word is newer.
    assert consent("import", str(exported), "--consent", str(second)) == 0
    assert "0 changed the ledger" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("phone,sender\n+15551230002,\n", "unknown column 'phone'"),
        ("recipient\nsomeone\n", "recipient 'someone' is not a phone number"),
        ("recipient,state\n+15551230002,maybe\n", "state 'maybe' is not opted_out or opted_in"),
        ("recipient,at\n+15551230002,yesterday\n", "at 'yesterday' is not an ISO 8601 time"),
    ],
)
def test_a_bad_list_imports_nothing(
    text: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt column or a bad value fails loudly, by line, and nothing is imported."""
    source = tmp_path / "list.csv"
    source.write_text(text, encoding="utf-8")
    ledger = tmp_path / "consent.sqlite3"
    assert consent("import", str(source), "--consent", str(ledger)) == 2
    err = capsys.readouterr().err
    assert problem in err and "nothing was imported" in err
    assert consent("export", "--consent", str(ledger)) == 0
    assert capsys.readouterr().out.strip() == "recipient,sender,state,source,at"


def test_a_run_skips_who_the_imported_list_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`consent import` into the journal's ledger; `run` on the same journal skips that recipient and exits 0."""
    state = tmp_path / "runs.sqlite3"
    source = tmp_path / "list.csv"
    source.write_text("recipient\n+15551230002\n", encoding="utf-8")
    assert consent("import", str(source), "--state", str(state)) == 0
    workflow = tmp_path / "notify.yaml"
    workflow.write_text(
        yaml.safe_dump(
            {
                "name": "notify",
                "steps": [
                    {
                        "id": "send",
                        "uses": "twilio/send_text_message",
                        "for_each": ["+15551230001", "+15551230002"],
                        "with": {"from": "+15005550006", "to": "${{ item }}", "body": "Hi"},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["run", str(workflow), "--state", str(state), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (step,) = result["steps"]
    assert (step["status"], step["succeeded"], step["skipped"], step["failed"]) == (
        "succeeded",
        1,
        1,
        0,
    )
    (skip,) = step["skips"]
    assert skip["key"] == "+15551230002"
    assert "every sender of the account (imported" in skip["reason"]
