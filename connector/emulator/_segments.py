# SPDX-License-Identifier: MIT
"""
SMS segment counting by GSM-7 / UCS-2 rules, as Twilio's segment calculator does it.
"""

from __future__ import annotations

from typing import Literal


__all__ = ["Encoding", "count_segments", "encoding_for", "split_segments", "ucs2_forcing"]

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
        The number of segments: one if the text fits in 160 septets (GSM-7) or 70 UTF-16
        code units (UCS-2), otherwise parts of at most 153 septets or 67 code units.
    """
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
