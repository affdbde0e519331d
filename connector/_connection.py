"""
A connection: credentials, one HTTP session, one rate limiter, and the generic
executor that runs any action of a manifest through them.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import enum
import functools
import hmac
import logging
import os
import re
import string
import time
import typing
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Protocol, Self, overload
from urllib.parse import quote_plus, urljoin, urlsplit, urlunsplit

import attrs
import orjson

from . import _convert
from ._clock import LoopClock
from ._manifest import ActionSpec, ConnectorSpec, default_connector
from ._media import (
    DEFAULT_MAX_BYTES,
    REDIRECT_STATUSES,
    MediaContent,
    MediaPolicy,
    filename_for,
    is_twilio_api_host,
    save,
)
from ._pacing import Pacer, Pacing
from ._ratelimit import sliding_window_limiter
from ._replies import wait_for_one
from ._retry import RetryPolicy
from ._transport import AiohttpTransport, HttpRequest, HttpResponse, Transport
from ._validation import SECRET_MASK, CompiledAction, compile_action
from .errors import (
    AuthenticationError,
    ConnectError,
    InputIssue,
    InvalidInputError,
    MediaTooLargeError,
    MessageMayHaveBeenSentError,
    OptedOutError,
    ReadError,
    TransportError,
    TwilioAPIError,
    UnsafeLinkError,
    error_from_response,
)


if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from . import _signatures
    from .consent import ConsentLedger
    from .models import Twilio

    # Covariant, so a Connection[Twilio] is a Connection; a bare `Connection` means
    # Connection[object], whose calls return Any.
    _Api = TypeVar("_Api", covariant=True, default=object)
else:
    # TypeVar defaults (PEP 696) exist at run time from Python 3.13 only, and only type
    # checkers read them.
    _Api = typing.TypeVar("_Api", covariant=True)


__all__ = [
    "EDGE_VARIABLE",
    "REGION_VARIABLE",
    "Connection",
    "Limiter",
    "MediaContent",
    "MediaPolicy",
    "default_connector",
    "regional_base_url",
]

log = logging.getLogger("connector")

#: Twilio's edge location, read as twilio-python reads it.
EDGE_VARIABLE: Final = "TWILIO_EDGE"
#: Twilio's processing region, read as twilio-python reads it.
REGION_VARIABLE: Final = "TWILIO_REGION"

# Edge and region ids are DNS labels; anything else would make another host.
_LOCATION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def regional_base_url(base_url: str, *, edge: str | None, region: str | None) -> str:
    """
    Point a Twilio API root at an edge and a region, as twilio-python does.

    ``https://api.twilio.com`` becomes ``https://api.{edge}.{region}.twilio.com``; the
    region is ``us1`` when only an edge is given, and with only a region the host is
    ``api.{region}.twilio.com`` (a form Twilio retired on 2026-04-28, so a warning is
    logged). A host that is not Twilio's (a local emulator) is returned unchanged.

    Args:
        base_url: The default API root of a connector.
        edge: The edge (``dublin``), or ``None``/empty for none.
        region: The region (``ie1``), or ``None``/empty for none.

    Raises:
        InvalidInputError: *edge* or *region* is not a plain DNS label.
    """
    edge = (edge or "").strip().lower()
    region = (region or "").strip().lower()
    if not edge and not region:
        return base_url
    issues = [
        InputIssue(key, f"must be a location id such as {example} ({variable})", value)
        for key, value, example, variable in (
            ("edge", edge, "dublin", EDGE_VARIABLE),
            ("region", region, "ie1", REGION_VARIABLE),
        )
        if value and not _LOCATION.fullmatch(value)
    ]
    if issues:
        raise InvalidInputError("connection", issues)
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if not (host == "twilio.com" or host.endswith(".twilio.com")) or parts.port is not None:
        return base_url
    # product[.edge].region.twilio.com, read the way twilio-python reads it.
    pieces = host.split(".")
    known_edge = pieces[1] if len(pieces) == 5 else None
    known_region = pieces[-3] if len(pieces) in (4, 5) else None
    edge = edge or known_edge or ""
    region = region or known_region or ("us1" if edge else "")
    if not edge:
        log.warning(
            "%s=%s without %s makes the host api.%s.twilio.com, a form Twilio retired on "
            "2026-04-28; set %s too (the edge nearest the region, e.g. dublin for ie1)",
            REGION_VARIABLE,
            region,
            EDGE_VARIABLE,
            region,
            EDGE_VARIABLE,
        )
    netloc = ".".join(part for part in (pieces[0], edge, region, *pieces[-2:]) if part)
    return parts._replace(netloc=netloc).geturl()


class Limiter(Protocol):
    """Anything that paces requests: ``await limiter.acquire()`` before each one."""

    async def acquire(self) -> None:
        """Wait until one more request may go out."""
        ...


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


@attrs.frozen
class _Secret:
    """A value that never shows itself by accident."""

    value: str = attrs.field(repr=lambda _: SECRET_MASK)

    def __str__(self) -> str:
        return SECRET_MASK


def _models_for(connector: ConnectorSpec) -> Mapping[str, Any]:
    # The generated classes describe the shipped manifest only; a replaced Twilio
    # manifest, or any other connector, gets generic records.
    if connector is default_connector():
        from .models import DEFINITIONS

        return DEFINITIONS
    return {}


class Connection(Generic[_Api]):
    """
    A connection to Twilio (or to anything a manifest describes).

    It owns one HTTP session and one rate limiter, so every call made through it,
    retries included, shares the connection's budget: by default the manifest's 1200
    calls in any 60-second window.

    Values not given come from the environment (``TWILIO_ACCOUNT_SID``,
    ``TWILIO_AUTH_TOKEN``, ``TWILIO_API_KEY``, ``TWILIO_API_SECRET``,
    ``TWILIO_BASE_URL``, ``TWILIO_EDGE``, ``TWILIO_REGION``). With an API key, the key and its secret authenticate and the
    Account SID still names the account in each URL.

    Use it as an async context manager::

        async with Connection() as conn:
            message = await conn.call("send_text_message", {"from": ..., "to": ..., "body": ...})

    For type checkers, ``Connection()`` is a ``Connection[Twilio]``: ``call`` and
    ``paginate`` return the generated model of each action id (``message`` above is a
    :class:`connector.models.Message`). A connection built on a manifest
    (``Connection(connector=spec)``) is a ``Connection[object]``, whose outputs are
    ``Any`` (generic :class:`~connector.Record` objects at run time), since another
    manifest may use the same action ids for other outputs.

    Args:
        account_sid: The Account SID (``AC...``).
        auth_token: The account's Auth Token.
        api_key: An API key SID (``SK...``), used instead of the Auth Token.
        api_secret: The API key's secret.
        base_url: The API root; ``https://api.twilio.com`` unless given. A base URL
            given (here, in *values* or as ``TWILIO_BASE_URL``) is used as it is: the
            edge and region never rewrite it.
        edge: Twilio's edge location (``dublin``, ``sydney``...); ``TWILIO_EDGE`` unless
            given. With it, the default API host becomes ``api.{edge}.{region}.twilio.com``.
        region: Twilio's processing region (``ie1``, ``au1``...); ``TWILIO_REGION``
            unless given; ``us1`` when only an edge is given.
        rate_limit: ``(calls, seconds)`` to replace the manifest's throttle, or ``False``
            to lift it (for tests and benchmarks).
        retry: The retry policy.
        transport: What sends the requests; an aiohttp session unless given.
        connector: The connector spec; the shipped Twilio manifest unless given.
        env: Where to look for values not given; ``os.environ`` unless given.
        limiter: A limiter to share instead of the connection's own, for example one
            that holds a budget across processes; *rate_limit* is then ignored.
        values: Connection values by the manifest's keys, for any connector (the
            keyword arguments above are a convenience for Twilio's and win over it).
        pacing: How sends are paced per sender (:class:`~connector.Pacing`); Twilio's
            connector paces by the default rates of each kind of sender unless given,
            ``False`` turns it off. A send's ``from`` may then be a list: a pool.
        ledger: A consent ledger (:mod:`connector.consent`): every send to a recipient
            it says opted out is skipped before any request, raising
            :class:`~connector.errors.OptedOutError`, and a 21610 answer is recorded in
            it (and raised as that error too). Settable later as :attr:`ledger`.

    Raises:
        InvalidInputError: A connection value is missing or malformed.
    """

    @overload
    def __init__(
        self: Connection[Twilio],
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        base_url: str | None = None,
        edge: str | None = None,
        region: str | None = None,
        rate_limit: tuple[int, float] | bool | None = None,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        connector: None = None,
        env: Mapping[str, str] | None = None,
        limiter: Limiter | None = None,
        values: Mapping[str, str] | None = None,
        pacing: Pacing | Literal[False] | None = None,
        ledger: ConsentLedger | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: Connection[object],
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        base_url: str | None = None,
        edge: str | None = None,
        region: str | None = None,
        rate_limit: tuple[int, float] | bool | None = None,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        connector: ConnectorSpec | None,
        env: Mapping[str, str] | None = None,
        limiter: Limiter | None = None,
        values: Mapping[str, str] | None = None,
        pacing: Pacing | Literal[False] | None = None,
        ledger: ConsentLedger | None = None,
    ) -> None: ...
    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        base_url: str | None = None,
        edge: str | None = None,
        region: str | None = None,
        rate_limit: tuple[int, float] | bool | None = None,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        connector: ConnectorSpec | None = None,
        env: Mapping[str, str] | None = None,
        limiter: Limiter | None = None,
        values: Mapping[str, str] | None = None,
        pacing: Pacing | Literal[False] | None = None,
        ledger: ConsentLedger | None = None,
    ) -> None:
        self.connector = connector or default_connector()
        self.pacing = Pacing() if pacing is None and self.connector.id == "twilio" else pacing
        self._pacer: Pacer | None = None
        self._server_date: str | None = None
        keywords = {
            "account_sid": account_sid,
            "auth_token": auth_token,
            "api_key": api_key,
            "api_secret": api_secret,
            "base_url": base_url,
        }
        given: dict[str, str | None] = {
            **(values or {}),
            **{k: v for k, v in keywords.items() if v is not None},
        }
        source = os.environ if env is None else env
        values = self._connection_values(given, source)
        # An explicit base URL (a local emulator, a proxy) is never rewritten.
        self.base_url: str = values.pop("base_url", "") or regional_base_url(
            self.connector.base_url,
            edge=edge if edge is not None else source.get(EDGE_VARIABLE),
            region=region if region is not None else source.get(REGION_VARIABLE),
        )
        self._values = values
        self._authorization = self._basic_auth(values)
        self.rate_limit = self._choose_limit(rate_limit)
        self.retry = retry or RetryPolicy()
        self._transport: Transport = transport or AiohttpTransport()
        self._shared_limiter = limiter
        self._limiter: Limiter | None = None
        self._state = _State.UNOPENED
        self._compiled: dict[str, CompiledAction] = {}
        self._models = _models_for(self.connector)
        self._link_patterns: dict[str, re.Pattern[str]] = {}
        self._static_paths: dict[str, str] = {}
        #: The consent ledger sends are checked against, if any.
        self.ledger = ledger
        self._parties: dict[str, tuple[str | None, str | None, str | None]] = {}

    def __repr__(self) -> str:
        return (
            f"<Connection {self.connector.id} base_url={self.base_url!r} "
            f"account_sid={SECRET_MASK!r} state={self._state.name.lower()}>"
        )

    # -- construction -------------------------------------------------------------

    def _connection_values(
        self, given: Mapping[str, str | None], env: Mapping[str, str]
    ) -> dict[str, str]:
        values: dict[str, str] = {}
        issues: list[InputIssue] = []
        specs = {p.key: p for p in self.connector.connection}
        for key, value in given.items():
            if value is not None and key not in specs:
                issues.append(
                    InputIssue(key, f"the {self.connector.id} connector has no such value")
                )
        for spec in self.connector.connection:
            value = given.get(spec.key)
            if value is None and spec.env:
                value = env.get(spec.env) or None
            if value is None:
                continue
            shown = SECRET_MASK if spec.secret else value
            if spec.pattern and not re.fullmatch(spec.pattern, value):
                issues.append(InputIssue(spec.key, f"must match {spec.pattern}", shown))
            elif spec.format == "uri" and not _is_base_url(value):
                issues.append(InputIssue(spec.key, "must be an http(s) URL with no path", shown))
            values[spec.key] = value.rstrip("/") if spec.format == "uri" else value
        for spec in self.connector.connection:
            if spec.key in self.connector.required_connection_keys and spec.key not in values:
                hint = f" (or set {spec.env})" if spec.env else ""
                issues.append(InputIssue(spec.key, f"is required{hint}"))
        pairs = self.connector.auth_pairs
        if pairs and not any(u in values and p in values for u, p in pairs):
            needs = " or ".join(f"{u} and {p}" for u, p in pairs)
            issues.append(InputIssue("credentials", f"give {needs}"))
        if issues:
            raise InvalidInputError("connection", issues)
        return values

    def _basic_auth(self, values: Mapping[str, str]) -> _Secret | None:
        for username, password in self.connector.auth_pairs:
            if username in values and password in values:
                raw = f"{values[username]}:{values[password]}".encode()
                return _Secret("Basic " + base64.b64encode(raw).decode("ascii"))
        return None

    def _choose_limit(
        self, rate_limit: tuple[int, float] | bool | None
    ) -> tuple[int, float] | None:
        if rate_limit is False:
            return None
        if rate_limit is None or rate_limit is True:
            throttle = self.connector.throttle
            return (throttle.calls, throttle.period) if throttle else None
        calls, period = rate_limit
        return (int(calls), float(period))

    def holds_secret(self, value: str) -> bool:
        """Whether *value* is one of this connection's secret values (compared, never shown)."""
        secret = {p.key for p in self.connector.connection if p.secret}
        return any(
            hmac.compare_digest(value.encode(), held.encode())
            for key, held in self._values.items()
            if key in secret and held
        )

    @property
    def credential_keys(self) -> tuple[str, str] | None:
        """The connection values that authenticate (the first complete auth pair)."""
        for username, password in self.connector.auth_pairs:
            if username in self._values and password in self._values:
                return (username, password)
        return None

    @property
    def account_sid(self) -> str | None:
        """The Account SID the connection works on."""
        return self._values.get("account_sid")

    @property
    def pacer(self) -> Pacer | None:
        """The open connection's sender pacing (its queues, for progress), if it paces."""
        return self._pacer

    @property
    def server_time(self) -> float | None:
        """
        Twilio's clock (seconds since 1970, whole) as of the last answer to a read: its
        ``Date`` header, or ``None`` before one came (or when the server sends none).
        Unlike this machine's clock it is on the timeline of the messages' dates.
        """
        if self._server_date is None:
            return None
        try:
            return email.utils.parsedate_to_datetime(self._server_date).timestamp()
        except (TypeError, ValueError):
            return None

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("a Connection can be opened only once")
        self._state = _State.OPENED
        if self._shared_limiter is not None:
            self._limiter = self._shared_limiter
        elif self.rate_limit is not None:
            self._limiter = sliding_window_limiter(*self.rate_limit)
        if self.pacing:
            self._pacer = Pacer(self.pacing)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session. The connection cannot be used afterwards."""
        if self._state is not _State.CLOSED:
            self._state = _State.CLOSED
            await self._transport.aclose()

    def _check_open(self) -> None:
        if self._state is not _State.OPENED:
            raise RuntimeError(
                "open the Connection first: `async with Connection(...) as conn:`"
                if self._state is _State.UNOPENED
                else "this Connection is closed"
            )

    # -- actions --------------------------------------------------------------------

    def action(self, action_id: str) -> ActionSpec:
        """Return the spec of an action (``send_text_message`` or ``twilio/send_text_message``)."""
        return self._compile(action_id).spec

    def _compile(self, action_id: str) -> CompiledAction:
        compiled = self._compiled.get(action_id)
        if compiled is not None:
            return compiled
        spec = self.connector.action(action_id)
        compiled = self._compiled[action_id] = compile_action(spec)
        return compiled

    async def _call(self, action_id: str, inputs: Mapping[str, Any] | None = None) -> Any:
        """
        Run one action and return its typed output.

        Args:
            action_id: The action (``send_text_message`` or ``twilio/send_text_message``).
            inputs: The inputs by key. Strings are coerced to the declared types. For an
                action that pages, its next-link field (``@odata.nextLink`` for
                ``list_messages_v2``) may be given back to fetch the next page.

        Returns:
            A generated model (``connector.models.Message`` ...), a
            :class:`~connector.Record` for third-party manifests, or ``None`` for actions
            without a body (``delete_message``). Type checkers see the model on a
            ``Connection[Twilio]`` and ``Any`` on other connections.

        Raises:
            InvalidInputError: Bad inputs; nothing was sent and no rate budget was used.
            TwilioAPIError: Twilio answered with an error (a subclass per status).
            TransportError: No usable answer.
            MessageMayHaveBeenSentError: A send failed after Twilio may have acted on it.
            OptedOutError: With a consent :attr:`ledger`: the recipient opted out of the
                sender, so nothing was sent; or Twilio answered 21610 (now recorded).
            UnsafeLinkError: A media action's URL is not one to give credentials to.
            NoReplyError: A reply action (``wait_for_reply``) with ``on_timeout: fail``
                got no reply in time.
        """
        self._check_open()
        action = self._compile(action_id)
        return await self._run(action, inputs or {}, action.validate)

    async def call_validated(
        self, action_id: str, inputs: Mapping[str, Any], *, as_data: bool = False
    ) -> Any:
        """
        Run one action whose inputs were already validated with its own validator
        (``connector._validation.compile_action(spec).validate``, or
        ``connector._pacing.validate_pool`` for a pool of senders), as an executor does
        that journals the clean inputs before it sends: :meth:`call` would validate
        them again, which costs as much as the rest of a send's own work.

        Args:
            action_id: The action.
            inputs: Its validated inputs (canonical keys, coerced values).
            as_data: Return the output's JSON form, what its ``to_json_data()`` gives,
                made straight from Twilio's answer without the typed model (for
                executors that keep plain data).

        Returns:
            As :meth:`call`; and it raises as :meth:`call` does, but for bad inputs.
        """
        self._check_open()
        return await self._run(self._compile(action_id), inputs, dict, as_data=as_data)

    async def _run(
        self,
        action: CompiledAction,
        inputs: Mapping[str, Any],
        validate: Callable[[Mapping[str, Any]], dict[str, Any]],
        *,
        as_data: bool = False,
    ) -> Any:
        spec = action.spec
        if spec.deprecated:
            successor = f"; use {spec.superseded_by}" if spec.superseded_by else ""
            warnings.warn(f"{spec.id} is deprecated{successor}", DeprecationWarning, stacklevel=3)
        # An opted-out recipient is skipped before pacing: it never waits for a queue.
        admit = (
            functools.partial(self._check_consent, action)
            if spec.sends_message and self.ledger is not None
            else None
        )
        if self._pacer is not None and spec.sends_message:
            exchange = functools.partial(self._exchange, action, as_data=as_data)
            return await self._pacer.send(spec, inputs, validate, exchange, admit=admit)
        clean = validate(inputs)
        if spec.kind == "media":
            media = await self._download(
                spec,
                clean["url"],
                to=clean.get("path"),
                max_bytes=clean.get("max_bytes") or DEFAULT_MAX_BYTES,
                policy=MediaPolicy(),
            )
            return self._output(spec, media.to_wire(), as_data=as_data)
        if spec.kind == "reply":
            # Alone, a wait polls for its one person; workflows wait for many at once
            # (connector.workflow), with one list per look for the whole step.
            reply = await wait_for_one(self, spec, clean, clock=LoopClock())
            return self._output(spec, reply, as_data=as_data)
        if admit is not None:
            await admit(clean)
        return await self._exchange(action, clean, as_data=as_data)

    async def _paginate(
        self,
        action_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        max_items: int | None = None,
    ) -> AsyncIterator[Any]:
        """
        Iterate over the items of every page of a paging action, following next links.

        Args:
            action_id: An action with paging (``list_messages_v2``, ``list_message_media``).
            inputs: Its inputs.
            max_items: Stop after this many items (no further page is fetched).
        """
        paging = self.action(action_id).paging
        if paging is None:
            raise InvalidInputError(action_id, [InputIssue("action", "this action does not page")])
        current = dict(inputs or {})
        seen = 0
        while max_items is None or seen < max_items:
            page = await self._call(action_id, current)
            for item in _convert.field_value(page, paging.items):
                yield item
                seen += 1
                if max_items is not None and seen >= max_items:
                    return
            link = _convert.field_value(page, paging.next_link)
            if not link:
                return
            current = {**current, paging.next_link: link}

    # The generated overloads type each shipped action id; the methods above run them.
    if TYPE_CHECKING:
        call = _signatures.call
        paginate = _signatures.paginate
    else:
        call = _call
        paginate = _paginate

    # -- media ----------------------------------------------------------------------

    async def download_media(
        self,
        url: str,
        *,
        to: str | Path | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        policy: MediaPolicy | None = None,
    ) -> MediaContent:
        """
        Fetch the content of a message's media file, without letting the credentials
        go anywhere but Twilio's API.

        The URL must be on ``api.twilio.com``, on ``api.{edge}.{region}.twilio.com``
        (over HTTPS), or on this connection's base URL, and name a media file of this
        account (``/2010-04-01/Accounts/AC.../Messages/MM.../Media/ME...``; a Media
        resource's ``.json`` uri, relative or not, is taken for its content). Any other
        URL is refused before a request is made. The credentials are sent to that URL
        only; the redirect Twilio answers with (to its media store) is followed
        without them, and never from HTTPS to HTTP. A 404 (the media still
        propagating), 429, 5xx or broken connection is tried again, as *policy* says.

        Args:
            url: The media URL: an incoming message's ``MediaUrl0``..., or a Media
                resource's uri.
            to: Write the content to this file, or into this directory (an existing
                one, or a path ending in a separator) under the media's file name; the
                file is created readable by its owner only.
            max_bytes: The largest content accepted; no more than that is read.
            policy: Tries and redirects (:class:`MediaPolicy` defaults).

        Returns:
            The content, its type and file name (and where it was written).

        Raises:
            UnsafeLinkError: The URL is not one of this account's media on Twilio's API
                or the base URL; nothing was requested.
            MediaTooLargeError: The content is over *max_bytes*.
            TwilioAPIError: Twilio (or the media store) refused it, also after the tries.
            TransportError: No usable answer, also after the tries.
        """
        self._check_open()
        spec = next((a for a in self.connector.actions.values() if a.kind == "media"), None)
        if spec is None:
            raise InvalidInputError(
                "download_media",
                [InputIssue("connector", f"{self.connector.id} has no media action")],
            )
        return await self._download(
            spec, url, to=to, max_bytes=max_bytes, policy=policy or MediaPolicy()
        )

    async def _download(
        self,
        spec: ActionSpec,
        url: str,
        *,
        to: str | Path | None,
        max_bytes: int,
        policy: MediaPolicy,
    ) -> MediaContent:
        first = self._media_url(spec, url)
        attempt = 0
        while True:
            attempt += 1
            error: Exception
            try:
                response, where = await self._media_answer(first, max_bytes, policy)
            except ConnectError as exc:
                error = exc
            except TransportError as exc:
                error = exc
            else:
                if response.status == 200:
                    break
                error = self._media_error(first, where, response)
                if response.status not in (404, 429) and response.status < 500:
                    raise error
            if attempt >= policy.attempts:
                raise error
            wait = policy.wait(attempt)
            log.debug("media %s: %s; try %d in %.2fs", first, error, attempt + 1, wait)
            await asyncio.sleep(wait)
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise MediaTooLargeError(first, limit=max_bytes, size=int(declared))
        if len(response.body) > max_bytes:
            raise MediaTooLargeError(first, limit=max_bytes)
        content_type = response.headers.get("content-type") or "application/octet-stream"
        name = filename_for(response.headers.get("content-disposition"), first, content_type)
        path = None
        if to is not None:
            path = await asyncio.to_thread(save, to, name, response.body)
        return MediaContent(first, response.body, content_type, name, path)

    def _media_url(self, spec: ActionSpec, url: str) -> str:
        """The media URL to request with credentials, or UnsafeLinkError."""
        text = url.strip()
        parts = urlsplit(text)
        base = urlsplit(self.base_url)
        if not parts.scheme and not parts.netloc and text.startswith("/"):
            parts = parts._replace(scheme=base.scheme, netloc=base.netloc)
        ours = (parts.scheme.lower(), parts.netloc.lower()) == (base.scheme, base.netloc.lower())
        twilio = (
            parts.scheme.lower() == "https"
            and is_twilio_api_host(parts.hostname)
            and parts.port in (None, 443)
        )
        if not (ours or twilio) or parts.username is not None or parts.password is not None:
            raise UnsafeLinkError(
                spec.id,
                [
                    InputIssue(
                        "url",
                        "is not on Twilio's API (api.twilio.com, api.EDGE.REGION.twilio.com) "
                        "or this connection's base URL; not fetched, no credentials sent",
                        url,
                    )
                ],
            )
        path = parts.path.removesuffix(".json")
        pattern = self._link_patterns.get(spec.id)
        if pattern is None:
            pattern = self._link_patterns[spec.id] = _path_pattern(spec.path, self._values)
        if not pattern.fullmatch(path):
            raise UnsafeLinkError(
                spec.id,
                [InputIssue("url", "is not a media file of this account; not fetched", url)],
            )
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))

    async def _media_answer(
        self, first: str, max_bytes: int, policy: MediaPolicy
    ) -> tuple[HttpResponse, str]:
        """The answer at the end of the redirects from *first*, and where it came from."""
        headers = {"Accept": "*/*"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization.value
        if self._limiter is not None:
            await self._limiter.acquire()
        response = await self._transport.send(
            HttpRequest("GET", first, None, headers, max_body=max_bytes)
        )
        current = first
        for _ in range(policy.max_redirects):
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location:
                break
            target = urljoin(current, location)
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https") or (
                scheme == "http" and urlsplit(current).scheme.lower() == "https"
            ):
                raise UnsafeLinkError(
                    "download_media",
                    [InputIssue("url", f"redirects to a {scheme}: URL; not followed", first)],
                )
            current = target
            # The media store gets no credentials: not ours to give, whoever it is.
            response = await self._transport.send(
                HttpRequest("GET", target, None, {"Accept": "*/*"}, max_body=max_bytes)
            )
        else:
            if response.status in REDIRECT_STATUSES:
                raise ReadError(f"{first}: too many redirects", method="GET", url=first)
        return response, current

    def _media_error(self, first: str, where: str, response: HttpResponse) -> TwilioAPIError:
        if where == first:
            error = self._api_error(HttpRequest("GET", first), response)
            if isinstance(error, AuthenticationError):
                host = urlsplit(first).netloc
                error.args = (
                    f"{error} (the credentials of {urlsplit(self.base_url).netloc} were "
                    f"refused by {host}: media of another region needs that region's "
                    "credentials)",
                )
            return error
        # The media store's URL may carry a signature in its query: not repeated.
        shown = urlunsplit(urlsplit(where)._replace(query="", fragment=""))
        return error_from_response(response.status, None, method="GET", url=shown)

    # -- consent --------------------------------------------------------------------

    def _party_keys(self, action: CompiledAction) -> tuple[str | None, str | None, str | None]:
        """The keys of a send's From, To and MessagingServiceSid, found by their wire names."""
        keys = self._parties.get(action.spec.id)
        if keys is None:
            by_wire = {p.wire_name: p.key for p in action.spec.parameters if p.location == "form"}
            keys = self._parties[action.spec.id] = (
                by_wire.get("From"),
                by_wire.get("To"),
                by_wire.get("MessagingServiceSid"),
            )
        return keys

    def _send_parties(
        self, action: CompiledAction, clean: Mapping[str, Any]
    ) -> tuple[str | None, str | None, str | None]:
        """A send's (From, To, MessagingServiceSid) values."""
        return tuple(  # type: ignore[return-value]
            str(clean[key]) if key is not None and clean.get(key) else None
            for key in self._party_keys(action)
        )

    async def _check_consent(self, action: CompiledAction, clean: Mapping[str, Any]) -> None:
        assert self.ledger is not None
        sender_key = self._party_keys(action)[0]
        pool = clean.get(sender_key) if sender_key is not None else None
        if sender_key is not None and isinstance(pool, list):
            # A pool stands for one campaign, as a Messaging Service's senders do: a
            # recipient who opted out of any of its senders gets none of its messages.
            for sender in pool:
                await self._check_consent(action, {**clean, sender_key: sender})
            return
        sender, recipient, service = self._send_parties(action, clean)
        if recipient is None:
            return
        reason = await self.ledger.opted_out(sender, recipient, service=service)
        if reason is not None:
            log.info("%s to %s skipped: %s", action.spec.id, recipient, reason)
            raise OptedOutError(action.spec.id, reason, sender=sender, recipient=recipient)

    async def _unsubscribed(
        self, action: CompiledAction, clean: Mapping[str, Any], cause: TwilioAPIError
    ) -> OptedOutError:
        """Record a 21610 answer in the ledger; the error that reports the send skipped."""
        assert self.ledger is not None
        sender, recipient, service = self._send_parties(action, clean)
        scope = sender or service
        reason = f"Twilio refused the send with 21610 ({cause.message})"
        if recipient is not None and scope is not None:
            await self.ledger.record(scope, recipient, "opted_out", "21610")
            reason += f"; {recipient} is now opted out of {scope} in the consent ledger"
        return OptedOutError(
            action.spec.id, reason, sender=sender, recipient=recipient or "", code=21610
        )

    # -- the executor ---------------------------------------------------------------

    def _build_request(self, action: CompiledAction, clean: dict[str, Any]) -> HttpRequest:
        spec = action.spec
        headers = {}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization.value
        link = clean.get(action.link_key) if action.link_key else None
        if link is not None:
            return HttpRequest(spec.method, self._checked_link(action, link), None, headers)
        path_values, query, form = action.encode(clean)
        if path_values:
            path = spec.path.format_map(_PathValues(path_values, self._values))
        else:
            path = self._static_paths.get(spec.id) or self._static_paths.setdefault(
                spec.id, spec.path.format_map(self._values)
            )
        url = self.base_url + path
        if query:
            url += "?" + _urlencode(query)
        body = None
        if form:
            body = _urlencode(form).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return HttpRequest(spec.method, url, body, headers)

    def _checked_link(self, action: CompiledAction, link: str) -> str:
        """Resolve a next-page link, refusing any that leaves this connection's API."""
        parts = urlsplit(link)
        base = urlsplit(self.base_url)
        foreign = (parts.scheme, parts.netloc) != (base.scheme, base.netloc)
        if (parts.scheme or parts.netloc) and foreign:
            issue = InputIssue(
                action.link_key or "link", "points at another host; not followed", link
            )
            raise UnsafeLinkError(action.spec.id, [issue])
        pattern = self._link_patterns.get(action.spec.id)
        if pattern is None:
            pattern = self._link_patterns[action.spec.id] = _path_pattern(
                action.spec.path, self._values
            )
        if not pattern.fullmatch(parts.path):
            raise UnsafeLinkError(
                action.spec.id,
                [
                    InputIssue(
                        action.link_key or "link",
                        "is not a page of this action for this account; not followed",
                        link,
                    )
                ],
            )
        url = self.base_url + parts.path
        if parts.query:
            url += "?" + parts.query
        return url

    async def _send(
        self, action: CompiledAction, request: HttpRequest, clean: Mapping[str, Any]
    ) -> HttpResponse:
        spec = action.spec
        policy = self.retry
        loop = asyncio.get_running_loop()
        # Time spent on attempts and backoff; waiting for the limiter does not count, so a
        # deep queue of calls sharing the connection does not exhaust anyone's deadline.
        # The deadline is checked between attempts: an attempt in flight is bounded by
        # the transport's own timeouts, since a timer per request cost more than the
        # rest of the call's overhead together.
        spent = 0.0
        attempt = 0
        # A limiter that can anchor its window at answers is told when each one came.
        admit = getattr(self._limiter, "admit", None)
        while True:
            attempt += 1
            admission = None
            if admit is not None:
                admission = await admit()
            elif self._limiter is not None:
                await self._limiter.acquire()
            started = loop.time()
            retry_after: float | None = None
            try:
                response = await self._transport.send(request)
            except ConnectError as exc:
                error: Exception = exc
            except TransportError as exc:
                error = exc
                if not spec.idempotent:
                    raise self._unknown_outcome(action, clean, exc) from exc
            else:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s %s -> %s", request.method, request.url, response.status)
                if response.status < 400:
                    if spec.idempotent:  # reads only: a send pays nothing for it
                        self._server_date = response.headers.get("date", self._server_date)
                    return response
                api_error = self._api_error(request, response)
                error = api_error
                if response.status >= 500 and not spec.idempotent:
                    raise self._unknown_outcome(action, clean, api_error) from api_error
                if response.status != 429 and response.status < 500:
                    raise api_error
                # A server that says when to come back (429, or 503 in maintenance) is heeded.
                retry_after = _retry_after(response.headers.get("retry-after"))
            finally:
                if admission is not None:
                    await admission.done()
            spent += loop.time() - started
            wait = policy.wait(attempt, retry_after)
            if attempt >= policy.attempts or spent + wait > policy.deadline:
                raise error
            log.debug(
                "%s %s failed (%s); retry %d in %.2fs",
                request.method,
                request.url,
                error,
                attempt,
                wait,
            )
            await asyncio.sleep(wait)
            spent += wait

    async def _exchange(
        self, action: CompiledAction, clean: dict[str, Any], *, as_data: bool = False
    ) -> Any:
        request = self._build_request(action, clean)
        try:
            response = await self._send(action, request, clean)
        except TwilioAPIError as exc:
            if exc.code == 21610 and action.spec.sends_message and self.ledger is not None:
                raise await self._unsubscribed(action, clean, exc) from exc
            raise
        return self._parse(action.spec, response, as_data=as_data)

    def _unknown_outcome(
        self, action: CompiledAction, clean: Mapping[str, Any], cause: Exception
    ) -> Exception:
        if action.spec.sends_message:
            return MessageMayHaveBeenSentError(action.spec.id, action.masked(clean), cause)
        return cause

    def _api_error(self, request: HttpRequest, response: HttpResponse) -> TwilioAPIError:
        try:
            body = orjson.loads(response.body) if response.body else None
        except orjson.JSONDecodeError:
            body = None
        return error_from_response(
            response.status,
            body if isinstance(body, Mapping) else None,
            method=request.method,
            url=request.url,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    def _parse(self, spec: ActionSpec, response: HttpResponse, *, as_data: bool = False) -> Any:
        if spec.returns is None:
            return None
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError as exc:
            raise ReadError(
                f"the answer to {spec.id} is not JSON (HTTP {response.status})", method=spec.method
            ) from exc
        if type(data) is not dict:
            raise ReadError(f"the answer to {spec.id} is not a JSON object", method=spec.method)
        if spec.response:
            data = {**data, **{out: data.get(wire) for out, wire in spec.response.items()}}
        return self._output(spec, data, as_data=as_data)

    def _output(self, spec: ActionSpec, data: dict[str, Any], *, as_data: bool = False) -> Any:
        assert spec.returns is not None
        model = self._models.get(spec.returns)
        if model is not None:
            return model.data_from_wire(data) if as_data else model.from_wire(data)
        record = _convert.build_record(self.connector.definitions, spec.returns, data)
        return _convert.to_json_data(record) if as_data else record


class _PathValues(dict[str, str]):
    """Path placeholders: path parameters first, then connection values."""

    def __init__(self, params: Mapping[str, str], connection: Mapping[str, str]) -> None:
        super().__init__(params)
        self._connection = connection

    def __missing__(self, key: str) -> str:
        return self._connection[key]


@functools.cache
def _quote_key(key: str) -> str:
    return quote_plus(key)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
# Each byte as application/x-www-form-urlencoded writes it (quote_plus's rules): a table
# lookup per byte is several times faster than quote_plus for a message body.
_FORM_BYTES: Final = tuple(
    chr(b)
    if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_.-~")
    else "+"
    if b == 0x20
    else f"%{b:02X}"
    for b in range(256)
)


def _quote_value(value: str) -> str:
    # Phone numbers are most values: skip the general quoter for "+digits".
    if value[:1] == "+" and value[1:].isdigit() and value.isascii():
        return "%2B" + value[1:]
    if _UNRESERVED.fullmatch(value):
        return value
    table = _FORM_BYTES
    return "".join([table[b] for b in value.encode("utf-8", "surrogatepass")])


def _urlencode(pairs: list[tuple[str, str]]) -> str:
    """``urllib.parse.urlencode`` for str pairs, faster on the hot path."""
    return "&".join([f"{_quote_key(k)}={_quote_value(v)}" for k, v in pairs])


def _path_pattern(template: str, connection: Mapping[str, str]) -> re.Pattern[str]:
    out = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        out += re.escape(literal)
        if field is not None:
            out += re.escape(connection[field]) if field in connection else "[^/]+"
    return re.compile(out)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _is_base_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.path in ("", "/")
