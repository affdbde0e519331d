# SPDX-License-Identifier: MIT
"""
The credentials blocks: Twilio's, and the connection values of any installed connector.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from prefect.blocks.abstract import CredentialsBlock
from prefect.types import SecretDict
from pydantic import Field, HttpUrl, SecretStr, field_validator

from .._connect import EMULATOR_VARIABLE
from .._pacing import Pacing
from .._ratelimit import parse_rate_limit
from ..consent import LEDGER_VARIABLE, check_location
from ..errors import ConfigurationError
from ..plugin import TWILIO, installed
from ._shared import ConnectionOptions, Shared, environment, shared


if TYPE_CHECKING:
    from .._blocking import BlockingConnection
    from .._connection import Connection
    from ..models import Twilio


__all__ = ["ConnectorCredentials", "TwilioCredentials"]

_LOGO = HttpUrl(
    "https://raw.githubusercontent.com/PrefectHQ/prefect/"
    "420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/twilio.png"
)
_DOCS = HttpUrl(
    "https://github.com/twilio-workflow-connector/twilio-workflow-connector/blob/main/docs/prefect.md"
)
_RATE_LIMIT = (
    "At most CALLS calls per SECONDS seconds for this connection, as CALLS/SECONDS "
    "(100/60), or 'off'; the manifest's limit (Twilio: 1200/60) unless given. Each "
    "process holds its own budget unless a Redis URL is given."
)
_REDIS_URL = (
    "Hold the rate limit in this Redis (redis://HOST:PORT/DB), shared by every process "
    "and worker that uses it; needs the 'redis' extra."
)

_PACING = (
    "How sends are paced per sender, in the shape Pacing.from_config reads: senders' "
    'rates in segments ({"senders": {"+15005550006": "1/s", "12345": "100/s"}, '
    '"horizon": "1h"}; also queue_limit, account_rate, kind_rates, sticky), or false for '
    "none. Unset: the default rate of each kind of sender. Across processes only with a "
    "Redis URL."
)
_CONSENT_LEDGER = (
    "Where the opt-outs are that every send is checked against: a SQLite file, or "
    "redis://HOST:PORT/DB. Unset: TWILIO_CONSENT_LEDGER, else the Redis URL's Redis, "
    "else none."
)

log = logging.getLogger("connector.prefect")


def _announcer() -> Callable[[str], None]:
    # Taken in the caller's thread: the connection opens in its own loop thread, where
    # no Prefect run context exists.
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger().info
    except MissingContextError:
        return log.info


def _checked_rate_limit(value: str | None) -> str | None:
    if value is not None:
        parse_rate_limit(value)
    return value


def _checked_pacing(value: Any) -> Any:
    # Before pydantic's own check, so that a wrong type gets one error that says what
    # the field takes; the core's reader checks the rest (pydantic names the field).
    if value is None or value is False:
        return value
    if not isinstance(value, Mapping):
        raise ValueError(  # pydantic reports a ValueError, not a TypeError
            "expected the settings Pacing.from_config reads (senders, horizon, "
            f"queue_limit, account_rate, kind_rates, sticky) or false, not {value!r}"
        )
    Pacing.from_config(value)
    return value


def _checked_ledger(value: SecretStr | None) -> SecretStr | None:
    if value is None or not value.get_secret_value().strip():
        return None  # a form's empty field: the core's default
    check_location(value.get_secret_value())
    return value


class _Connects:
    """
    What both credentials blocks do with their options (a mixin, not a block: Prefect
    would register a block class of its own as a block type).
    """

    def _options(self) -> ConnectionOptions:
        raise NotImplementedError

    def connect(self) -> AbstractAsyncContextManager[Connection]:
        """
        Open a :class:`~connector.Connection` of your own, in async code::

            async with credentials.connect() as conn:
                message = await conn.call("send_text_message", {...})

        It has its own rate limit (or the Redis-held one), separate from the one the
        tasks share.
        """
        return self._options().open(_announcer())

    def get_client(self) -> BlockingConnection:
        """
        The process's shared connection for these credentials: usable from any thread
        without ``async``, and the one the tasks use, so calls made through it count
        against the same limit (``credentials.get_client().call("get_message", {...})``).
        """
        return self._shared().connection

    def _shared(self) -> Shared:
        return shared(self._options(), _announcer())


class TwilioCredentials(_Connects, CredentialsBlock):
    """
    Twilio credentials for the connector's tasks and notification block.

    Give an Account SID with its Auth Token, or with an API key and its secret. Left
    empty, the credentials come from the environment (``TWILIO_ACCOUNT_SID``,
    ``TWILIO_AUTH_TOKEN``, ``TWILIO_API_KEY``, ``TWILIO_API_SECRET``), and with none set
    there, calls go to an embedded Twilio emulator (announced in the run's logs);
    ``TWILIO_EMULATOR=0`` refuses that, so production cannot send into an emulator.

    Every task given equal credentials in one process shares one connection and one
    rate limit; with ``redis_url`` the limit is shared by every process too, and so are
    the senders' queues that ``pacing`` paces.

    Every send is checked against the consent ledger (``consent_ledger``; unset,
    ``TWILIO_CONSENT_LEDGER``, else the Redis of ``redis_url``): a send to a recipient
    who opted out is not made, and its task run ends ``Completed`` in a state named
    ``Skipped``, with the reason as its message and ``None`` as its result.

    Example:
        ```python
        from connector.prefect import TwilioCredentials, send_text_message

        credentials = TwilioCredentials.load("BLOCK_NAME")
        send_text_message(from_="+15005550006", to="+15551234567", body="Hi",
                          credentials=credentials)
        ```
    """

    _block_type_name: ClassVar[str] = "Twilio Credentials"
    _logo_url: ClassVar[HttpUrl] = _LOGO
    _documentation_url: ClassVar[HttpUrl] = _DOCS
    _description: ClassVar[str] = (
        "Twilio credentials (or a Twilio emulator) for the twilio-workflow-connector tasks, "
        "with the connection's rate limit."
    )

    account_sid: SecretStr | None = Field(
        default=None,
        title="Account SID",
        description="The Account SID (AC...), from the Twilio console.",
    )
    auth_token: SecretStr | None = Field(
        default=None,
        title="Auth Token",
        description="The account's Auth Token. Not needed with an API key and secret.",
    )
    api_key: str | None = Field(
        default=None,
        title="API Key SID",
        description="An API key (SK...) to authenticate with instead of the Auth Token.",
    )
    api_secret: SecretStr | None = Field(
        default=None, title="API Key Secret", description="The API key's secret."
    )
    base_url: str | None = Field(
        default=None,
        title="Base URL",
        description=(
            "Where the API lives: a Twilio emulator (http://127.0.0.1:8080) or a regional "
            "edge; https://api.twilio.com unless given."
        ),
        examples=["http://127.0.0.1:8080"],
    )
    rate_limit: str | None = Field(
        default=None, title="Rate limit", description=_RATE_LIMIT, examples=["100/60"]
    )
    redis_url: SecretStr | None = Field(default=None, title="Redis URL", description=_REDIS_URL)
    pacing: dict[str, Any] | Literal[False] | None = Field(
        default=None,
        title="Sender pacing",
        description=_PACING,
        examples=[{"senders": {"+15005550006": "1/s"}, "horizon": "1h"}, False],
    )
    consent_ledger: SecretStr | None = Field(
        default=None, title="Consent ledger", description=_CONSENT_LEDGER
    )

    _check_rate_limit = field_validator("rate_limit")(_checked_rate_limit)
    _check_pacing = field_validator("pacing", mode="before")(_checked_pacing)
    _check_ledger = field_validator("consent_ledger")(_checked_ledger)

    def connect(self) -> AbstractAsyncContextManager[Connection[Twilio]]:
        """
        Open a :class:`~connector.Connection` of your own, in async code; its calls
        return the generated models (``connector.models.Message``)::

            async with credentials.connect() as conn:
                message = await conn.call("send_text_message", {...})

        It has its own rate limit (or the Redis-held one), separate from the one the
        tasks share.
        """
        return cast("AbstractAsyncContextManager[Connection[Twilio]]", super().connect())

    def _options(self) -> ConnectionOptions:
        given = {
            "account_sid": _reveal(self.account_sid),
            "auth_token": _reveal(self.auth_token),
            "api_key": self.api_key or None,
            "api_secret": _reveal(self.api_secret),
        }
        values = {key: value for key, value in given.items() if value}
        if not values and self.base_url:
            raise ConfigurationError(
                "TwilioCredentials: base_url is set but no credentials are; give the "
                "account_sid and auth_token of the API (or emulator) at that URL"
            )
        if self.base_url:
            values["base_url"] = self.base_url
        return ConnectionOptions(
            TWILIO,
            tuple(sorted(values.items())) if values else None,
            environment((LEDGER_VARIABLE,)) if values else _environment(TWILIO),
            _rate_limit(self.rate_limit),
            _reveal(self.redis_url),
            pacing=_pacing_text(self.pacing),
            consent_ledger=_reveal(self.consent_ledger),
        )


class ConnectorCredentials(_Connects, CredentialsBlock):
    """
    The connection values of any installed connector, for its tasks
    (``<connector>_<action>``).

    Values not given come from the environment variables the connector's manifest
    names (``<CONNECTOR>_<KEY>`` by default).
    """

    _block_type_name: ClassVar[str] = "Workflow Connector Credentials"
    _logo_url: ClassVar[HttpUrl] = _LOGO
    _documentation_url: ClassVar[HttpUrl] = _DOCS
    _description: ClassVar[str] = (
        "Connection values for any connector installed with twilio-workflow-connector, "
        "with the connection's rate limit."
    )

    connector: str = Field(
        default=TWILIO,
        title="Connector",
        description="The connector's id (`twilio-connector plugins` lists them).",
    )
    values: SecretDict | None = Field(
        default=None,
        title="Connection values",
        description="The connection's values by key, as the connector's manifest names them.",
    )
    rate_limit: str | None = Field(
        default=None, title="Rate limit", description=_RATE_LIMIT, examples=["100/60"]
    )
    redis_url: SecretStr | None = Field(default=None, title="Redis URL", description=_REDIS_URL)

    _check_rate_limit = field_validator("rate_limit")(_checked_rate_limit)

    def _options(self) -> ConnectionOptions:
        given: Mapping[str, Any] = self.values.get_secret_value() if self.values else {}
        values = {str(key): str(value) for key, value in given.items()}
        return ConnectionOptions(
            self.connector,
            tuple(sorted(values.items())) if values else None,
            () if values else _environment(self.connector),
            _rate_limit(self.rate_limit),
            _reveal(self.redis_url),
        )


def _environment(connector: str) -> tuple[tuple[str, str], ...]:
    # What decides a connection when the block gives no values: the variables its
    # manifest reads, and for Twilio's, the switch of the emulator rule and the
    # consent ledger's default.
    spec = installed().get(connector).spec
    names = tuple(p.env for p in spec.connection if p.env)
    if connector == TWILIO:
        names = (*names, EMULATOR_VARIABLE, LEDGER_VARIABLE)
    return environment(names)


def _pacing_text(value: dict[str, Any] | Literal[False] | None) -> str | Literal[False] | None:
    # As JSON with sorted keys: equal settings make equal options, which share one
    # connection (a dict would not be hashable).
    if value is None or value is False:
        return value
    return json.dumps(value, sort_keys=True)


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() or None if secret is not None else None


def _rate_limit(text: str | None) -> tuple[int, float] | bool | None:
    return None if text is None else parse_rate_limit(text)
