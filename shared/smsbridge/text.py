"""SMS text measurement: GSM-7 or UCS-2, and how many segments a text takes (pure, no I/O).

GSM 03.38 (3GPP TS 23.038): a text that fits the default alphabet and its extension table goes out
as GSM-7 (160 septets alone, 153 per part when concatenated, since the user data header takes the
rest); an extension character costs two septets (ESC + code). Anything else goes out as UCS-2
(UTF-16 on the wire): 70 code units alone, 67 per part. A part never ends inside an escape pair or
a surrogate pair, so a part may hold one unit less than its capacity.
"""

from __future__ import annotations

GSM7 = "GSM-7"
UCS2 = "UCS-2"

#: Default number of segments a message may take before it is refused at intake.
MAX_SEGMENTS = 10

#: The 127 printable codes of the GSM 03.38 default alphabet (0x1B, the escape, is not text).
#: 0x09 is the capital C with cedilla as in TS 23.038; a small c with cedilla is sent as UCS-2.
GSM7_BASIC = frozenset(
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"  # 0x00
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"  # 0x10
    " !\"#\u00a4%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "\u00a1ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"  # 0x50
    "\u00bfabcdefghijklmno"  # 0x60
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"  # 0x70
)

#: The extension table: each is sent as ESC + code, two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|\u20ac")

GSM7_SINGLE, GSM7_CONCAT = 160, 153
UCS2_SINGLE, UCS2_CONCAT = 70, 67


def encoding_of(text: str) -> str:
    """GSM-7 when every character is in the default alphabet or its extension table, else UCS-2."""
    for char in text:
        if char not in GSM7_BASIC and char not in GSM7_EXTENSION:
            return UCS2
    return GSM7


def _septets(text: str) -> list[int]:
    return [2 if char in GSM7_EXTENSION else 1 for char in text]


def _utf16_units(text: str) -> list[int]:
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def _pack(sizes: list[int], single: int, concat: int) -> int:
    """Segments needed for characters of the given sizes; a character is never split."""
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > concat:
            segments += 1
            used = 0
        used += size
    return segments


def segments_of(text: str) -> int:
    """How many SMS segments the text takes (0 for an empty text)."""
    if encoding_of(text) == GSM7:
        return _pack(_septets(text), GSM7_SINGLE, GSM7_CONCAT)
    return _pack(_utf16_units(text), UCS2_SINGLE, UCS2_CONCAT)


def mask_digits(text: str) -> str:
    """Every digit replaced by "*": the SMS log keeps OTP bodies without their codes."""
    return "".join("*" if char.isdecimal() else char for char in text)
