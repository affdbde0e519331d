"""Segment counting, checked against Twilio's segment calculator (SEGCALC) examples."""

from __future__ import annotations

import pytest

from connector._twilio import encoding_for
from connector.emulator import count_segments


# Source: TwilioDevEd/message-segment-calculator @ a50230fd, tests/segments.test.js
# (as summarised in FACTS.md section 9).
def test_307_gsm_digits_make_three_segments() -> None:
    """307 GSM-7 digits need 153 + 153 + 1 septets, so three segments."""
    body = ("1234567890" * 31)[:307]
    assert encoding_for(body) == "GSM-7"
    assert count_segments(body) == 3


def test_emoji_plus_133_digits_make_three_ucs2_segments() -> None:
    """An emoji (two UTF-16 units) plus 133 digits is 135 units: 67 + 67 + 1."""
    body = "😜" + ("1234567890" * 14)[:133]
    assert encoding_for(body) == "UCS-2"
    assert count_segments(body) == 3


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("é" * 160, 1),  # é is in the GSM-7 basic set
        ("€" * 80, 1),  # 160 septets: extension characters count two
        ("€" * 81, 2),
        ("ç" * 70, 1),  # ç (lower case) is not GSM-7
        ("ç" * 71, 2),
        ("ç" * 134, 2),
        ("ç" * 135, 3),
        ("😜" * 35, 1),  # 70 UTF-16 units
        ("😜" * 36, 2),
    ],
)
def test_segment_boundaries(body: str, segments: int) -> None:
    """Single segments hold 160 septets / 70 units; multipart ones 153 / 67."""
    assert count_segments(body) == segments


def test_extension_character_is_not_split_across_segments() -> None:
    """A two-septet character that does not fit moves whole into the next segment."""
    # 152 septets, then € (2) would overflow the 153-septet part, so it starts part two.
    body = "a" * 152 + "€" + "a" * 10
    assert count_segments(body) == 2
    # 306 septets would fit two parts exactly if € could be split; it cannot.
    assert count_segments("a" * 152 + "€" * 76 + "aa") == 3


def test_surrogate_pair_is_not_split_across_segments() -> None:
    """An emoji that would straddle a 67-unit boundary moves to the next segment."""
    assert count_segments("ç" * 66 + "😜" + "ç" * 66) == 3
    assert count_segments("ç" * 65 + "😜" + "ç" * 67) == 2


def test_basic_gsm_characters_stay_gsm() -> None:
    """Greek capitals, accented letters, CR/LF and £¥ are in the GSM-7 basic set."""
    assert encoding_for("ΔΦΓΛΩΠΨΣΘΞ £¥èéùìòÇØøÅåÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\r\n") == "GSM-7"
    assert encoding_for("^{}\\[~]|€\x0c") == "GSM-7"
    assert encoding_for("`") == "UCS-2"
