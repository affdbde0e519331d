"""The emulator refuses what could hurt it: its own address as a webhook, absurd values, slow searches."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.emulator import EmulatorServer


@pytest.fixture(params=[0o022, 0o002, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under each umask, restoring the previous one after."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
async def test_database_files_are_private_whatever_the_umask(
    umask: int, tmp_path: Path, twilio_emulator_factory: Any
) -> None:
    """The emulator's database and its -wal and -shm files are created with mode 0600."""
    db = tmp_path / "emulator.db"
    emulator: EmulatorServer = await twilio_emulator_factory(db_path=str(db))
    await emulator.inbound(to="+15005550006", from_="+15551230001", body="secret")
    files = [db, db.with_name("emulator.db-wal"), db.with_name("emulator.db-shm")]
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {f.name: 0o600 for f in files}
