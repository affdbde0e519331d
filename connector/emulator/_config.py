# SPDX-License-Identifier: MIT
"""
Emulator configuration: credentials, owned numbers, webhooks, timing, limits and faults.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import attrs

from connector.emulator._clock import Clock
from connector.emulator._faults import FaultConfig
from connector.emulator._queues import QueueConfig


__all__ = ["EmulatorConfig"]

_ACCOUNT_SID_RE = r"^AC[0-9a-fA-F]{32}$"
_API_KEY_RE = r"^SK[0-9a-fA-F]{32}$"


def _new_account_sid() -> str:
    return "AC" + secrets.token_hex(16)


def _new_token() -> str:
    return secrets.token_hex(16)


def _mask(value: object) -> str:
    return "None" if value is None else "'***'"


def _throttle(value: tuple[int, float] | None) -> tuple[int, float] | None:
    if value is None:
        return None
    calls, seconds = value
    if int(calls) < 1 or float(seconds) <= 0:
        raise ValueError(f"throttle must be (calls >= 1, seconds > 0), got {value!r}")
    return (int(calls), float(seconds))


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """
    How an emulator instance behaves.

    Attributes:
        host: Interface to bind; loopback by default because the admin endpoints need
            no authentication.
        port: TCP port; 0 picks a free one.
        db_path: SQLite file (WAL mode); ``None`` keeps everything in memory.
        account_sid: The one account this emulator serves (generated when omitted).
        auth_token: Its auth token (generated when omitted; never shown in reprs).
        api_key: Optional ``SK...`` API key SID accepted as a Basic-auth username.
        api_secret: The API key's secret (never shown in reprs).
        numbers: Extra E.164 numbers the account owns and may send from.
        incoming: Webhook URL per owned number, for injected inbound messages.
        throttle: ``(calls, seconds)`` sliding window per account, or ``None`` for none.
        delivery_delay: Seconds from ``queued`` to the final status (0 = instant).
        faults: Deterministic fault injection, or ``None``.
        callback_timeout: Seconds to wait for a webhook receiver.
        callback_attempts: How many times a callback is tried before it counts failed.
        callback_backoff: First retry delay in seconds; doubles on each retry.
        clock: Time source; share a :class:`ManualClock` to control time in tests.
        allowed_hosts: Extra ``Host`` header values (``name`` or ``name:port``) the inbox
            and admin routes accept besides the loopback names; ``"*"`` accepts any
            (only for a deliberately exposed emulator). Guards against DNS rebinding.
        opt_out_keywords: Whether inbound STOP / START / HELP keywords change the
            handset's opt-out and get Twilio's automatic reply, as Twilio's default
            opt-out handling does.
        queues: Model Twilio's per-sender queues (rates in segments, 21611, 30001,
            expiry, 63017); ``None``, the default, sends every message at once.
    """

    host: str = "127.0.0.1"
    port: int = 0
    db_path: str | None = None
    account_sid: str = attrs.field(
        factory=_new_account_sid, validator=attrs.validators.matches_re(_ACCOUNT_SID_RE)
    )
    auth_token: str = attrs.field(factory=_new_token, repr=_mask)
    api_key: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.matches_re(_API_KEY_RE)),
    )
    api_secret: str | None = attrs.field(default=None, repr=_mask)
    numbers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    incoming: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    throttle: tuple[int, float] | None = attrs.field(default=(1200, 60.0), converter=_throttle)
    delivery_delay: float = 1.0
    faults: FaultConfig | None = None
    callback_timeout: float = 5.0
    callback_attempts: int = 5
    callback_backoff: float = 0.5
    clock: Clock = attrs.field(factory=Clock, eq=False, repr=False)
    allowed_hosts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    opt_out_keywords: bool = True
    queues: QueueConfig | None = None

    def __attrs_post_init__(self) -> None:
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("api_key and api_secret go together")
        if self.delivery_delay < 0:
            raise ValueError("delivery_delay must not be negative")
