# SPDX-License-Identifier: MIT
"""
The one way to open a connection: to Twilio with credentials, to an emulator without
them, never silently one for the other.

Every host (the command line, the listener, the workers, the engine integrations)
opens its connections here, so the rule below holds everywhere:

- The credential variables are ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``,
  ``TWILIO_API_KEY`` and ``TWILIO_API_SECRET``; an empty one counts as unset.
- None set: the emulator, announced (nothing leaves the machine): the one a running
  ``twilio-connector emulator`` recorded (``connector._local_emulator``), so that
  one command sees what another sent, else a throwaway one embedded in the process.
- Some set, but no complete pair (an Account SID with its Auth Token, or with an API
  key and its secret): an error naming what is missing, never a quiet fall-back.
- ``TWILIO_EMULATOR=1`` (``--emulator``) always uses the emulator;
  ``TWILIO_EMULATOR=0`` (``--no-emulator``) refuses it, so CI can insist on the real API.

This module and :mod:`connector.testing` are the only ones of the core that import
the emulator, and only when an embedded one is started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from ._connection import Connection, Limiter
from ._local_emulator import RunningEmulator, running_emulator
from ._manifest import ConnectorSpec, default_connector
from ._pacing import Pacing
from .consent import LEDGER_VARIABLE
from .errors import ConfigurationError


if TYPE_CHECKING:
    from .consent import ConsentLedger

__all__ = [
    "CREDENTIAL_VARIABLES",
    "EMULATOR_VARIABLE",
    "Target",
    "announcement",
    "choose_target",
    "open_connection",
]

#: The environment variables that hold Twilio credentials.
CREDENTIAL_VARIABLES: Final = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_API_KEY",
    "TWILIO_API_SECRET",
)
#: ``1`` forces the emulator, ``0`` refuses it.
EMULATOR_VARIABLE: Final = "TWILIO_EMULATOR"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@attrs.frozen
class Target:
    """
    Where a connection's calls go.

    Attributes:
        emulator: Whether to an emulator.
        reason: Why, in words (for the announcement).
        running: The running ``twilio-connector emulator`` to use; ``None`` for a
            throwaway one embedded in the process (or for the real API).
    """

    emulator: bool
    reason: str = ""
    running: RunningEmulator | None = None


def _flag(env: Mapping[str, str]) -> bool | None:
    raw = (env.get(EMULATOR_VARIABLE) or "").strip().lower()
    if not raw:
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{EMULATOR_VARIABLE} must be 1 or 0, not {raw!r}")


def choose_target(
    env: Mapping[str, str],
    *,
    emulator: bool | None = None,
    running: bool = True,
    embedded: bool = True,
) -> Target:
    """
    Decide between the real API and an emulator by the rule of this module.

    Args:
        env: The environment to read (``os.environ`` for a command).
        emulator: ``True``/``False`` from a command-line switch; it wins over
            ``TWILIO_EMULATOR``.
        running: Whether to look for a running ``twilio-connector emulator`` recorded
            for this user (``False``: the target names none; the caller looks).
        embedded: Whether a throwaway embedded emulator may stand in when none is
            running; ``False`` (processes that must share one, such as workers)
            makes that an error.

    Raises:
        ConfigurationError: The credentials are incomplete, or the emulator is refused
            and there are none, or none is running and an embedded one will not do.
    """
    wanted = _flag(env) if emulator is None else emulator
    if wanted is True:
        target = Target(True, f"{EMULATOR_VARIABLE}=1 (or --emulator) asks for it")
    else:
        given = {name for name in CREDENTIAL_VARIABLES if env.get(name)}
        if given:
            missing = _missing(given)
            if missing:
                have = ", ".join(name for name in CREDENTIAL_VARIABLES if name in given)
                raise ConfigurationError(
                    f"incomplete Twilio credentials: {have} set, but {missing} not. Set "
                    "both of a pair (TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or with "
                    "TWILIO_API_KEY and TWILIO_API_SECRET), or unset them all to use the "
                    "emulator"
                )
            return Target(False)
        if wanted is False:
            raise ConfigurationError(
                f"the emulator is refused ({EMULATOR_VARIABLE}=0 or --no-emulator) and no "
                "credentials are set: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or "
                "TWILIO_API_KEY and TWILIO_API_SECRET with TWILIO_ACCOUNT_SID)"
            )
        target = Target(True, "no Twilio credentials (TWILIO_*) are set")
    if running or not embedded:
        target = _running(target)
    if target.running is None and not embedded:
        raise ConfigurationError(
            f"an emulator would be used ({target.reason}), but no `twilio-connector "
            "emulator` is running and a throwaway one will not do here: start the "
            "emulator, or set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY "
            "and TWILIO_API_SECRET with TWILIO_ACCOUNT_SID)"
        )
    return target


def _running(target: Target) -> Target:
    return attrs.evolve(target, running=running_emulator())


def announcement(target: Target, base_url: str) -> str:
    """
    The sentence that says which emulator a command uses, and why.

    Args:
        target: An emulator target.
        base_url: Where the emulator answers.
    """
    if target.running is not None:
        return (
            f"using the running Twilio emulator at {base_url} (pid {target.running.pid}, "
            f"recorded by `twilio-connector emulator`; {target.reason}); nothing leaves "
            "this machine"
        )
    return (
        f"using a throwaway embedded Twilio emulator at {base_url} ({target.reason}; no "
        "`twilio-connector emulator` is running): what it holds is gone when this command "
        "ends; nothing leaves this machine"
    )


def _missing(given: set[str]) -> str:
    if "TWILIO_ACCOUNT_SID" not in given:
        return "TWILIO_ACCOUNT_SID"
    if "TWILIO_AUTH_TOKEN" in given:
        return ""
    if "TWILIO_API_KEY" in given or "TWILIO_API_SECRET" in given:
        lacking = [n for n in ("TWILIO_API_KEY", "TWILIO_API_SECRET") if n not in given]
        return " and ".join(lacking)
    return "TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET)"


@contextlib.asynccontextmanager
async def open_connection(
    *,
    connector: ConnectorSpec | None = None,
    values: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    emulator: bool | None = None,
    embedded: bool = True,
    announce: Callable[[str], None] | None = None,
    emulator_options: Mapping[str, Any] | None = None,
    rate_limit: tuple[int, float] | bool | None = None,
    limiter: Limiter | None = None,
    redis_url: str | None = None,
    redis_key: str | None = None,
    pacing: Pacing | Mapping[str, Any] | Literal[False] | None = None,
    ledger: ConsentLedger | str | Path | Literal[False] | None = None,
) -> AsyncIterator[Connection]:
    """
    Open a :class:`~connector.Connection`: to the API the credentials name, or to an
    emulator (Twilio's connector only): the running ``twilio-connector emulator`` this
    user recorded, else one embedded in the process for as long as the connection.

    Args:
        connector: The connector; Twilio's unless given.
        values: Connection values given explicitly (a workflow's, a host's); the
            environment is then not read for credentials and an emulator is used only
            when *emulator* is ``True``.
        env: Where credentials come from otherwise (``os.environ`` for a command).
        emulator: ``True`` forces the emulator, ``False`` refuses it, ``None`` follows
            ``TWILIO_EMULATOR`` and the credentials.
        embedded: Whether a throwaway embedded emulator may stand in when none is
            running; ``False`` makes that an error (a worker must share one).
        announce: Told, in a sentence, which emulator is in use and why.
        emulator_options: Settings of an embedded emulator
            (:class:`~connector.emulator.EmulatorConfig` fields); giving them asks for
            an embedded one even when a ``twilio-connector emulator`` is running.
        rate_limit: ``(calls, seconds)``, ``False`` to lift it, ``None`` for the
            manifest's. Every limit keeps the same margin for arrival jitter
            (``connector._ratelimit.ARRIVAL_MARGIN``), in process or in Redis.
        limiter: A limiter to share instead.
        redis_url: Hold the limit in this Redis (``redis://HOST:PORT/DB``), shared by
            every process that uses the same key (the ``redis`` extra), and the senders'
            queue estimates too (under the account's keys), so that pacing holds across
            processes.
        redis_key: The shared limit's key; the account's unless given.
        pacing: How sends are paced per sender: a :class:`~connector.Pacing`, or the
            plain data a host keeps in its settings (read by :meth:`Pacing.from_config
            <connector.Pacing.from_config>`, as :meth:`Plugin.connect
            <connector.plugin.Plugin.connect>` reads it); the default rates of each kind
            of sender unless given, ``False`` for none.
        ledger: The consent ledger every send is checked against
            (:mod:`connector.consent`): a ledger, or where one is (a file, or a
            ``redis://`` URL), opened here and closed with the connection. Unless given,
            Twilio's connections use ``TWILIO_CONSENT_LEDGER`` from *env*, else, with
            *redis_url*, a ledger in that Redis (so every worker sharing the limit
            shares the opt-outs); ``False`` means none.

    Raises:
        ConfigurationError: Incomplete credentials, or the emulator refused (or asked
            for a connector other than Twilio's).
        InvalidInputError: A connection value is missing or malformed.
        ValueError: *pacing* is malformed, or *ledger* is no place for a ledger.
    """
    spec = connector or default_connector()
    if isinstance(pacing, Mapping):
        pacing = Pacing.from_config(pacing)
    source: Mapping[str, str] = {} if env is None else env
    twilio = spec is default_connector()
    if ledger is None and twilio:
        ledger = source.get(LEDGER_VARIABLE) or redis_url or False
    if values is not None or not twilio:
        if emulator and not twilio:
            raise ConfigurationError(f"the emulator serves Twilio's API only, not {spec.id!r}")
        target = Target(True, "asked for") if emulator else Target(False)
    else:
        target = choose_target(source, emulator=emulator, running=False)
    # Settings for an embedded emulator ask for one, even when another is running. The
    # look-up reads files and asks the recorded emulator: not on the event loop, which
    # may be the one serving it.
    if target.emulator and (emulator_options is None or not embedded):
        target = await asyncio.to_thread(_running, target)
        if target.running is None and not embedded:
            raise ConfigurationError(
                f"an emulator would be used ({target.reason}), but no `twilio-connector "
                "emulator` is running and a throwaway one will not do here"
            )
    if target.running is not None:
        # A running emulator is an API like Twilio's, shared by every process that uses
        # it: the same limits, pacing and ledger as for the real one.
        found = target.running
        if announce is not None:
            announce(announcement(target, found.base_url))
        values = {
            "account_sid": found.account_sid,
            "auth_token": found.auth_token,
            "base_url": found.base_url,
        }
    if not target.emulator or target.running is not None:
        async with contextlib.AsyncExitStack() as stack:
            if redis_url is not None:
                limiter = await stack.enter_async_context(
                    _redis_limiter(spec, values, source, rate_limit, redis_url, redis_key)
                )
                if twilio and pacing is not False:
                    pacing = await _redis_pacing(stack, pacing, redis_url, values, source)
            account = _owner(values, source)
            conn = await stack.enter_async_context(
                Connection(
                    connector=spec,
                    values=values,
                    env=source,
                    rate_limit=rate_limit,
                    limiter=limiter,
                    pacing=pacing,
                    ledger=await stack.enter_async_context(_ledger(ledger, account)),
                )
            )
            yield conn
        return
    from .emulator import EmulatorConfig, EmulatorServer

    options: dict[str, Any] = {"delivery_delay": 0.0, **(emulator_options or {})}
    async with (
        EmulatorServer(EmulatorConfig(**options)) as server,
        _ledger(ledger, server.account_sid) as consent,
    ):
        if announce is not None:
            announce(announcement(target, server.base_url))
        async with Connection(
            server.account_sid,
            server.auth_token,
            base_url=server.base_url,
            rate_limit=rate_limit,
            limiter=limiter,
            pacing=pacing,
            env={},
            ledger=consent,
        ) as conn:
            yield conn


def _owner(values: Mapping[str, str] | None, env: Mapping[str, str]) -> str:
    return (values or {}).get("account_sid") or env.get("TWILIO_ACCOUNT_SID", "")


async def _redis_pacing(
    stack: contextlib.AsyncExitStack,
    pacing: Pacing | None,
    url: str,
    values: Mapping[str, str] | None,
    env: Mapping[str, str],
) -> Pacing:
    from .redis_limiter import RedisSenderBook

    pacing = pacing or Pacing()
    if pacing.book is not None:
        return pacing
    book = await stack.enter_async_context(
        RedisSenderBook.for_account(url, _owner(values, env) or "twilio")
    )
    return attrs.evolve(pacing, book=book)


@contextlib.asynccontextmanager
async def _ledger(
    given: ConsentLedger | str | Path | Literal[False] | None, account: str
) -> AsyncIterator[ConsentLedger | None]:
    """The ledger *given*; one opened from a location is closed on exit."""
    if given is None or given is False:
        yield None
        return
    if not isinstance(given, str | Path):
        yield given
        return
    from .consent import open_ledger

    opened = open_ledger(given, account=account)
    try:
        yield opened
    finally:
        await opened.aclose()


def _redis_limiter(
    spec: ConnectorSpec,
    values: Mapping[str, str] | None,
    env: Mapping[str, str],
    paced: tuple[int, float] | bool | None,
    url: str,
    key: str | None,
) -> Any:
    from .redis_limiter import RedisLimiter, limit_key

    if paced is None or paced is True:
        throttle = spec.throttle
        paced = (throttle.calls, throttle.period) if throttle else False
    if not isinstance(paced, tuple):
        raise ConfigurationError("a shared limit (Redis) needs a rate limit to share")
    if key is None:
        key = limit_key(_owner(values, env) or spec.id)
    calls, period = paced
    return RedisLimiter(url, key, calls, period)
