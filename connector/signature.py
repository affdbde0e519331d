# SPDX-License-Identifier: MIT
"""
Twilio webhook signatures (``X-Twilio-Signature``): compute and validate.

Twilio signs a webhook by concatenating the full URL it requested with every form
parameter (names sorted by code point, ``name + value`` with no separator), then taking
``base64(HMAC-SHA1(auth_token, that string))``. JSON-bodied webhooks instead carry
``bodySHA256=<hex sha256 of the body>`` in the URL and sign the URL alone. Validation
accepts the URL with or without the scheme's default port, as twilio-python does,
because Twilio's own signing is inconsistent about it.

The functions live in ``connector._twilio`` with Twilio's other rules, shared with
the emulator; this module is their public home.
"""

from __future__ import annotations

from ._twilio import (
    compute_body_hash,
    compute_signature,
    validate_body_hash,
    validate_json_signature,
    validate_signature,
)


__all__ = [
    "compute_body_hash",
    "compute_signature",
    "validate_body_hash",
    "validate_json_signature",
    "validate_signature",
]
