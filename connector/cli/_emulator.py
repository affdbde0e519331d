# SPDX-License-Identifier: MIT
"""
``emulator`` and ``inbound``: serve the local Twilio-compatible emulator, and post an
incoming message to a running one.

``emulator`` exits 0 when stopped (Ctrl-C or SIGTERM), 2 on invalid options or a port
that cannot be bound (said in one line, not a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import TYPE_CHECKING

from ._common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    bind_failure,
    complain,
    rate_limit,
    run_async,
    sender_rate,
)


if TYPE_CHECKING:
    from ..emulator import EmulatorConfig

__all__ = ["DEFAULT_EMULATOR_URL", "config_from_args", "register"]

#: Where ``inbound`` posts when no emulator is named or recorded (``emulator``'s default).
DEFAULT_EMULATOR_URL = "http://127.0.0.1:8999"


def _throttle(value: str) -> tuple[int, float] | None:
    # The emulator's own throttle: "0" turns it off too.
    return None if value.strip() == "0" else rate_limit(value) or None  # type: ignore[return-value]


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value!r}")
    return number


def _incoming(value: str) -> tuple[str, str]:
    number, sep, url = value.partition("=")
    if not sep or not number or not url:
        raise argparse.ArgumentTypeError(f"expected NUMBER=URL, got {value!r}")
    return number, url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``emulator`` and ``inbound``."""
    parser = sub.add_parser(
        "emulator",
        help="run the local Twilio-compatible emulator",
        description="Serve a local Twilio-compatible Messages API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback)")
    parser.add_argument("--port", type=int, default=8999, help="port; 0 picks a free one")
    parser.add_argument("--db", help="SQLite file to persist messages (default: memory)")
    parser.add_argument("--account-sid", help="AC... SID (generated when omitted)")
    parser.add_argument("--auth-token", help="auth token (generated when omitted)")
    parser.add_argument("--api-key", help="optional SK... API key SID")
    parser.add_argument("--api-secret", help="the API key's secret")
    parser.add_argument(
        "--throttle", type=_throttle, default=(1200, 60.0), help="CALLS/SECONDS or 'off'"
    )
    parser.add_argument(
        "--delivery-delay", type=float, default=1.0, help="seconds from queued to delivered"
    )
    parser.add_argument(
        "--number", action="append", default=[], help="extra owned sender number (repeat)"
    )
    parser.add_argument(
        "--incoming",
        action="append",
        type=_incoming,
        default=[],
        metavar="NUMBER=URL",
        help="owned number and the webhook its inbound messages go to (repeat)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="extra Host header the inbox and admin routes accept (repeat; '*' for any)",
    )
    parser.add_argument(
        "--no-opt-out-keywords",
        dest="opt_out_keywords",
        action="store_false",
        help="do not treat inbound STOP/START/HELP as opt-out keywords",
    )
    parser.add_argument(
        "--no-record",
        dest="record",
        action="store_false",
        help="do not record this emulator as the one that commands without credentials "
        "use (by default it is, until it stops)",
    )
    parser.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        metavar="X",
        help="run the emulator's clock X times faster than real time (e.g. 60: an hour a minute)",
    )
    queues = parser.add_argument_group(
        "sender queues (Twilio's per-sender throughput; see docs/throughput.md)"
    )
    queues.add_argument(
        "--sender",
        action="append",
        type=sender_rate,
        default=[],
        metavar="SENDER=RATE",
        help="a sender's rate in segments, e.g. +15005550006=1/s or 12345=100/s (repeat); "
        "turns the queue model on",
    )
    queues.add_argument(
        "--queues",
        action="store_true",
        help="model sender queues with each kind's default rate (long code 1/s, short "
        "code 100/s, toll-free 3/s, WhatsApp 80/s)",
    )
    queues.add_argument(
        "--queue-limit",
        type=_positive,
        default=36000.0,
        metavar="SECONDS",
        help="seconds of work a queue holds before 21611 or 30001 (default 36000: 10 hours)",
    )
    queues.add_argument(
        "--account-mps",
        type=_positive,
        default=2000.0,
        metavar="N",
        help="messages per second the account may create before 63017 (default 2000)",
    )
    queues.add_argument(
        "--expiry-code",
        type=int,
        default=30036,
        metavar="CODE",
        help="error code of a message that waits past its ValidityPeriod (default 30036)",
    )
    faults = parser.add_argument_group("fault injection (deterministic per seed)")
    faults.add_argument("--fault-seed", type=int, default=0)
    faults.add_argument("--fault-error-rate", type=float, default=0.0)
    faults.add_argument("--fault-latency-rate", type=float, default=0.0)
    faults.add_argument("--fault-latency", type=float, default=0.0)
    faults.add_argument("--fault-drop-rate", type=float, default=0.0)
    parser.set_defaults(handler=_serve_command)

    parser = sub.add_parser(
        "inbound",
        help="inject an incoming message into a running emulator",
        description="Inject an incoming SMS/MMS into a running emulator.",
    )
    parser.add_argument(
        "--emulator-url",
        help="the emulator (default: the running one `twilio-connector emulator` recorded, "
        f"else {DEFAULT_EMULATOR_URL})",
    )
    parser.add_argument("--to", required=True, help="the account's number receiving it")
    parser.add_argument("--from", dest="from_", required=True, help="the sender")
    parser.add_argument("--body", default="")
    parser.add_argument("--media-url", action="append", default=[])
    parser.add_argument(
        "--media",
        action="append",
        default=[],
        metavar="FILE",
        help="a file sent with the message (an MMS; repeat); its webhook's MediaUrl "
        "serves these bytes",
    )
    parser.add_argument("--url", help="webhook to POST to instead of the configured one")
    parser.set_defaults(handler=_inbound)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """
    Turn parsed ``emulator`` options into a configuration.

    Args:
        args: The namespace from the ``emulator`` parser.

    Returns:
        The configuration, with credentials generated where none were given.
    """
    from ..emulator import Clock, EmulatorConfig, FaultConfig, QueueConfig

    generated = EmulatorConfig()
    queues = None
    if args.sender or args.queues:
        queues = QueueConfig(
            senders=dict(args.sender),
            queue_limit=args.queue_limit,
            account_mps=args.account_mps,
            expiry_code=args.expiry_code,
        )
    faulty = args.fault_error_rate or args.fault_latency_rate or args.fault_drop_rate
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        db_path=args.db,
        api_key=args.api_key,
        api_secret=args.api_secret,
        numbers=tuple(args.number),
        incoming=dict(args.incoming),
        throttle=args.throttle,
        delivery_delay=args.delivery_delay,
        faults=FaultConfig(
            seed=args.fault_seed,
            error_rate=args.fault_error_rate,
            latency_rate=args.fault_latency_rate,
            latency=args.fault_latency,
            drop_rate=args.fault_drop_rate,
        )
        if faulty
        else None,
        account_sid=args.account_sid or generated.account_sid,
        auth_token=args.auth_token or generated.auth_token,
        allowed_hosts=tuple(args.allow_host),
        opt_out_keywords=args.opt_out_keywords,
        queues=queues,
        clock=Clock(scale=args.time_scale),
    )


