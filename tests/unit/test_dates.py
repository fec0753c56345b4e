"""The one reader of outside dates: calendar edges are refused as bad values, never overflow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smsbridge import dates


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+05:00",  # year 0 in UTC
        "9999-12-31 14:21:14-23:59",  # year 10000 in UTC
        "9999-12-31T23:59:59-00:01",
        "2024-02-29T23:59:60Z",  # second 60
        "2023-02-29T00:00:00Z",  # no leap day in 2023
        "2024-01-01T00:00:00+24:00",  # offsets end at 23:59
        "",
        "x" * 65,
    ],
)
def test_an_iso_date_out_of_range_or_not_a_moment_is_refused(text: str) -> None:
    with pytest.raises(dates.DateError):
        dates.parse_iso(text)


def test_the_edges_that_exist_in_utc_are_read() -> None:
    assert dates.parse_iso("0001-01-01T05:00:00+05:00") == datetime(1, 1, 1, tzinfo=UTC)
    assert dates.parse_iso("9999-12-31T00:00:00-23:59") == datetime(
        9999, 12, 31, 23, 59, tzinfo=UTC
    )
    assert dates.parse_iso("2024-02-29T00:00:00+23:59") == datetime(2024, 2, 28, 0, 1, tzinfo=UTC)
    assert dates.parse_iso("2011-07-07 09:30:58") == datetime(2011, 7, 7, 9, 30, 58, tzinfo=UTC)


def test_ofsc_gmt_is_read_as_utc_and_second_60_is_refused() -> None:
    assert dates.parse_gmt("9999-12-31 23:59:59") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(dates.DateError):
        dates.parse_gmt("2030-01-01 00:00:60")
    with pytest.raises(dates.DateError):
        dates.parse_gmt("0001-01-01T00:00:00+05:00")


def test_rfc2822_keeps_a_four_digit_year_below_100_and_refuses_an_overflow() -> None:
    # email.utils alone reads year 0001 as 2001.
    assert dates.parse_rfc2822("Mon, 01 Jan 0001 02:00:00 +0100") == datetime(
        1, 1, 1, 1, tzinfo=UTC
    )
    assert dates.parse_rfc2822("Tue, 01 Oct 2024 10:00:00 +0300") == datetime(
        2024, 10, 1, 7, tzinfo=UTC
    )
    for text in ("Mon, 01 Jan 0001 00:00:00 +0100", "Fri, 31 Dec 9999 23:00:00 -2359"):
        with pytest.raises(dates.DateError):
            dates.parse_rfc2822(text)


def test_epoch_milliseconds_are_exact_up_to_the_end_of_year_9999() -> None:
    assert dates.from_epoch_ms(dates.MAX_EPOCH_MS) == datetime(
        9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC
    )
    assert dates.from_epoch_ms(0) == datetime(1970, 1, 1, tzinfo=UTC)
    for value in (-1, dates.MAX_EPOCH_MS + 1, 2**63):
        with pytest.raises(dates.DateError):
            dates.from_epoch_ms(value)
