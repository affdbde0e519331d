# SPDX-License-Identifier: MIT
"""
Twilio's own rules that both the connector and the emulator follow, in one place:

- request signing (``X-Twilio-Signature``): Twilio signs a webhook by concatenating the
  full URL it requested with every form parameter (names sorted by code point,
  ``name + value`` with no separator), then taking ``base64(HMAC-SHA1(auth_token, that
  string))``. JSON-bodied webhooks instead carry ``bodySHA256=<hex sha256 of the body>``
  in the URL and sign the URL alone. Validation accepts the URL with or without the
  scheme's default port, as twilio-python does, because Twilio's own signing is
  inconsistent about it;
- SMS segment counting by GSM-7 / UCS-2 rules, as Twilio's segment calculator does it;
- senders: their kinds, the rate each kind sends at when nothing else is known, and
  what one message costs against that rate (``docs/throughput.md``);
- the default opt-out, opt-in and help keywords.

This module imports nothing else of the package, so the emulator may use it without
depending on the connector's core (``docs/architecture.md``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit


__all__ = [
    "DEFAULT_SENDER_RATES",
    "HELP_WORDS",
    "QUEUE_LIMIT",
    "START_WORDS",
    "STOP_WORDS",
    "Encoding",
    "SenderKind",
    "compute_body_hash",
    "compute_signature",
    "count_segments",
    "encoding_for",
    "keyword_of",
    "sender_kind",
    "split_segments",
    "throughput_units",
    "ucs2_forcing",
    "validate_body_hash",
    "validate_json_signature",
    "validate_signature",
]


# -- signing ------------------------------------------------------------------------

Params = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]

_ALGORITHMS = {
    "HMAC-SHA1": hashlib.sha1,
    "HMAC_SHA1": hashlib.sha1,
    "HMAC-SHA256": hashlib.sha256,
    "HMAC_SHA256": hashlib.sha256,
}
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _grouped(params: Params | None) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    if params is None:
        return grouped
    if isinstance(params, Mapping):
        for name, value in params.items():
            values = [value] if isinstance(value, str) else list(value)
            grouped.setdefault(name, set()).update(values)
    else:
        for name, value in params:
            grouped.setdefault(name, set()).add(value)
    return grouped


def compute_signature(
    url: str,
    params: Params | None,
    auth_token: str,
    *,
    algorithm: str = "HMAC-SHA1",
) -> str:
    """
    Compute the ``X-Twilio-Signature`` value for a webhook request.

    Args:
        url: The full URL requested, including scheme, host, path and query string.
        params: The form parameters posted, as a mapping (values may be lists for
            repeated keys) or a sequence of ``(name, value)`` pairs. ``None`` or empty
            for JSON-bodied requests.
        auth_token: The account's auth token (or webhook shared key).
        algorithm: ``"HMAC-SHA1"`` (Twilio's default) or ``"HMAC-SHA256"``.

    Returns:
        The base64-encoded HMAC digest.

    Raises:
        ValueError: If *algorithm* is not supported.
    """
    try:
        digestmod = _ALGORITHMS[algorithm.upper()]
    except KeyError:
        raise ValueError(f"unsupported signature algorithm {algorithm!r}") from None
    # Like twilio-python, repeated names contribute each distinct value once, sorted.
    grouped = _grouped(params)
    parts = [url]
    for name in sorted(grouped):
        parts.extend(name + value for value in sorted(grouped[name]))
    mac = hmac.new(auth_token.encode(), "".join(parts).encode(), digestmod)
    return base64.b64encode(mac.digest()).decode("ascii")


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or parts.hostname is None:
        return [url]
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    host = parts.netloc.rpartition("@")[2]
    bare_host = host.rsplit(":", 1)[0] if parts.port is not None else host
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{bare_host}:{default}"))
    without_port = urlunsplit(parts._replace(netloc=f"{prefix}{bare_host}"))
    if parts.port is None:
        return [url, with_port]
    if parts.port == default:
        return [url, without_port]
    return [url]


def validate_signature(
    url: str,
    params: Params | None,
    signature: str,
    auth_token: str,
    *,
    algorithm: str = "HMAC-SHA1",
) -> bool:
    """
    Check an ``X-Twilio-Signature`` header against the request it came with.

    Args:
        url: The full URL the request was sent to.
        params: The form parameters of the request.
        signature: The ``X-Twilio-Signature`` header value.
        auth_token: The account's auth token (or webhook shared key).
        algorithm: ``"HMAC-SHA1"`` or ``"HMAC-SHA256"``.

    Returns:
        ``True`` if the signature matches the URL as given, or the URL with its
        default port added or removed.
    """
    expected = signature.encode()
    return any(
        hmac.compare_digest(
            compute_signature(candidate, params, auth_token, algorithm=algorithm).encode(),
            expected,
        )
        for candidate in _url_variants(url)
    )


def compute_body_hash(body: bytes | str) -> str:
    """
    Hash a JSON webhook body the way Twilio does for the ``bodySHA256`` parameter.

    Args:
        body: The raw request body.

    Returns:
        The lowercase hex SHA-256 digest.
    """
    raw = body.encode() if isinstance(body, str) else body
    return hashlib.sha256(raw).hexdigest()


def validate_body_hash(body: bytes | str, expected_hash: str) -> bool:
    """
    Check a raw body against the ``bodySHA256`` value from the URL.

    Args:
        body: The raw request body.
        expected_hash: The hex digest taken from the URL.

    Returns:
        ``True`` if they match.
    """
    return hmac.compare_digest(compute_body_hash(body), expected_hash.lower())


def validate_json_signature(
    url: str,
    body: bytes | str,
    signature: str,
    auth_token: str,
    *,
    algorithm: str = "HMAC-SHA1",
) -> bool:
    """
    Validate a JSON-bodied webhook: the URL signature and its ``bodySHA256`` hash.

    Args:
        url: The full URL the request was sent to, with its ``bodySHA256`` parameter.
        body: The raw request body.
        signature: The ``X-Twilio-Signature`` header value.
        auth_token: The account's auth token (or webhook shared key).
        algorithm: ``"HMAC-SHA1"`` or ``"HMAC-SHA256"``.

    Returns:
        ``True`` only if the URL carries ``bodySHA256``, the hash matches the body, and
        the signature over the URL (with no parameters) is valid.
    """
    hashes = parse_qs(urlsplit(url).query).get("bodySHA256")
    if not hashes or not validate_body_hash(body, hashes[0]):
        return False
    return validate_signature(url, None, signature, auth_token, algorithm=algorithm)


# -- segments -----------------------------------------------------------------------

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 basic character set as Unicode (SEGCALC maps 127 characters; the escape
# code 0x1B itself is not a character a user can type).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension characters are sent as ESC + code, so each takes two septets.
_GSM_EXTENDED = frozenset("\x0c^{}\\[~]|€")

_GSM_SINGLE, _GSM_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67


def encoding_for(body: str) -> Encoding:
    """
    Pick the most compact encoding that can carry *body*.

    Args:
        body: The message text.

    Returns:
        ``"GSM-7"`` when every character is in the GSM-7 basic or extension set,
        otherwise ``"UCS-2"``.
    """
    for char in body:
        if char not in _GSM_BASIC and char not in _GSM_EXTENDED:
            return "UCS-2"
    return "GSM-7"


def _units(body: str, encoding: Encoding) -> list[int]:
    # Size of each character in encoding units; a character is never split across
    # segments, so a multi-unit character that does not fit moves to the next one.
    if encoding == "GSM-7":
        return [2 if char in _GSM_EXTENDED else 1 for char in body]
    return [2 if ord(char) > 0xFFFF else 1 for char in body]


def count_segments(body: str) -> int:
    """
    Count the SMS segments Twilio would bill for *body*.

    Args:
        body: The message text. An empty body counts as one segment.

    Returns:
        The number of segments. One if the text fits in 160 septets (GSM-7) or 70 UTF-16
        code units (UCS-2), otherwise parts of at most 153 septets or 67 code units.
    """
    if len(body) <= _UCS2_SINGLE // 2:
        return 1  # at most two units a character: fits one segment in either encoding
    encoding = encoding_for(body)
    units = _units(body, encoding)
    single, multi = (
        (_GSM_SINGLE, _GSM_MULTI) if encoding == "GSM-7" else (_UCS2_SINGLE, _UCS2_MULTI)
    )
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def ucs2_forcing(body: str) -> list[str]:
    """
    List the characters that keep *body* out of GSM-7, each once, in order of appearance.

    Args:
        body: The message text.

    Returns:
        The characters outside the GSM-7 basic and extension sets (empty for GSM-7 text).
    """
    seen: dict[str, None] = {}
    for char in body:
        if char not in _GSM_BASIC and char not in _GSM_EXTENDED:
            seen.setdefault(char, None)
    return list(seen)


def split_segments(body: str) -> list[str]:
    """
    Split *body* into the parts a handset receives, by the rules of :func:`count_segments`.

    Args:
        body: The message text.

    Returns:
        One string per segment; ``[""]`` for an empty body.
    """
    encoding = encoding_for(body)
    units = _units(body, encoding)
    single, multi = (
        (_GSM_SINGLE, _GSM_MULTI) if encoding == "GSM-7" else (_UCS2_SINGLE, _UCS2_MULTI)
    )
    if sum(units) <= single:
        return [body]
    parts: list[str] = []
    start, used = 0, 0
    for index, size in enumerate(units):
        if used + size > multi:
            parts.append(body[start:index])
            start, used = index, 0
        used += size
    parts.append(body[start:])
    return parts


# -- senders ------------------------------------------------------------------------

SenderKind = Literal[
    "long_code", "toll_free", "short_code", "messaging_service", "whatsapp", "alphanumeric"
]

#: Segments per second (messages, for WhatsApp) a sender of each kind sends when nothing
#: else is known; ``None``: unknown, so not paced unless declared. Twilio's pages on
#: 21611 and 30001 give a US long code 1 segment/s and a short code "over 100". The
#: toll-free 3/s (AWS End User Messaging's table for the same US carriers) and
#: WhatsApp's 80 messages/s (Meta's default for a Cloud API number) are not from a
#: Twilio page: unverified. A Messaging Service sends at the sum of its senders' rates,
#: which only its owner knows.
DEFAULT_SENDER_RATES: Final[Mapping[SenderKind, float | None]] = {
    "long_code": 1.0,
    "short_code": 100.0,
    "toll_free": 3.0,
    "whatsapp": 80.0,
    "messaging_service": None,
    "alphanumeric": None,
}

#: Seconds of work at a sender's rate that Twilio queues at most: "10 hours' worth"
#: (twilio.com/docs/api/errors/21611; older pages said 4). Past it, a send from that
#: number is refused with 21611; a Messaging Service's messages fail later with 30001.
QUEUE_LIMIT: Final = 36_000.0

_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
# US and Canadian toll-free area codes (NANP).
_TOLL_FREE = re.compile(r"\+1(800|833|844|855|866|877|888)[0-9]{7}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def sender_kind(sender: str) -> SenderKind:
    """
    Tell what kind of sender an address is.

    Args:
        sender: A ``From`` value (``+15005550006``, ``12345``, ``whatsapp:+1...``,
            an alphanumeric ID) or a Messaging Service SID (``MG...``).

    Returns:
        ``whatsapp``, ``messaging_service``, ``short_code`` (3 to 8 digits),
        ``toll_free`` (+1 800, 833, 844, 855, 866, 877, 888), ``long_code`` (any other
        E.164 number) or ``alphanumeric``.
    """
    channel, sep, rest = sender.partition(":")
    if sep:
        if channel.lower() == "whatsapp":
            return "whatsapp"
        sender = rest
    if _SERVICE_SID.fullmatch(sender):
        return "messaging_service"
    if _SHORT_CODE.fullmatch(sender):
        return "short_code"
    if _TOLL_FREE.fullmatch(sender):
        return "toll_free"
    if _E164.fullmatch(sender):
        return "long_code"
    return "alphanumeric"


def throughput_units(body: str, kind: SenderKind, *, media: bool = False) -> int:
    """
    What one message costs against its sender's rate.

    Args:
        body: The text.
        kind: The sender's kind.
        media: Whether it carries media (an MMS).

    Returns:
        1 for a WhatsApp message or an MMS (one unit of throughput each), otherwise the
        SMS segments of *body* (:func:`count_segments`).
    """
    if media or kind == "whatsapp":
        return 1
    return count_segments(body)


# -- keywords -----------------------------------------------------------------------

STOP_WORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS: Final = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS: Final = frozenset({"HELP", "INFO"})


def keyword_of(body: str) -> str | None:
    """
    Classify an inbound body as an opt-out keyword, the way Twilio matches them.

    Twilio matches the whole body, trimmed and case-insensitively, so "Stop please" is not
    an opt-out.

    Args:
        body: The inbound text.

    Returns:
        ``"stop"``, ``"start"``, ``"help"`` or ``None``.
    """
    word = body.strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None
