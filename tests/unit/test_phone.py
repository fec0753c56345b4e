"""Phone numbers: E.164 normalisation, region, masking for log lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest

from smsbridge import phone
from smsbridge.phone import InvalidNumber, mask, region_of, to_e164

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.parametrize(
    ("raw", "country", "e164"),
    [
        ("+380671234501", None, "+380671234501"),
        ("+380 67 123 45 01", None, "+380671234501"),
        ("00380 67 123-45-01", None, "+380671234501"),
        ("067 123 4501", "UA", "+380671234501"),
        ("(067) 123.45.01", "ua", "+380671234501"),
        ("067\u2011123\u20114501", "UA", "+380671234501"),
        ("+1 (202) 456-1111", None, "+12024561111"),
        ("202.456.1111", "US", "+12024561111"),
        ("55 1234 5678", "MX", "+525512345678"),
        ("020 8366 1177", "GB", "+442083661177"),
        # A number with its country code ignores `country`.
        ("+380671234501", "US", "+380671234501"),
        (" +380671234501 ", "", "+380671234501"),
    ],
)
def test_to_e164_accepts(raw: str, country: str | None, e164: str) -> None:
    assert to_e164(raw, country) == e164


@pytest.mark.parametrize(
    ("raw", "country", "reason"),
    [
        ("0671234501", None, "a national number needs a country"),
        ("0671234501", "", "a national number needs a country"),
        ("hello", None, "not a phone number"),
        ("", "UA", "not a phone number"),
        ("+", None, "not a phone number"),
        ("+380 67 123 45 01 ext. 7", None, "not a phone number"),
        ("1-800-FLOWERS", "US", "not a phone number"),
        ("380+671234501", None, "not a phone number"),
        ("+3806712345010123456789", None, "not a phone number"),
        ("+38067123450", None, "not a valid number for UA"),
        ("123", "UA", "not a valid number for UA"),
        ("+1 555 0100", None, "not a valid number for US"),
        ("+999 123 456 789", None, "unknown country code"),
        ("067 123 4501", "XX", "unknown country 'XX'"),
    ],
)
def test_to_e164_refuses_with_a_reason(raw: str, country: str | None, reason: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        to_e164(raw, country)
    assert str(caught.value) == reason


def test_invalid_number_is_a_value_error() -> None:
    assert issubclass(InvalidNumber, ValueError)


@pytest.mark.parametrize(
    ("e164", "region"),
    [
        ("+380671234501", "UA"),
        ("+12024561111", "US"),
        ("+14165550123", "CA"),
        ("+525512345678", "MX"),
        ("+442083661177", "GB"),
        ("+80012345678", ""),  # non-geographic (international freephone)
        ("+38067123450", "UA"),  # one region for the country code: known though invalid
        ("+15550100", ""),  # +1 is shared: an invalid number tells no region
        ("+999123456789", ""),
        ("0671234501", ""),
        ("", ""),
        ("garbage", ""),
    ],
)
def test_region_of(e164: str, region: str) -> None:
    assert region_of(e164) == region


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+380671234501", "+380******4501"),
        ("+12024561111", "+1******1111"),
        ("+525512345678", "+52******5678"),
        ("+442083661177", "+44******1177"),
        ("067 123 4501", "******4501"),
        ("98765", "******8765"),
        ("+1234", "******1234"),
        ("not a number", "******"),
        ("", ""),
    ],
)
def test_mask(number: str, masked: str) -> None:
    assert mask(number) == masked


def test_mask_hides_the_length() -> None:
    assert len(mask("+38067123450")) == len(mask("+380671234501234"))


def test_country_codes_match_phonenumbers() -> None:
    assert {int(code) for code in phone.COUNTRY_CODES} == set(
        phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    )


def test_phonenumbers_is_loaded_only_when_a_number_is_validated() -> None:
    """Importing the module and masking must not pay for phonenumbers at cold start."""
    probe = (
        "import sys\n"
        "from smsbridge import phone\n"
        "phone.mask('+380671234501')\n"
        "assert 'phonenumbers' not in sys.modules, 'imported too early'\n"
        "phone.to_e164('+380671234501')\n"
        "assert 'phonenumbers' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SHARED)}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
