# SPDX-License-Identifier: MIT
"""
Print, as SQL, a journal written by whichever ``connector`` package is importable.

    python tests/data/make_journal_fixture.py > tests/data/journal-vN.sql

The journal holds a finished run, a run interrupted mid fan-out (two items
``succeeded``, one ``started`` whose answer never came, one not reached) and, when the
code has triggers, a received event with its delivery still pending. See
``tests/data/README.md`` for how each committed dump was made.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from connector import AiohttpTransport, Connection, HttpRequest, HttpResponse
from connector.emulator import Clock, EmulatorServer
from connector.testing import test_config
from connector.workflow import Journal, load_workflow, run_workflow


HERE = Path(__file__).resolve().parent
FANOUT = HERE / "workflows" / "journal-fanout.yaml"
REPLY = HERE / "workflows" / "journal-reply.yaml"
# Written in place of the machine's name, so that no test machine takes the
# interrupted run for one of its own live runs.
HOST = "journal-fixture.invalid"


class StallingTransport:
    """Forwards every request, but never returns the answer to the *stall_at*-th send."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.sends = 0
        self.stall_at: int | None = None
        self.stalled = asyncio.Event()

    async def send(self, request: HttpRequest) -> HttpResponse:
        response = await self.inner.send(request)
        if request.method == "POST" and request.url.endswith("/Messages.json"):
            self.sends += 1
            if self.sends == self.stall_at:
                # Twilio has the message; the process "dies" before it learns so.
                self.stalled.set()
                await asyncio.Event().wait()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def write(path: Path) -> None:
    server = EmulatorServer(test_config(clock=Clock()))
    await server.start()
    transport = StallingTransport()
    fanout = load_workflow(FANOUT)
    try:
        conn = Connection(
            server.account_sid,
            server.auth_token,
            base_url=server.base_url,
            env={},
            rate_limit=False,
            transport=transport,
        )
        async with conn:
            with Journal(path) as journal:
                done = await run_workflow(
                    fanout, {"recipients": ["+15005550110"]}, conn, journal, run_id="fixture-done"
                )
                assert done.status == "succeeded", done
                transport.sends = 0
                transport.stall_at = 3
                run = asyncio.create_task(
                    run_workflow(fanout, {}, conn, journal, run_id="fixture-interrupted")
                )
                await transport.stalled.wait()
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                if hasattr(journal, "record_event"):
                    receive(journal, server.auth_token)
    finally:
        await server.stop()


def receive(journal: Any, auth_token: str) -> None:
    """Journal an incoming message as the listener does, without running its workflow."""
    from connector.receiving import MESSAGE_RECEIVED, Listener
    from connector.receiving._triggers import inbound_event

    listener = Listener([load_workflow(REPLY)], journal, auth_token=auth_token)
    params = {
        "MessageSid": "SM" + "5" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15005550120",
        "To": "+15005550006",
        "Body": "hello",
        "NumMedia": "0",
        "NumSegments": "1",
    }
    ingested = listener.ingest(MESSAGE_RECEIVED, inbound_event(params))
    assert ingested.new


def dump(path: Path) -> str:
    db = sqlite3.connect(path)
    with db:
        # Paths are kept relative to tests/data, so the dump names no machine's tree.
        for table in ("runs", "deliveries"):
            exists = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if exists:
                db.execute(
                    f"UPDATE {table} SET workflow = substr(workflow, ?)",
                    (len(f"{HERE}/") + 1,),
                )
        db.execute("UPDATE runs SET host = ?", (HOST,))
    version = db.execute("PRAGMA user_version").fetchone()[0]
    lines = [
        "-- A run journal, written by tests/data/make_journal_fixture.py;",
        "-- see tests/data/README.md for the code that wrote it.",
        *db.iterdump(),
        f"PRAGMA user_version = {version};",
    ]
    db.close()
    return "\n".join(lines) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.sqlite3"
        asyncio.run(write(path))
        sys.stdout.write(dump(path))


if __name__ == "__main__":
    main()
