# SPDX-License-Identifier: MIT
"""
Sender pacing: send no faster than Twilio's senders can drain their queues.

Twilio sends each sender's messages at that sender's rate, counted in SMS segments (a
US long code 1 segment/s, a short code 100), and queues what comes faster. The queue of
a ``From`` number holds about 10 hours' worth; past that a send is refused (21611), and
a Messaging Service's messages fail later (30001). The connector therefore keeps, per
sender, an estimate of when its queue at Twilio will have drained, and lets a send go
only when the queue, that message included, stays within a *horizon* (an hour unless
told, and half the message's ``ValidityPeriod`` when it has one): it is a GCRA-like
schedule per sender, in seconds of work, with the horizon as its tolerance. Delivery is
no slower for it (Twilio could not send faster), but nothing overflows, a cancelled run
leaves at most a horizon's worth queued, and a broadcast's expected finish is known.

A send may name a **pool** of senders (``from`` given as a list): each message then goes
to the sender that would finish it first, and a recipient stays on the sender it had
before (sticky sender, as Messaging Services do). Estimates live in this process
(:class:`LocalSenderBook`) or in Redis (``connector.redis_limiter.RedisSenderBook``),
shared by every process of the account, like the call limit.

A third, account-wide limit sits on top: Twilio refuses more than 2000 messages per
second for an account and its subaccounts (63017), which a connection holds with a
limiter of its own.

Everything here is a value (:class:`SenderProfile`, :class:`Pacing`) except the
:class:`Pacer`, which a connection creates when it opens.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import attrs

from ._clock import Clock, LoopClock
from ._manifest import ActionSpec
from ._ratelimit import SlidingWindowLimiter
from ._retry import Reaction, throughput_error
from ._twilio import (
    DEFAULT_SENDER_RATES,
    QUEUE_LIMIT,
    SenderKind,
    sender_kind,
    throughput_units,
)
from .errors import InputIssue, InvalidInputError, SkippedError, TwilioAPIError


__all__ = [
    "ACCOUNT_RATE",
    "DEFAULT_HORIZON",
    "Booking",
    "LocalSenderBook",
    "Pacer",
    "Pacing",
    "PacingStatus",
    "SenderBook",
    "SenderProfile",
    "SenderStatus",
    "parse_duration",
    "parse_rate",
    "validate_pool",
]

#: Seconds of work a sender's queue at Twilio may hold before the connector waits:
#: an hour, well under Twilio's 10 hours and under the default validity period (10 h).
DEFAULT_HORIZON: Final = 3600.0
#: Messages per second for an account with its subaccounts (63017).
ACCOUNT_RATE: Final = 2000.0
#: The share of a message's ``ValidityPeriod`` it may spend queued at Twilio.
VALIDITY_SHARE: Final = 0.5
#: How many times one send is refused for throughput (21611, 63017) before the error
#: is raised after all.
MAX_REFUSALS: Final = 5
#: First and longest hold after a 63017, in seconds (doubling in between).
BACKOFF: Final = (1.0, 30.0)

_UNITS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(
    r"(?P<n>[0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*(?:(?:segments?|messages?|msgs?|mps)\s*)?"
    r"(?:/\s*(?P<unit>[a-z]+?)s?)?"
)
_DURATION = re.compile(r"(?P<n>[0-9]*\.?[0-9]+)\s*(?P<unit>[a-z]*?)s?")


def parse_rate(value: str | float) -> float:
    """
    Read a rate: ``1/s``, ``100/s``, ``1 segment/s``, ``30/min``, ``3600/h``, or a number
    (per second).

    Returns:
        Units per second.

    Raises:
        ValueError: Not a rate, or not above 0.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a rate such as 1/s, not {value!r}")
    if isinstance(value, int | float):
        rate = float(value)
    else:
        match = _RATE.fullmatch(value.strip().lower())
        unit = _UNITS.get(match["unit"] or "") if match else None
        if match is None or unit is None:
            raise ValueError(f"expected a rate such as 1/s, 100/s or 30/min, not {value!r}")
        rate = float(match["n"]) / unit
    if not 0 < rate < math.inf:
        raise ValueError(f"a rate must be above 0, not {value!r}")
    return rate


