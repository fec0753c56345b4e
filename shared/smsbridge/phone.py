"""Phone numbers: normalise to E.164, find the region, mask for log lines.

`phonenumbers` (installed as `phonenumberslite`) is imported inside the functions that need it:
its import costs about 24 ms, which every handler importing this module would otherwise pay at cold
start, although only intake validates numbers. `mask` never needs it.
"""

from __future__ import annotations

#: ITU-T E.164 country calling codes (1 to 3 digits, no code is a prefix of another), so that
#: `mask` can keep the country code without loading phonenumbers. A unit test keeps it equal to
#: phonenumbers' own table.
_COUNTRY_CODES_TEXT = """
    1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63
    64 65 66 81 82 84 86 90 91 92 93 94 95 98 211 212 213 216 218 220 221 222 223 224 225 226 227
    228 229 230 231 232 233 234 235 236 237 238 239 240 241 242 243 244 245 246 247 248 249 250
    251 252 253 254 255 256 257 258 260 261 262 263 264 265 266 267 268 269 290 291 297 298 299
    350 351 352 353 354 355 356 357 358 359 370 371 372 373 374 375 376 377 378 380 381 382 383
    385 386 387 389 420 421 423 500 501 502 503 504 505 506 507 508 509 590 591 592 593 594 595
    596 597 598 599 670 672 673 674 675 676 677 678 679 680 681 682 683 685 686 687 688 689 690
    691 692 800 808 850 852 853 855 856 870 878 880 881 882 883 886 888 960 961 962 963 964 965
    966 967 968 970 971 972 973 974 975 976 977 979 992 993 994 995 996 998
"""
COUNTRY_CODES = frozenset(_COUNTRY_CODES_TEXT.split())

#: Separators people type inside numbers: spaces, dashes (ASCII and Unicode), dots, brackets.
_SEPARATORS = dict.fromkeys(
    map(ord, " \t\u00a0\u2007\u202f-\u2010\u2011\u2012\u2013\u2014\u2015.()")
)
#: E.164 allows 15 digits; longer input is not a number, whatever trunk prefix it carries.
_MAX_DIGITS = 17
_MASK = "******"


class InvalidNumber(ValueError):
    """The text is not a phone number we can send to; the message says why, for the originator."""


def to_e164(raw: str, country: str | None = None) -> str:
    """The number in E.164 (`+380671234501`).

    Accepts `+` followed by the country code, `00` followed by the country code, or a national
    number together with `country` (ISO 3166 alpha-2, e.g. "UA").
    """
    if not isinstance(raw, str):
        raise InvalidNumber("not a phone number")
    compact = raw.translate(_SEPARATORS)
    digits = compact.removeprefix("+")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_DIGITS:
        raise InvalidNumber("not a phone number")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    international = compact.startswith("+")
    region = (country or "").strip().upper() or None
    if not international and region is None:
        raise InvalidNumber("a national number needs a country")

    import phonenumbers

    if not international and region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidNumber(f"unknown country {country!r}")
    try:
        number = phonenumbers.parse(compact, None if international else region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidNumber("unknown country code") from None
        raise InvalidNumber("not a phone number") from None
    if international:
        code = number.country_code or 0
        region = phonenumbers.region_code_for_country_code(code)
        if region == phonenumbers.UNKNOWN_REGION:
            raise InvalidNumber("unknown country code")
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            region = f"+{code}"
    if not (phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number)):
        raise InvalidNumber(f"not a valid number for {region}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(e164: str) -> str:
    """ISO 3166 alpha-2 region of an E.164 number; "" when unknown or non-geographic.

    A country code shared by several regions (+1, +7) needs a valid number to tell which.
    """
    if not e164.startswith("+"):
        return ""
    import phonenumbers

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ""
    region = phonenumbers.region_code_for_number(number) or ""
    return region if len(region) == 2 and region.isalpha() else ""


def _country_code(digits: str) -> str:
    for length in (1, 2, 3):
        if digits[:length] in COUNTRY_CODES:
            return digits[:length]
    return ""


def mask(phone: str, keep: int = 4) -> str:
    """The number for a log line: "+380******4501".

    Keeps the country code of an E.164 number and the last `keep` digits (4 in log lines, 2 for
    support staff); the rest becomes a fixed run of asterisks, so that it tells neither the digits
    nor the length.
    """
    digits = "".join(char for char in phone if char.isascii() and char.isdigit())
    if not digits:
        return _MASK if phone.strip() else ""
    if phone.lstrip().startswith("+"):
        code = _country_code(digits)
        if code and len(digits) > len(code) + keep:
            return f"+{code}{_MASK}{digits[-keep:]}"
    return f"{_MASK}{digits[-keep:]}"
