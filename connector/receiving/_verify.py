# SPDX-License-Identifier: MIT
"""
The signature policy for incoming webhooks, on top of :mod:`connector.signature`.

Every request must carry a valid ``X-Twilio-Signature``; there is no unsigned mode and
no bypass for any credential type (Twilio signs webhooks with the account's auth token
even when the REST API is used with an API key). The URL checked is the configured
public URL plus the request's path and query, so the listener can sit behind a proxy
or TLS terminator that changes the scheme, host or port Twilio used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

import attrs

from ..signature import validate_json_signature, validate_signature


__all__ = ["SignatureVerifier", "signature_algorithm"]

log = logging.getLogger("connector.receiving")

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
_ALGORITHMS = {"HMAC_SHA1": "HMAC-SHA1", "HMAC_SHA256": "HMAC-SHA256"}


def signature_algorithm(settings: str | None) -> str | None:
    """
    The algorithm an ``X-Twilio-Webhooks-Signature-Settings`` header asks for.

    Args:
        settings: The header (``key=...,algorithm=HMAC_SHA256``), or ``None``.

    Returns:
        ``"HMAC-SHA1"`` (also when there is no header or it names no algorithm),
        ``"HMAC-SHA256"``, or ``None`` for an algorithm this listener does not know.
    """
    if not settings:
        return "HMAC-SHA1"
    for part in settings.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "algorithm":
            return _ALGORITHMS.get(value.strip().upper().replace("-", "_"))
    return "HMAC-SHA1"


def _strip_slash(url: str) -> str:
    return url.rstrip("/")


@attrs.frozen
class SignatureVerifier:
    """
    Checks that a webhook request was signed by Twilio for this listener.

    Args:
        auth_token: The account's auth token (the signing key).
        public_url: The URL Twilio is configured to call, up to the listener's root
            (``https://hooks.example.com/twilio``); the request's path and query are
            appended to it.
        shared_key: A webhook shared key, also accepted as a signing key when set.

    Raises:
        ValueError: There is no key, or the public URL is not an http(s) URL.
    """

    auth_token: str = attrs.field(repr=False)
    public_url: str = attrs.field(converter=_strip_slash)
    shared_key: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.auth_token:
            raise ValueError("an auth token is required to verify webhook signatures")
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"the public URL must be http(s)://host[/path], got {self.public_url!r}"
            )

    def url_for(self, path_qs: str) -> str:
        """The URL Twilio signed for a request to *path_qs* (path and query)."""
        return self.public_url + path_qs

    def check(
        self,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes,
        params: Sequence[tuple[str, str]] | None,
    ) -> str | None:
        """
        Check one request's signature.

        Args:
            path_qs: The request's path and query string, as received.
            headers: The request's headers (case-insensitive mapping).
            body: The raw body (hashed for the ``bodySHA256`` variant).
            params: The form parameters; ``None`` when the body is not a form.

        Returns:
            ``None`` when the signature is valid, otherwise the reason it is refused.
        """
        signature = headers.get(SIGNATURE_HEADER)
        if not signature:
            return f"no {SIGNATURE_HEADER} header"
        algorithm = signature_algorithm(headers.get(SETTINGS_HEADER))
        if algorithm is None:
            return f"unsupported algorithm in {SETTINGS_HEADER}: {headers.get(SETTINGS_HEADER)!r}"
        url = self.url_for(path_qs)
        keys = [key for key in (self.shared_key, self.auth_token) if key]
        if "bodySHA256" in parse_qs(urlsplit(url).query):
            # JSON-bodied webhooks sign the URL (which carries the body's hash) alone.
            if any(
                validate_json_signature(url, body, signature, key, algorithm=algorithm)
                for key in keys
            ):
                return None
            return f"{algorithm} signature or bodySHA256 does not match the body for {url}"
        if params is None:
            return "the body is neither a form nor signed with bodySHA256"
        if any(
            validate_signature(url, params, signature, key, algorithm=algorithm) for key in keys
        ):
            return None
        return f"{algorithm} signature does not match {url} and the posted parameters"