def parse_duration(value: str | float) -> float:
    """
    Read a duration: ``90``, ``90s``, ``15m``, ``1.5h``, ``10min``.

    Returns:
        Seconds.

    Raises:
        ValueError: Not a duration, or not above 0.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration such as 30m, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value.strip().lower())
        unit = _UNITS.get(match["unit"]) if match else None
        if match is None or unit is None:
            raise ValueError(f"expected a duration such as 90s, 30m or 1h, not {value!r}")
        seconds = float(match["n"]) * unit
    if not 0 < seconds < math.inf:
        raise ValueError(f"a duration must be above 0, not {value!r}")
    return seconds


def _optional_rate(value: str | float | None) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none")):
        return None
    return parse_rate(value)


@attrs.frozen
class SenderProfile:
    """
    A sender, and how fast Twilio sends its messages.

    Attributes:
        sender: As written in ``From`` (``+15005550006``, ``12345``,
            ``whatsapp:+1...``) or a Messaging Service SID (``MG...``).
        rate: Segments per second (messages, for WhatsApp); ``None``: not paced.
        kind: What kind of sender it is (``long_code``, ``toll_free``, ``short_code``,
            ``messaging_service``, ``whatsapp``, ``alphanumeric``).
        horizon: The most seconds of work its queue at Twilio may hold; the pacing's
            unless given.
    """

    sender: str
    rate: float | None
    kind: SenderKind
    horizon: float | None = None

    @classmethod
    def parse(
        cls,
        sender: str,
        spec: str | float | Mapping[str, Any] | None = None,
        *,
        kind_rates: Mapping[SenderKind, float | None] = DEFAULT_SENDER_RATES,
    ) -> SenderProfile:
        """
        Build a profile from its declaration.

        Args:
            sender: The sender.
            spec: A rate (``"1/s"``, ``100``), or a mapping with ``rate``, ``kind`` and
                ``horizon`` (each optional), or ``None`` for the kind's default rate.
            kind_rates: The default rate of each kind.

        Raises:
            ValueError: A value is malformed or a key unknown.
        """
        sender = sender.strip()
        if not sender:
            raise ValueError("a sender cannot be empty")
        detail: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {"rate": spec}
        unknown = set(detail) - {"rate", "kind", "horizon"}
        if unknown:
            raise ValueError(f"{sender}: unknown keys {sorted(unknown)} (rate, kind, horizon)")
        kind = detail.get("kind") or sender_kind(sender)
        if kind not in tuple(DEFAULT_SENDER_RATES):  # compared, not hashed: a list is no kind
            raise ValueError(f"{sender}: unknown kind {kind!r} ({', '.join(DEFAULT_SENDER_RATES)})")
        rate = detail.get("rate")
        horizon = detail.get("horizon")
        try:
            return cls(
                sender,
                kind_rates.get(kind) if rate is None else _optional_rate(rate),
                kind,
                None if horizon is None else parse_duration(horizon),
            )
        except ValueError as exc:
            raise ValueError(f"{sender}: {exc}") from None


def _profiles(value: Any) -> dict[str, SenderProfile]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out = {}
        for sender, spec in value.items():
            profile = (
                spec if isinstance(spec, SenderProfile) else SenderProfile.parse(str(sender), spec)
            )
            out[profile.sender] = profile
        return out
    return {profile.sender: profile for profile in value}


def _kind_rates(value: Mapping[str, Any] | None) -> dict[SenderKind, float | None]:
    rates = dict(DEFAULT_SENDER_RATES)
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of sender kinds to rates, not {value!r}")
    for kind, rate in (value or {}).items():
        if kind not in rates:
            raise ValueError(f"unknown sender kind {kind!r} ({', '.join(rates)})")
        rates[kind] = _optional_rate(rate)
    return rates


def _account_rate(value: str | float | None) -> float | None:
    return _optional_rate(value)


class SenderBook(Protocol):
    """
    Where the estimates of senders' queues are kept: this process, or Redis.

    Times are seconds since 1970 on the book's clock; *seconds* are of work at the
    sender's rate.
    """

    async def book(
        self,
        senders: Sequence[str],
        seconds: Sequence[float],
        horizons: Sequence[float],
        recipient: str | None,
    ) -> Booking:
        """
        Choose one of *senders* for a message and add its work to that sender's queue.

        The choice is the sender *recipient* was sent from before, when it is one of
        them; otherwise the one whose queue, with this message, would drain first.
        """
        ...

    async def refund(self, booking: Booking) -> None:
        """Take a booking's work back out of its sender's queue (it was not queued)."""
        ...

    async def saturate(self, sender: str, seconds: float) -> None:
        """Twilio says the queue is full: it holds at least *seconds* of work from now."""
        ...

    async def remember(self, recipient: str, sender: str) -> None:
        """Keep *recipient* on *sender* for the next messages (sticky sender)."""
        ...


@attrs.frozen
class Booking:
    """
    A message's place in a sender's queue.

    Attributes:
        sender: The sender chosen.
        seconds: The work it added to the sender's queue.
        wait: Seconds until it may be sent (0: at once).
        drains_at: When the sender's queue, this message included, will have drained.
    """

    sender: str
    seconds: float
    wait: float
    drains_at: float


def _earliest(
    senders: Sequence[str], seconds: Sequence[float], drains: Sequence[float], now: float
) -> int:
    best, finish = 0, math.inf
    for index, (work, drain) in enumerate(zip(seconds, drains, strict=True)):
        candidate = max(drain, now) + work
        if candidate < finish:
            best, finish = index, candidate
    return best


class LocalSenderBook:
    """
    Senders' queue estimates in this process.

    Args:
        clock: The time they run on; the event loop's unless given.
        sticky_size: How many recipients' senders are remembered (the oldest go first).
    """

    def __init__(self, clock: Clock | None = None, *, sticky_size: int = 100_000) -> None:
        self.clock: Clock = clock or LoopClock()
        self._drains: dict[str, float] = {}
        self._sticky: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._sticky_size = sticky_size

    def drains_at(self, sender: str) -> float:
        """When *sender*'s queue will have drained (in the past: it is empty)."""
        return self._drains.get(sender, -math.inf)

    async def book(
        self,
        senders: Sequence[str],
        seconds: Sequence[float],
        horizons: Sequence[float],
        recipient: str | None,
    ) -> Booking:
        """See :meth:`SenderBook.book`."""
        now = self.clock.now()
        drains = [self._drains.get(sender, now) for sender in senders]
        sticky = self._sticky.get(recipient) if recipient is not None else None
        index = (
            senders.index(sticky) if sticky in senders else _earliest(senders, seconds, drains, now)
        )
        finish = max(drains[index], now) + seconds[index]
        self._drains[senders[index]] = finish
        return Booking(
            senders[index], seconds[index], max(0.0, finish - horizons[index] - now), finish
        )

    async def refund(self, booking: Booking) -> None:
        """See :meth:`SenderBook.refund`."""
        drain = self._drains.get(booking.sender)
        if drain is not None:
            self._drains[booking.sender] = max(self.clock.now(), drain - booking.seconds)

    async def saturate(self, sender: str, seconds: float) -> None:
        """See :meth:`SenderBook.saturate`."""
        full = self.clock.now() + seconds
        self._drains[sender] = max(self._drains.get(sender, full), full)

    async def remember(self, recipient: str, sender: str) -> None:
        """See :meth:`SenderBook.remember`."""
        self._sticky[recipient] = sender
        self._sticky.move_to_end(recipient)
        if len(self._sticky) > self._sticky_size:
            self._sticky.popitem(last=False)


