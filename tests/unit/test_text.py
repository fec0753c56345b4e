"""GSM-7 / UCS-2 detection, segment counting and OTP masking."""

from __future__ import annotations

import pytest

from smsbridge import text
from smsbridge.text import encoding_of, mask_digits, segments_of

EXTENSION = "\f^{}\\[~]|\u20ac"


def test_alphabet_tables_have_the_sizes_of_gsm_03_38() -> None:
    # 128 codes less the escape; ten extension characters.
    assert len(text.GSM7_BASIC) == 127
    assert len(text.GSM7_EXTENSION) == 10
    assert frozenset(EXTENSION) == text.GSM7_EXTENSION
    assert not text.GSM7_BASIC & text.GSM7_EXTENSION


def test_printable_ascii_is_gsm_except_the_backtick() -> None:
    outside = {chr(code) for code in range(32, 127)} - text.GSM7_BASIC - text.GSM7_EXTENSION
    assert outside == {"`"}


@pytest.mark.parametrize(
    "sample",
    [
        "Your code is 482913",
        "Appointment 10:00-12:00 @ Main St. #5, £10 / ¥1000 / $12 / ¤",
        "Ça va? ¿Qué tal? ¡Olé! Ñoño, Straße, Øresund, Åre, Ærø, é è ù ì ò à ä ö ü §",
        "ΔΦΓΛΩΠΨΣΘΞ _",
        "line one\nline two\r\n",
        EXTENSION,
        "",
    ],
)
def test_gsm7_texts(sample: str) -> None:
    assert encoding_of(sample) == "GSM-7"


@pytest.mark.parametrize(
    "sample",
    [
        "Ваш код 482913",
        "ça va",  # only the capital C with cedilla is in the default alphabet
        "back`tick",
        "emoji \U0001f600",
        "\u00a0non-breaking space",
        "\u201csmart quotes\u201d",
        "\x1b",  # the escape itself is not text
        "\t",
    ],
)
def test_ucs2_texts(sample: str) -> None:
    assert encoding_of(sample) == "UCS-2"


def test_empty_text_is_zero_segments() -> None:
    assert segments_of("") == 0


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (1530, 10), (1531, 11)],
)
def test_gsm7_segments(length: int, segments: int) -> None:
    assert segments_of("a" * length) == segments


def test_gsm7_extension_characters_take_two_septets() -> None:
    assert segments_of("\u20ac" * 80) == 1  # 160 septets
    assert segments_of("\u20ac" * 81) == 2  # 162 septets: 76 pairs + 5 pairs
    assert segments_of("a" * 159 + "{") == 2
    assert segments_of("a" * 158 + "{") == 1
    assert segments_of("\f" * 80) == 1


def test_gsm7_escape_pair_is_never_split_across_segments() -> None:
    # 306 septets would fit two parts of 153, but the pair cannot straddle the boundary.
    assert segments_of("a" * 152 + "\u20ac" + "a" * 152) == 3
    assert segments_of("a" * 151 + "\u20ac" + "a" * 153) == 2


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (670, 10)]
)
def test_ucs2_segments(length: int, segments: int) -> None:
    assert segments_of("я" * length) == segments


def test_one_non_gsm_character_makes_the_whole_text_ucs2() -> None:
    assert segments_of("a" * 70) == 1
    assert segments_of("a" * 69 + "я") == 1
    assert segments_of("a" * 70 + "я") == 2


def test_ucs2_counts_utf16_code_units() -> None:
    emoji = "\U0001f600"
    assert segments_of(emoji * 35) == 1  # 70 units
    assert segments_of(emoji * 36) == 2  # 72 units: 33 + 3 emoji
    assert segments_of("я" * 69 + emoji) == 2  # 71 units


def test_ucs2_surrogate_pair_is_never_split_across_segments() -> None:
    emoji = "\U0001f600"
    # 134 units would fit two parts of 67, but the pair cannot straddle the boundary.
    assert segments_of("я" * 66 + emoji + "я" * 66) == 3
    assert segments_of("я" * 65 + emoji + "я" * 67) == 2


def test_gsm_escape_counts_nothing_extra_once_the_text_is_ucs2() -> None:
    assert segments_of("\u20ac" * 69 + "я") == 1  # 70 UCS-2 units


def test_max_segments_default() -> None:
    assert text.MAX_SEGMENTS == 10


@pytest.mark.parametrize(
    ("body", "masked"),
    [
        ("Your code is 482913", "Your code is ******"),
        ("Код: 1234, дійсний 5 хв", "Код: ****, дійсний * хв"),
        ("رمزك ٤٨٢٩", "رمزك ****"),  # Arabic-Indic digits are digits too
        ("no digits here", "no digits here"),
        ("", ""),
    ],
)
def test_mask_digits(body: str, masked: str) -> None:
    assert mask_digits(body) == masked