def _serve_command(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; print the base URL and the credentials first."""

    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as exc:
        complain("emulator", exc)
        return EXIT_INVALID
    try:
        run_async(_serve(config, record=args.record))
    except OSError as exc:
        line = bind_failure(exc, config.host, config.port)
        if line is None:
            raise
        complain("emulator", line)
        return EXIT_INVALID
    return EXIT_OK


async def _serve(config: EmulatorConfig, *, record: bool = True) -> None:
    import asyncio
    import signal

    from ..emulator import EmulatorServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(EmulatorServer(config))
        lines = [
            f"Twilio emulator listening on {server.base_url}",
            f"  TWILIO_ACCOUNT_SID={config.account_sid}",
            f"  TWILIO_AUTH_TOKEN={config.auth_token}",
        ]
        if config.api_key:
            lines.append(f"  TWILIO_API_KEY={config.api_key}")
        lines.append(f"  database: {config.db_path or 'in memory'}")
        if config.clock.scale != 1.0:
            lines.append(f"  time runs {config.clock.scale:g} times faster than real time")
        if config.queues is not None:
            declared = ", ".join(f"{s}={r:g}/s" for s, r in config.queues.senders.items())
            lines.append(f"  sender queues: {declared or 'default rates by kind'}")
        lines.append(f"  inbox: {server.base_url}/")
        if record:
            lines.append(_record(stack, server.base_url, config))
        print("\n".join(lines), flush=True)
        await stop.wait()


def _record(stack: contextlib.AsyncExitStack, base_url: str, config: EmulatorConfig) -> str:
    """Record where this emulator listens, until *stack* closes; say so in a line."""
    from .._local_emulator import recorded_emulator

    try:
        path = stack.enter_context(
            recorded_emulator(_reachable(base_url), config.account_sid, config.auth_token)
        )
    except OSError as exc:
        return f"  not recorded for other commands ({exc}); they start emulators of their own"
    return (
        f"  recorded in {path}: commands run without Twilio credentials use this emulator "
        "until it stops"
    )


def _reachable(base_url: str) -> str:
    """*base_url* with an address that connects: loopback for one bound to every interface."""
    for unspecified, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        base_url = base_url.replace(unspecified, loopback)
    return base_url


def _inbound(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.parse
    import urllib.request

    fields = [("To", args.to), ("From", args.from_), ("Body", args.body)]
    fields += [("MediaUrl", url) for url in args.media_url]
    if args.url:
        fields.append(("Url", args.url))
    data, content_type = urllib.parse.urlencode(fields).encode(), None
    if args.media:
        try:
            data, content_type = _multipart(fields, args.media)
        except OSError as exc:
            complain("inbound", exc)
            return EXIT_INVALID
    request = urllib.request.Request(
        _emulator_url(args.emulator_url).rstrip("/") + "/emulator/inbound",
        data=data,
        method="POST",
    )
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            message = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        complain("inbound", f"{exc.code} {exc.read().decode()}")
        return EXIT_FAILED
    except urllib.error.URLError as exc:
        complain("inbound", exc.reason)
        return EXIT_FAILED
    print(json.dumps(message, indent=2, ensure_ascii=False))
    return EXIT_OK


def _emulator_url(given: str | None) -> str:
    """The emulator ``inbound`` posts to: the given one, the running one, or the default."""
    if given:
        return given
    from .._local_emulator import running_emulator

    found = running_emulator()
    return found.base_url if found is not None else DEFAULT_EMULATOR_URL


def _multipart(fields: list[tuple[str, str]], files: list[str]) -> tuple[bytes, str]:
    """A multipart/form-data body: the fields, then each file as a ``Media`` part."""
    import mimetypes
    import secrets
    from pathlib import Path

    boundary = f"----twilio-connector-{secrets.token_hex(12)}"
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for file in files:
        path = Path(file)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        name = path.name.replace('"', "_")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="Media"; filename="{name}"'
            f"\r\nContent-Type: {kind}\r\n\r\n"
        )
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