@attrs.frozen(kw_only=True)
class Pacing:
    """
    How a connection paces its sends: the senders' rates, and how much queue at Twilio
    it lets build up.

    Hosts hand it over as a mapping (a workflow's ``connection.senders``, an Airflow
    connection's extra, a Prefect block's field), read by :meth:`from_config`::

        {"senders": {"+15005550006": "1/s", "12345": "100/s",
                     "+18005550100": {"rate": "3/s", "kind": "toll_free"},
                     "MG...": "30/s", "whatsapp:+15005550006": "80/s"},
         "horizon": "1h"}

    Attributes:
        senders: Declared senders by address; a string or number is a rate
            (``"1/s"``), a mapping has ``rate``, ``kind`` and ``horizon``.
        horizon: The most seconds of work any sender's queue at Twilio may hold before
            a send waits (``"1h"``, ``"15m"``, seconds); never more than half a
            message's ``ValidityPeriod``.
        queue_limit: What Twilio's queue holds at most, in seconds of work (10 hours):
            after a 21611 the sender's queue is taken to be that full.
        account_rate: Messages per second for the account (63017 above 2000), or
            ``None`` for no account limit.
        kind_rates: The rate of an undeclared sender, by kind (see
            ``connector._twilio.DEFAULT_SENDER_RATES``).
        sticky: Whether a recipient stays on the pool's sender it had before.
        clock: The time pacing runs on; the event loop's unless given (an emulator's
            scaled clock, in tests).
        book: Where the queue estimates live; this process unless given (Redis, to share
            them across processes).

    Raises:
        ValueError: A value is malformed, or the horizon is not under the queue limit.
    """

    senders: Mapping[str, SenderProfile] = attrs.field(factory=dict, converter=_profiles)
    horizon: float = attrs.field(default=DEFAULT_HORIZON, converter=parse_duration)
    queue_limit: float = attrs.field(default=QUEUE_LIMIT, converter=parse_duration)
    account_rate: float | None = attrs.field(default=ACCOUNT_RATE, converter=_account_rate)
    kind_rates: Mapping[SenderKind, float | None] = attrs.field(
        factory=lambda: dict(DEFAULT_SENDER_RATES), converter=_kind_rates
    )
    sticky: bool = True
    clock: Clock | None = attrs.field(default=None, eq=False, repr=False)
    book: SenderBook | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.horizon < self.queue_limit:
            raise ValueError(
                f"the horizon ({self.horizon:g} s) must be under Twilio's queue limit "
                f"({self.queue_limit:g} s)"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Pacing:
        """
        Read a host's pacing settings (the shape above; every key optional).

        Raises:
            ValueError: An unknown key or a malformed value.
        """
        config = dict(config or {})
        known = {"senders", "horizon", "queue_limit", "account_rate", "kind_rates", "sticky"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(
                f"unknown pacing settings {sorted(unknown)} ({', '.join(sorted(known))})"
            )
        if "sticky" in config and not isinstance(config["sticky"], bool):
            raise ValueError("sticky must be true or false")
        senders: Any = config.pop("senders", None) or {}
        if not isinstance(senders, Mapping):
            raise ValueError(f"senders must map each sender to its rate, not {senders!r}")
        fields = attrs.fields_dict(cls)
        for key, value in config.items():
            converter: Any = fields[key].converter
            if converter is not None:  # each value alone first, so an error names its key
                try:
                    converter(value)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        base = cls(**config)
        kind_rates = base.kind_rates
        return attrs.evolve(
            base,
            senders={
                str(sender): spec
                if isinstance(spec, SenderProfile)
                else SenderProfile.parse(str(sender), spec, kind_rates=kind_rates)
                for sender, spec in senders.items()
            },
        )

    def profile(self, sender: str) -> SenderProfile:
        """The declared profile of *sender*, or one with its kind's default rate."""
        declared = self.senders.get(sender)
        if declared is not None:
            return declared
        kind = sender_kind(sender)
        return SenderProfile(sender, self.kind_rates.get(kind), kind)


@attrs.frozen
class SenderStatus:
    """
    One sender's queue as the connector estimates it.

    Attributes:
        sender: The sender.
        rate: Its rate (units per second).
        queued: Seconds of work in its queue at Twilio, messages waiting to be sent
            included.
    """

    sender: str
    rate: float
    queued: float


@attrs.frozen
class PacingStatus:
    """
    What the pacing knows of a connection's sends, for progress displays.

    Attributes:
        now: The time of the estimate (seconds since 1970, on the pacing's clock).
        senders: The paced senders used so far.
        messages: Messages sent (or waiting to be) through paced senders.
        units: Their segments (throughput units).
    """

    now: float
    senders: tuple[SenderStatus, ...]
    messages: int
    units: int

    @property
    def rate(self) -> float:
        """The senders' combined rate, in units per second."""
        return sum(s.rate for s in self.senders)

    @property
    def queued_units(self) -> float:
        """Units still to leave Twilio's queues (or this connection)."""
        return sum(s.queued * s.rate for s in self.senders)

    def expected_finish(self, remaining: int = 0) -> float | None:
        """
        When the last message should leave Twilio's queues: what is queued, and
        *remaining* messages more at the average segments per message so far, over the
        senders' combined rate.

        Returns:
            Seconds since 1970 on the pacing's clock; ``None`` before any paced send.
        """
        if not self.senders or not self.messages:
            return None
        still = self.queued_units + remaining * self.units / self.messages
        return self.now + still / self.rate


@attrs.frozen
class _Fields:
    """The inputs of a sending action that pacing reads, by their wire names."""

    sender: str | None
    service: str | None
    to: str | None
    body: str | None
    media: str | None
    validity: str | None
    schedule: tuple[str, ...]

    @classmethod
    def of(cls, spec: ActionSpec) -> _Fields | None:
        keys = {p.wire_name: p.key for p in spec.parameters if p.location == "form"}
        if "From" not in keys and "MessagingServiceSid" not in keys:
            return None
        return cls(
            keys.get("From"),
            keys.get("MessagingServiceSid"),
            keys.get("To"),
            keys.get("Body"),
            keys.get("MediaUrl"),
            keys.get("ValidityPeriod"),
            tuple(keys[k] for k in ("ScheduleType", "SendAt") if k in keys),
        )


Validate = Callable[[Mapping[str, Any]], dict[str, Any]]


def _given_pool(spec: ActionSpec, inputs: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """The sender parameter's key, the name it is given by (``from`` or ``from_``), its value."""
    for param in spec.parameters:
        if param.wire_name == "From" and param.location == "form":
            for name in param.names:
                if name in inputs:
                    return param.key, name, inputs[name]
            return None
    return None


def validate_pool(
    spec: ActionSpec, validate: Validate, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """
    Validate a send's inputs whose ``from`` may be a pool (a list of senders).

    Each sender of the pool is checked as ``from``; the result keeps the pool as a
    list, for the connection to choose from when it sends.

    Raises:
        InvalidInputError: As *validate* does; an empty pool is a missing ``from``.
    """
    given = _given_pool(spec, inputs)
    if given is None or not isinstance(given[2], list | tuple):
        return validate(inputs)
    key, name, pool = given
    senders = [s.strip() if isinstance(s, str) else s for s in pool]
    rest = {k: v for k, v in inputs.items() if k != name}
    if not senders:
        return validate(rest)
    clean: dict[str, Any] = {}
    issues: list[InputIssue] = []
    for sender in dict.fromkeys(senders):
        try:
            clean = validate({**rest, name: sender})
        except InvalidInputError as exc:
            issues += [issue for issue in exc.issues if issue not in issues]
    if issues:
        raise InvalidInputError(spec.id, issues)
    clean[key] = list(dict.fromkeys(senders))
    return clean


class Pacer:
    """
    A connection's sender pacing while it is open: chooses senders, waits for their
    queues, and holds the account's rate.

    Args:
        pacing: The settings.
    """

    def __init__(self, pacing: Pacing) -> None:
        self.pacing = pacing
        self.clock: Clock = pacing.clock or LoopClock()
        self.book: SenderBook = pacing.book or LocalSenderBook(self.clock)
        self._account = (
            SlidingWindowLimiter(math.ceil(pacing.account_rate), 1.0, clock=self.clock)
            if pacing.account_rate is not None
            else None
        )
        self._fields: dict[str, _Fields | None] = {}
        self._profiles: dict[str, SenderProfile] = {}
        self._hold_until = -math.inf
        self._refused = 0
        self._seen: dict[str, tuple[float, float]] = {}
        self._messages = 0
        self._units = 0

    def status(self) -> PacingStatus:
        """The queues as this connection estimates them now (for progress displays)."""
        now = self.clock.now()
        return PacingStatus(
            now,
            tuple(
                SenderStatus(sender, rate, max(0.0, drains_at - now))
                for sender, (rate, drains_at) in self._seen.items()
            ),
            self._messages,
            self._units,
        )

    def _profile(self, sender: str) -> SenderProfile:
        try:
            return self._profiles[sender]
        except KeyError:
            profile = self._profiles[sender] = self.pacing.profile(sender)
            return profile

    def _fields_of(self, spec: ActionSpec) -> _Fields | None:
        try:
            return self._fields[spec.id]
        except KeyError:
            fields = self._fields[spec.id] = _Fields.of(spec)
            return fields

    async def send(
        self,
        spec: ActionSpec,
        inputs: Mapping[str, Any],
        validate: Validate,
        exchange: Callable[[dict[str, Any]], Awaitable[Any]],
        *,
        admit: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> Any:
        """
        Send one message when its sender's queue has room, choosing the sender from a
        pool, and answer Twilio's throughput errors by the table of
        ``connector._retry.THROUGHPUT_ERRORS``.

        Args:
            spec: The sending action.
            inputs: Its inputs (``from`` may be a list: a pool).
            validate: The action's validator.
            exchange: Sends validated inputs and returns the parsed answer.
            admit: Checks validated inputs (the pool whole) before any waiting; it
                raises to refuse the send (a consent ledger's opt-out).
        """
        fields = self._fields_of(spec)
        if fields is None:
            clean = validate(inputs)
            if admit is not None:
                await admit(clean)
            return await exchange(clean)
        given = _given_pool(spec, inputs)
        if given is not None and isinstance(given[2], list | tuple):
            clean = validate_pool(spec, validate, inputs)
            if admit is not None:
                await admit(clean)
            senders: list[str] = [str(s) for s in clean[fields.sender]]  # type: ignore[index]
        else:
            clean = validate(inputs)
            if admit is not None:
                await admit(clean)
            sender = clean.get(fields.sender) if fields.sender else None
            if not sender and fields.service:
                sender = clean.get(fields.service)
            if not sender:
                return await exchange(clean)
            senders = [str(sender)]
        for key in fields.schedule:
            if clean.get(key) is not None:
                return await exchange(clean)  # scheduled: Twilio queues it when it is due
        profiles = [self._profile(sender) for sender in senders]
        unpaced = len(profiles) == 1 and profiles[0].rate is None
        if unpaced and self._account is None:
            return await exchange(clean)
        body = str(clean.get(fields.body) or "") if fields.body else ""
        media = bool(fields.media and clean.get(fields.media))
        units = [throughput_units(body, p.kind, media=media) for p in profiles]
        seconds = [u / p.rate if p.rate else 0.0 for u, p in zip(units, profiles, strict=True)]
        validity = clean.get(fields.validity) if fields.validity else None
        horizons = [
            min(p.horizon or self.pacing.horizon, validity * VALIDITY_SHARE)
            if validity
            else p.horizon or self.pacing.horizon
            for p in profiles
        ]
        recipient = (
            str(clean[fields.to])
            if len(senders) > 1 and self.pacing.sticky and fields.to and clean.get(fields.to)
            else None
        )
        refusals = 0
        while True:
            booking = (
                Booking(senders[0], 0.0, 0.0, -math.inf)
                if unpaced
                else await self.book.book(senders, seconds, horizons, recipient)
            )
            try:
                if booking.wait > 0:
                    await self.clock.sleep(booking.wait)
                await self._account_turn()
            except BaseException:
                # Cancelled before sending: the message will not join the queue.
                if not unpaced:
                    await self.book.refund(booking)
                raise
            chosen = clean
            if len(senders) > 1 and fields.sender is not None:
                chosen = {**clean, fields.sender: booking.sender}
            try:
                result = await exchange(chosen)
            except SkippedError:
                # Refused for consent (a 21610 answer): nothing joined the queue.
                if not unpaced:
                    await self.book.refund(booking)
                raise
            except TwilioAPIError as exc:
                if exc.status < 500 and not unpaced:
                    await self.book.refund(booking)  # refused: nothing was queued
                entry = throughput_error(exc.code)
                if entry is None or not entry.on_create or refusals >= MAX_REFUSALS:
                    raise
                refusals += 1
                if entry.reaction is Reaction.WAIT_FOR_QUEUE and not unpaced:
                    await self.book.saturate(booking.sender, self.pacing.queue_limit)
                elif entry.reaction is Reaction.BACK_OFF:
                    self._back_off()
                else:
                    raise
                continue
            self._refused = 0
            index = senders.index(booking.sender)
            self._record(profiles[index], booking, units[index])
            if recipient is not None:
                await self.book.remember(recipient, booking.sender)
            return result

    def _record(self, profile: SenderProfile, booking: Booking, units: int) -> None:
        if profile.rate is None:
            return
        previous = self._seen.get(profile.sender)
        drains_at = booking.drains_at if previous is None else max(previous[1], booking.drains_at)
        self._seen[profile.sender] = (profile.rate, drains_at)
        self._messages += 1
        self._units += units

    def _back_off(self) -> None:
        # Every send of the connection holds, doubling while 63017s keep coming.
        self._refused += 1
        first, longest = BACKOFF
        hold = min(longest, first * 2 ** (self._refused - 1))
        self._hold_until = max(self._hold_until, self.clock.now() + hold)

    async def _account_turn(self) -> None:
        wait = self._hold_until - self.clock.now()
        if wait > 0:
            await self.clock.sleep(wait)
        if self._account is not None:
            await self._account.acquire()
