# SPDX-License-Identifier: MIT
"""
``consent list|import|export``: the consent ledger from the command line, so a team can
bring the opt-out list it already has, and see or take out what the ledger holds.

The ledger is the one runs use: ``--consent`` (a file, created 0600, or a
``redis://`` URL), else ``TWILIO_CONSENT_LEDGER``, else the run journal's (``--state``,
or the default journal).

Exit codes: 0 done, 2 invalid command line or file (nothing was imported).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from ._common import (
    EXIT_INVALID,
    EXIT_OK,
    add_consent_option,
    add_state_option,
    complain,
    environ,
    print_json,
    run_async,
)


if TYPE_CHECKING:
    from ..consent import ConsentEntry, RedisLedger, SQLiteLedger

__all__ = ["COLUMNS", "register"]

#: The CSV columns, in the order export writes them; import needs ``recipient`` only.
COLUMNS: Final = ("recipient", "sender", "state", "source", "at")
#: What import accepts in the ``state`` column (empty: opted_out).
_STATES: Final = {
    "": "opted_out",
    "opted_out": "opted_out",
    "out": "opted_out",
    "stop": "opted_out",
    "opted_in": "opted_in",
    "in": "opted_in",
    "start": "opted_in",
}
# E.164, or a channel address (whatsapp:+...); senders may also be short codes,
# alphanumeric IDs, Messaging Service SIDs or * (every sender).
_ADDRESS = re.compile(r"^(\+[1-9][0-9]{1,14}|[a-z]+:\S+)$")
_SENDER = re.compile(
    r"^(\*|\+[1-9][0-9]{1,14}|[a-z]+:\S+|[0-9]{3,8}|MG[0-9a-fA-F]{32}|[A-Za-z0-9 ]{1,11})$"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``consent`` and its verbs."""
    parser = sub.add_parser(
        "consent",
        help="list, import or export the opt-out ledger",
        description=(
            "The consent ledger every send is checked against: recipients who opted out "
            "(STOP, a 21610 answer, an imported list) are skipped before any request. "
            f"CSV columns: {', '.join(COLUMNS)}; import needs recipient only (an empty "
            "sender means every sender of the account, state defaults to opted_out)."
        ),
    )
    verbs = parser.add_subparsers(dest="consent_command", metavar="list|import|export")
    verbs.required = True

    listing = verbs.add_parser("list", help="show the ledger's entries")
    listing.add_argument("--recipient", metavar="NUMBER", help="only this recipient's entries")
    listing.add_argument(
        "--opted-out", action="store_true", help="only entries that opt out (not opt-ins)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)

    importing = verbs.add_parser(
        "import", help="add a CSV list (an older word never replaces a newer one)"
    )
    importing.add_argument("file", metavar="FILE.csv", help="the list ('-' for stdin)")
    importing.add_argument(
        "--source", default="import", help="what rows without a source say (default: import)"
    )
    importing.set_defaults(handler=_import)

    exporting = verbs.add_parser("export", help="write the ledger as CSV")
    exporting.add_argument("--output", "-o", type=Path, help="write to this file, not stdout")
    exporting.set_defaults(handler=_export)

    for verb in (listing, importing, exporting):
        add_consent_option(verb)
        add_state_option(verb)


@contextlib.asynccontextmanager
async def _ledger(args: argparse.Namespace) -> AsyncIterator[SQLiteLedger | RedisLedger]:
    """The ledger the command works on (see the module docstring)."""
    from ..consent import LEDGER_VARIABLE, open_ledger

    env = environ()
    location = args.consent or env.get(LEDGER_VARIABLE)
    if location:
        account = env.get("TWILIO_ACCOUNT_SID", "")
        if str(location).startswith(("redis://", "rediss://", "unix://")) and not account:
            from ..errors import ConfigurationError

            raise ConfigurationError(
                "a ledger in Redis is kept per account: set TWILIO_ACCOUNT_SID"
            )
        opened = open_ledger(location, account=account)
        try:
            yield opened
        finally:
            await opened.aclose()
        return
    from ..workflow import Journal, default_journal_path

    with Journal(args.state or default_journal_path()) as journal:
        yield journal.consent


def _run(args: argparse.Namespace, command: Any) -> int:
    from ..errors import ConfigurationError

    try:
        return int(run_async(command))
    except (ConfigurationError, OSError, ValueError) as exc:
        complain("consent", exc)
        return EXIT_INVALID


def _iso(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat().replace("+00:00", "Z")


def _row(entry: ConsentEntry) -> dict[str, str]:
    from ..consent import ACCOUNT_WIDE

    return {
        "recipient": entry.recipient,
        "sender": "" if entry.sender == ACCOUNT_WIDE else entry.sender,
        "state": entry.state,
        "source": entry.source,
        "at": _iso(entry.at),
    }


# -- list -------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    return _run(args, _list_entries(args))


async def _list_entries(args: argparse.Namespace) -> int:
    async with _ledger(args) as ledger:
        rows = [
            _row(entry)
            async for entry in ledger.entries(args.recipient)
            if not args.opted_out or entry.state == "opted_out"
        ]
    if args.json:
        print_json(rows)
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "Recipient",
        "Sender",
        "State",
        "Source",
        "At",
        title=f"{len(rows)} {'entry' if len(rows) == 1 else 'entries'}",
    )
    for row in rows:
        table.add_row(
            row["recipient"],
            row["sender"] or "(every sender)",
            row["state"],
            row["source"],
            row["at"],
        )
    Console(width=None if sys.stdout.isatty() else 120).print(table)
    return EXIT_OK


# -- import -----------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    import time

    try:
        with contextlib.ExitStack() as stack:
            text = (
                sys.stdin
                if args.file == "-"
                else stack.enter_context(Path(args.file).open(encoding="utf-8-sig", newline=""))
            )
            entries, problems = _read_rows(text, args.source, time.time())
    except (OSError, UnicodeDecodeError) as exc:
        complain("consent", exc)
        return EXIT_INVALID
    if problems:
        for problem in problems[:20]:
            print(f"{args.file}: {problem}", file=sys.stderr)
        more = f" ({len(problems) - 20} more not shown)" if len(problems) > 20 else ""
        complain("consent", f"{len(problems)} problems{more}; nothing was imported")
        return EXIT_INVALID
    return _run(args, _import_entries(args, entries))


def _read_rows(text: TextIO, source: str, now: float) -> tuple[list[ConsentEntry], list[str]]:
    """The file's entries, or every problem found (named by line)."""
    import csv

    from ..consent import ACCOUNT_WIDE, ConsentEntry

    reader = csv.DictReader(text)
    header = [name.strip() for name in reader.fieldnames or ()]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown or "recipient" not in header:
        what = f"unknown column {unknown[0]!r}" if unknown else "no recipient column"
        return [], [f"line 1: {what}; the columns are {', '.join(COLUMNS)}"]
    reader.fieldnames = header
    entries: list[ConsentEntry] = []
    problems: list[str] = []
    for row in reader:
        line = reader.line_num
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if None in row:
            problems.append(f"line {line}: more fields than columns")
            continue
        recipient = values.get("recipient", "")
        sender = values.get("sender", "") or ACCOUNT_WIDE
        state = _STATES.get(values.get("state", "").lower())
        if not _ADDRESS.match(recipient):
            problems.append(f"line {line}: recipient {recipient!r} is not a phone number")
        if not _SENDER.match(sender):
            problems.append(f"line {line}: sender {sender!r} is not a sender")
        if state is None:
            problems.append(f"line {line}: state {values['state']!r} is not opted_out or opted_in")
        at = now
        if values.get("at"):
            try:
                at = _parse_time(values["at"])
            except ValueError:
                problems.append(f"line {line}: at {values['at']!r} is not an ISO 8601 time")
        if state is not None and not problems:
            entries.append(
                ConsentEntry(sender, recipient, state, values.get("source") or source, at)  # type: ignore[arg-type]
            )
    return entries, problems


def _parse_time(value: str) -> float:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


async def _import_entries(args: argparse.Namespace, entries: list[ConsentEntry]) -> int:
    async with _ledger(args) as ledger:
        changed = await ledger.record_many(entries)
        where = ledger.location
    complain(
        "consent",
        f"imported {len(entries)} rows into {where}: {changed} changed the ledger, "
        f"{len(entries) - changed} were older than (or the same as) what it held",
    )
    return EXIT_OK


# -- export -----------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    return _run(args, _export_entries(args))


async def _export_entries(args: argparse.Namespace) -> int:
    import csv

    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(args.output.open("w", newline="", encoding="utf-8"))
            if args.output
            else sys.stdout
        )
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        async with _ledger(args) as ledger:
            async for entry in ledger.entries():
                writer.writerow(_row(entry))
    return EXIT_OK
