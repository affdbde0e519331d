# SPDX-License-Identifier: MIT
"""
:class:`TwilioHook`: an Airflow connection of type ``twilio`` made into connector
connections.

The Airflow connection holds the values (login = Account SID, password = Auth Token,
extras for an API key and its secret, the base URL, a rate limit, a Redis URL, sender
pacing and a consent ledger); every connection is opened by
:func:`connector.open_connection`, which owns limits, pacing, the consent gate,
retries, validation and the emulator rule. This module only reads the settings and
checks them with the core's own readers, so a mistake fails when the connection is
read, naming the extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import weakref
from collections.abc import AsyncIterator, Hashable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import attrs
from airflow.sdk import BaseHook

from .. import BlockingConnection, Connection, ConnectorSpec, Pacing, open_connection
from .._ratelimit import parse_rate_limit
from ..consent import LEDGER_VARIABLE, check_location
from ..errors import ConfigurationError
from ..plugin import TWILIO, installed
from .get_provider_info import CONN_FIELDS, CONN_TYPE, UI_FIELD_BEHAVIOUR


if TYPE_CHECKING:
    from airflow.sdk import Connection as AirflowConnection

__all__ = ["ConnectionSettings", "TwilioHook"]

log = logging.getLogger("connector.airflow")

#: The extras that are not connection values of a manifest.
_HOST_EXTRAS: Final = frozenset({"rate_limit", "redis_url", "emulator", "pacing", "consent_ledger"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


@attrs.frozen
class ConnectionSettings:
    """
    Everything needed to open connections for one Airflow connection.

    Attributes:
        conn_id: The Airflow connection id (for messages).
        connector: The connector whose actions the connections run.
        values: Connection values by the manifest's keys (secrets included; never shown).
        rate_limit: ``(calls, seconds)``, ``False`` for none, ``None`` for the manifest's.
        redis_url: Where a limit shared by every process is held, if anywhere.
        emulator: Whether to start an embedded emulator instead (Twilio's only).
        pacing: Sender pacing as the extra holds it (the mapping
            :meth:`Pacing.from_config <connector.Pacing.from_config>` reads), ``False``
            for none, ``None`` for the default rates of each kind of sender.
        consent_ledger: Where the consent ledger is (a file, or a ``redis://`` URL);
            ``None`` for the core's default (``TWILIO_CONSENT_LEDGER``, else the Redis
            of *redis_url*).
        env: What the core's defaults read of this process's environment:
            ``TWILIO_CONSENT_LEDGER``, if set (never credentials).
    """

    conn_id: str
    connector: ConnectorSpec = attrs.field(repr=lambda spec: repr(spec.id))
    values: Mapping[str, str] = attrs.field(repr=False)
    rate_limit: tuple[int, float] | bool | None = None
    redis_url: str | None = attrs.field(default=None, repr=False)
    emulator: bool = False
    pacing: Mapping[str, Any] | Literal[False] | None = None
    consent_ledger: str | None = attrs.field(default=None, repr=False)
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_airflow(cls, conn: AirflowConnection, connector: ConnectorSpec) -> ConnectionSettings:
        """
        Read an Airflow connection.

        For Twilio, login is the Account SID and password the Auth Token; for any other
        connector they fill its first username/password pair. Every other value comes
        from the extra under the manifest's key (``api_key``, ``base_url`` ...);
        the extra may also name ``rate_limit`` (``CALLS/SECONDS`` or ``off``),
        ``redis_url``, ``emulator``, ``pacing`` (an object in the shape of
        :meth:`Pacing.from_config <connector.Pacing.from_config>`, that object as JSON
        text, or ``false``) and ``consent_ledger`` (a file path or a ``redis://`` URL).

        Raises:
            ConfigurationError: A malformed extra (naming it and what it must be), or
                no credentials and no emulator.
        """
        extra = _extras(conn.extra_dejson)
        keys = {p.key for p in connector.connection}
        values = {k: str(v) for k, v in extra.items() if k in keys and v not in (None, "")}
        pair = ("account_sid", "auth_token") if connector.id == TWILIO else None
        if pair is None and connector.auth_pairs:
            pair = connector.auth_pairs[0]
        if pair is not None:
            for key, given in zip(pair, (conn.login, conn.password), strict=True):
                if given and key not in values:
                    values[key] = given
        unknown = sorted(set(extra) - keys - _HOST_EXTRAS)
        if unknown:
            log.warning(
                "the extra of Airflow connection %r has keys %s that the %s connector does "
                "not know; they are ignored",
                conn.conn_id,
                ", ".join(unknown),
                connector.id,
            )
        emulator = str(extra.get("emulator", "")).strip().lower() in _TRUE
        if emulator and connector.id != TWILIO:
            raise ConfigurationError(
                f"Airflow connection {conn.conn_id!r}: the emulator serves Twilio's API only, "
                f"not {connector.id!r}"
            )
        secret_keys = {key for pair in connector.auth_pairs for key in pair}
        if not emulator and secret_keys and not secret_keys & values.keys():
            raise ConfigurationError(
                f"Airflow connection {conn.conn_id!r} has no credentials: set login (the "
                "Account SID) and password (the Auth Token), or login with the extras "
                "api_key and api_secret; or, to try things out, the extra emulator: true"
                if connector.id == TWILIO
                else f"Airflow connection {conn.conn_id!r} has no {connector.id} credentials"
            )
        return cls(
            conn_id=str(conn.conn_id),
            connector=connector,
            values=values,
            rate_limit=_rate_limit(conn.conn_id, extra.get("rate_limit")),
            redis_url=str(extra["redis_url"]) if extra.get("redis_url") else None,
            emulator=emulator,
            pacing=_pacing(conn.conn_id, extra.get("pacing")),
            consent_ledger=_consent_ledger(conn.conn_id, extra.get("consent_ledger")),
            env=_core_env(),
        )

    @property
    def key(self) -> Hashable:
        """Equal for settings that may share one open connection."""
        return (
            self.connector.id,
            tuple(sorted(self.values.items())),
            self.rate_limit,
            self.redis_url,
            self.emulator,
            self.pacing if not self.pacing else json.dumps(self.pacing, sort_keys=True),
            self.consent_ledger,
            tuple(sorted(self.env.items())),
        )

    def open(self, *, consent: bool = True) -> AbstractAsyncContextManager[Connection]:
        """
        Open a connection with these settings (:func:`connector.open_connection`).

        Args:
            consent: ``False`` opens no consent ledger (a probe that sends nothing, run
                where the workers' ledger file may not be).
        """
        return open_connection(
            connector=self.connector,
            values=self.values,
            env=self.env,
            emulator=True if self.emulator else None,
            announce=log.info,
            rate_limit=self.rate_limit,
            redis_url=self.redis_url,
            pacing=self.pacing,
            ledger=self.consent_ledger if consent else False,
        )


def _extras(raw: Mapping[str, Any]) -> dict[str, Any]:
    # Forms of Airflow before 2.3 stored custom fields as extra__<type>__<name>.
    prefix = f"extra__{CONN_TYPE}__"
    plain = {k: v for k, v in raw.items() if not k.startswith(prefix)}
    prefixed = {k.removeprefix(prefix): v for k, v in raw.items() if k.startswith(prefix)}
    return {**prefixed, **{k: v for k, v in plain.items() if v not in (None, "")}}


def _rate_limit(conn_id: str | None, raw: Any) -> tuple[int, float] | bool | None:
    if raw in (None, ""):
        return None
    try:
        return parse_rate_limit(str(raw))
    except ValueError as exc:
        raise ConfigurationError(f"Airflow connection {conn_id!r}: rate_limit: {exc}") from None


def _core_env() -> dict[str, str]:
    # The one variable of the worker's environment the core's defaults read for an
    # Airflow connection; its credentials come from the connection alone.
    found = os.environ.get(LEDGER_VARIABLE)
    return {LEDGER_VARIABLE: found} if found else {}


def _pacing(conn_id: str | None, raw: Any) -> Mapping[str, Any] | Literal[False] | None:
    """
    The extra's ``pacing``: an object, or that object as JSON text (what a text field of
    Airflow 3.1's form stores), ``false`` (or ``off``) for none; checked by the core's
    reader, :meth:`Pacing.from_config <connector.Pacing.from_config>`.
    """
    where = f"Airflow connection {conn_id!r}: extra pacing"
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() == "off":
            return False
        try:
            raw = json.loads(text) if text else None
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{where} must be a JSON object such as "
                '{"senders": {"+15005550006": "1/s"}, "horizon": "1h"}, or false; '
                f"it is not JSON ({exc})"
            ) from None
    if raw is None or raw is True:
        return None
    if raw is False:
        return False
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"{where} must be an object (senders, horizon, queue_limit, account_rate, "
            f"kind_rates, sticky) or false, not {type(raw).__name__}"
        )
    try:
        Pacing.from_config(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return raw


def _consent_ledger(conn_id: str | None, raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    where = f"Airflow connection {conn_id!r}: extra consent_ledger"
    if not isinstance(raw, str):
        raise ConfigurationError(
            f"{where} must be a file path or a redis:// URL, not {type(raw).__name__}"
        )
    try:
        return check_location(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


class _Shared:
    """One open connection and the triggers that use it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.connection: Connection | None = None
        self.stack: contextlib.AsyncExitStack | None = None


# Per event loop (a connection and its limiter belong to one), per settings.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Shared]] = (
    weakref.WeakKeyDictionary()
)


class TwilioHook(BaseHook):
    """
    Connections to Twilio (or to another installed connector) from an Airflow
    connection of type ``twilio``.

    In synchronous code (an operator's ``execute``), :meth:`get_conn` gives a
    :class:`~connector.BlockingConnection` usable from any thread; close it with
    :meth:`close` or use the hook as a context manager. In async code (triggers,
    notifiers), ``async with hook.connect() as conn`` opens a
    :class:`~connector.Connection`, and :meth:`shared_connection` one that every user in
    the event loop shares, with its one rate limit.

    Args:
        twilio_conn_id: The Airflow connection id.
        connector: The connector whose actions the connection runs (an installed
            plugin's id); Twilio's unless given.
    """

    conn_name_attr = "twilio_conn_id"
    default_conn_name = "twilio_default"
    conn_type = CONN_TYPE
    hook_name = "Twilio"

    def __init__(
        self,
        twilio_conn_id: str = default_conn_name,
        *,
        connector: str = TWILIO,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.twilio_conn_id = twilio_conn_id
        self.connector_id = connector
        self._blocking: BlockingConnection | None = None
        self._settings: ConnectionSettings | None = None

    # -- the connection's settings ------------------------------------------------------

    def _spec(self) -> ConnectorSpec:
        return installed().get(self.connector_id).spec

    def settings(self) -> ConnectionSettings:
        """
        Read the Airflow connection (synchronously, once per hook).

        Raises:
            ConfigurationError: See :meth:`ConnectionSettings.from_airflow`.
        """
        if self._settings is None:
            self._settings = ConnectionSettings.from_airflow(
                self.get_connection(self.twilio_conn_id), self._spec()
            )
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        """Read the Airflow connection without blocking the event loop."""
        return ConnectionSettings.from_airflow(
            await self.aget_connection(self.twilio_conn_id), self._spec()
        )

    # -- synchronous code -----------------------------------------------------------------

    def get_conn(self) -> BlockingConnection:
        """
        The hook's connection for synchronous code, opened on first use: one event loop
        thread owns it, and every thread calls through it under its one rate limit.
        ``get_conn().connection`` is the :class:`~connector.Connection` itself.
        """
        if self._blocking is None:
            settings = self.settings()
            self._blocking = BlockingConnection(settings.open).__enter__()
        return self._blocking

    def close(self) -> None:
        """Close the connection :meth:`get_conn` opened, if any."""
        blocking, self._blocking = self._blocking, None
        if blocking is not None:
            blocking.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def test_connection(self) -> tuple[bool, str]:
        """
        Check the connection from Airflow's UI: open it and, for Twilio, list one message.

        Returns:
            ``(True, what worked)`` or ``(False, why not)``.
        """
        try:
            settings = self.settings()

            async def probe(conn: Connection) -> str:
                if settings.connector.id == TWILIO:
                    await conn.call("list_messages_v2", {"PageSize": 1})
                    return f"Twilio answered at {conn.base_url}"
                return f"the {settings.connector.id} connection values are valid"

            # The probe sends nothing, and runs in the API server: the ledger, a file
            # the workers share, need not exist there.
            with BlockingConnection(lambda: settings.open(consent=False)) as blocking:
                return True, str(blocking.run(probe))
        except Exception as exc:
            return False, str(exc)

    # -- async code -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        """Open a connection of its own (``async with hook.connect() as conn:``)."""
        settings = await self.asettings()
        async with settings.open() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def shared_connection(self) -> AsyncIterator[Connection]:
        """
        Use the connection every user of these settings shares in this event loop,
        opening it for the first and closing it after the last.

        The triggerer runs every trigger of a process in one event loop: 200 triggers
        waiting on one Airflow connection make their calls through one connection and
        its one rate limit (and through Redis, if the connection names one, with every
        other process).
        """
        settings = await self.asettings()
        loop = asyncio.get_running_loop()
        entries = _SHARED.setdefault(loop, {})
        entry = entries.setdefault(settings.key, _Shared())
        async with entry.lock:
            if entry.connection is None:
                stack = contextlib.AsyncExitStack()
                entry.connection = await stack.enter_async_context(settings.open())
                entry.stack = stack
            entry.users += 1
            connection = entry.connection
        try:
            yield connection
        finally:
            async with entry.lock:
                entry.users -= 1
                if entry.users == 0:
                    opened, entry.stack, entry.connection = entry.stack, None, None
                    if entries.get(settings.key) is entry:
                        del entries[settings.key]
                    if opened is not None:
                        await opened.aclose()

    # -- the connection form ------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the standard fields show (Airflow 3.1; later versions read the provider info)."""
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields' widgets (Airflow 3.1; later versions read the provider info)."""
        from flask_appbuilder.fieldwidgets import (
            BS3PasswordFieldWidget,
            BS3TextAreaFieldWidget,
            BS3TextFieldWidget,
        )
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, PasswordField, StringField

        widgets: dict[str, Any] = {}
        for name, field in CONN_FIELDS.items():
            label = lazy_gettext(field["label"])
            schema = field["schema"]
            kinds = set(schema["type"]) - {"null"}
            if kinds == {"boolean"}:
                widgets[name] = BooleanField(label, default=bool(schema.get("default")))
            elif schema.get("format") == "password":
                widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget())
            else:
                # An object (pacing) is typed as JSON text, which the hook reads back.
                widget = BS3TextAreaFieldWidget() if "object" in kinds else BS3TextFieldWidget()
                widgets[name] = StringField(label, widget=widget, description=field["description"])
        return widgets
