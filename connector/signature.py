# SPDX-License-Identifier: MIT
"""
Twilio webhook signatures (``X-Twilio-Signature``): compute and validate.

Twilio signs a webhook by concatenating the full URL it requested with every form
parameter (names sorted by code point, ``name + value`` with no separator), then taking
``base64(HMAC-SHA1(auth_token, that string))``. JSON-bodied webhooks instead carry
``bodySHA256=<hex sha256 of the body>`` in the URL and sign the URL alone. Validation
accepts the URL with or without the scheme's default port, as twilio-python does,
because Twilio's own signing is inconsistent about it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit


__all__ = [
    "compute_body_hash",
    "compute_signature",
    "validate_body_hash",
    "validate_json_signature",
    "validate_signature",
]

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
