# SPDX-License-Identifier: MIT
"""
Where a running ``twilio-connector emulator`` says it listens, so that the commands run
after it (``call``, ``run``, ``listen``, ``inbound``...) use it instead of a throwaway
emulator of their own, and see each other's messages.

Each emulator process writes one record while it serves:
``emulator-<pid>.json`` in ``$XDG_RUNTIME_DIR/twilio-connector`` (a directory that
belongs to the user's login session), else in the per-user state directory
(``$XDG_STATE_HOME/twilio-connector``, ``~/.local/state/twilio-connector`` on Linux).
The directory is created 0700 and the record 0600. It holds the base URL, the account
SID, the auth token, the pid and the start time, and it is removed when the emulator
stops cleanly.

The auth token is written there because a command cannot use the emulator without it,
and the alternatives are worse: a fixed, well-known token would let any process (or,
with ``--host 0.0.0.0``, any host) make the emulator post status callbacks wherever it
likes; asking the emulator for its token over HTTP would hand it to anyone who can
connect. A file only its owner can read, in a directory only its owner can enter, is
how Docker and kubectl keep local credentials too. The token guards only the emulated
API of a local test server (its admin routes take no credentials at all), and it is
never printed by the commands that read it.

A record is used only when its file belongs to this user and is writable by no one
else, its process is alive, and its base URL answers ``GET /healthz``. A record whose
process is gone or whose port refuses connections is stale and is deleted; one whose
server is alive but slow to answer (a suspended process) is skipped and kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final, Literal

import attrs


__all__ = [
    "RECORD_DIR_NAME",
    "RunningEmulator",
    "record_directory",
    "recorded_emulator",
    "running_emulator",
]

#: The directory, under the runtime or state directory, that holds the records.
RECORD_DIR_NAME: Final = "twilio-connector"
_PREFIX = "emulator-"
_SUFFIX = ".json"
_MAX_RECORD = 4096
#: How long a recorded emulator has to answer ``GET /healthz``.
_PROBE_TIMEOUT = 1.0


@attrs.frozen
class RunningEmulator:
    """
    A ``twilio-connector emulator`` that recorded where it listens.

    Attributes:
        base_url: Its API root (``http://127.0.0.1:8999``).
        account_sid: The one account it serves.
        auth_token: That account's token (never shown in a repr).
        pid: Its process.
        started: When it started (seconds since the epoch).
        path: The record's file.
    """

    base_url: str
    account_sid: str
    auth_token: str = attrs.field(repr=False)
    pid: int
    started: float
    path: Path = attrs.field(eq=False)


def record_directory(environ: Mapping[str, str] | None = None) -> Path:
    """
    The directory of this user's emulator records.

    Args:
        environ: The environment to read ``XDG_RUNTIME_DIR`` and ``XDG_STATE_HOME``
            from; the process's unless given.

    Returns:
        ``$XDG_RUNTIME_DIR/twilio-connector`` when that variable names an existing
        directory, else ``$XDG_STATE_HOME/twilio-connector``, else the platform's
        per-user state directory.
    """
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / RECORD_DIR_NAME
    state = env.get("XDG_STATE_HOME", "")
    if state and os.path.isabs(state):
        return Path(state) / RECORD_DIR_NAME
    import platformdirs

    return Path(platformdirs.user_state_dir(RECORD_DIR_NAME, appauthor=False))


@contextlib.contextmanager
def recorded_emulator(
    base_url: str,
    account_sid: str,
    auth_token: str,
    *,
    directory: Path | None = None,
    pid: int | None = None,
) -> Iterator[Path]:
    """
    Record a running emulator for as long as the ``with`` block lasts.

    Args:
        base_url: Where it answers (a loopback URL for one bound to every interface).
        account_sid: Its account.
        auth_token: Its token.
        directory: Where to write; :func:`record_directory` unless given.
        pid: Its process; this one unless given.

    Yields:
        The record's path (created 0600, in a directory created 0700).

    Raises:
        OSError: The record cannot be written.
    """
    folder = record_directory() if directory is None else directory
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    owner = os.getpid() if pid is None else pid
    path = folder / f"{_PREFIX}{owner}{_SUFFIX}"
    text = json.dumps(
        {
            "base_url": base_url,
            "account_sid": account_sid,
            "auth_token": auth_token,
            "pid": owner,
            "started": time.time(),
        }
    )
    # Written whole under another name, then renamed: a reader never sees half of it.
    scratch = folder / f".{_PREFIX}{owner}{_SUFFIX}.tmp"
    scratch.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(scratch, flags, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(scratch, path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def running_emulator(directory: Path | None = None) -> RunningEmulator | None:
    """
    The ``twilio-connector emulator`` this user runs, as the commands find it: the
    newest recorded one that is alive and answering (stale records are deleted).

    For scripts that talk to it with other clients (twilio-python, a host's connection
    values); :func:`~connector.open_connection` finds it by itself. It asks the
    emulator over HTTP, so in async code call it off the event loop
    (``await asyncio.to_thread(running_emulator)``).

    Args:
        directory: Where the records are; ``$XDG_RUNTIME_DIR/twilio-connector``, else
            the per-user state directory, unless given.

    Returns:
        The emulator, or ``None`` when none is running.
    """
    folder = record_directory() if directory is None else directory
    try:
        paths = sorted(folder.glob(f"{_PREFIX}*{_SUFFIX}"))
    except OSError:
        return None
    candidates = []
    for path in paths:
        found = _read(path)
        if found is None:
            continue
        if not _alive(found.pid):
            _forget(path)
            continue
        candidates.append(found)
    for found in sorted(candidates, key=lambda c: c.started, reverse=True):
        answer = _probe(found.base_url)
        if answer == "up":
            return found
        if answer == "refused":
            _forget(path=found.path)
    return None


def _read(path: Path) -> RunningEmulator | None:
    """A record, if it is this user's alone and well formed; a malformed one is deleted."""
    try:
        info = path.lstat()
        if os.name == "posix" and (info.st_uid != os.getuid() or info.st_mode & 0o022):
            return None  # not ours, or others could have changed it: never trusted
        if not path.is_file() or info.st_size > _MAX_RECORD:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        found = RunningEmulator(
            base_url=str(data["base_url"]),
            account_sid=str(data["account_sid"]),
            auth_token=str(data["auth_token"]),
            pid=int(data["pid"]),
            started=float(data["started"]),
            path=path,
        )
    except OSError:
        return None
    except (ValueError, KeyError, TypeError):
        _forget(path)
        return None
    if not found.base_url.startswith(("http://", "https://")):
        _forget(path)
        return None
    return found


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, harmless check there: the probe decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Another user's process now has the pid: ours is gone.
        return False
    return True


def _probe(base_url: str) -> Literal["up", "refused", "unknown"]:
    """Whether ``GET /healthz`` answers 200, the port refuses, or neither is certain."""
    # No proxy: the record names this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(base_url.rstrip("/") + "/healthz", timeout=_PROBE_TIMEOUT) as answer:
            return "up" if answer.status == 200 else "unknown"
    except urllib.error.URLError as exc:
        return "refused" if isinstance(exc.reason, ConnectionRefusedError) else "unknown"
    except ConnectionRefusedError:
        return "refused"
    except (OSError, ValueError):
        return "unknown"


def _forget(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
