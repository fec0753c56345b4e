"""The one reader of dates and times from outside: OFSC, the JSON API, receipts and poll answers.

Every reader answers an aware UTC `datetime` or raises `DateError`. A date is refused when it is
not a real calendar moment (second 60, 30 February, an offset of 24 hours or more) or when its UTC
form falls outside what `datetime` can hold (years 1 to 9999): `0001-01-01T00:00:00+05:00` is
in year 0 in UTC and `9999-12-31T23:00:00-23:59` in year 10000. Such a value used to reach
`astimezone`, whose OverflowError the handlers answered as an internal error.

`DateError` is a `ValueError`, so every caller that already refuses an unreadable date refuses
these the same way: a SOAP Client fault or a `failed` message for OFSC, 422 for the JSON API, the
carrier's own error answer or the raw text kept in the history for receipts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

#: The earliest and latest moment any reader answers (what `datetime` holds, in UTC).
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
#: Epoch milliseconds of `LATEST` (the end of year 9999).
MAX_EPOCH_MS = 253_402_300_799_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Longer text is no date any reader knows (the longest ISO form is 32 characters).
_MAX_TEXT = 64
_GMT_FORMAT = "%Y-%m-%d %H:%M:%S"
_RFC2822_YEAR = re.compile(r"\b\d{1,2}\s+[A-Za-z]{3}\s+(\d+)\b")


class DateError(ValueError):
    """A date that cannot be read, or whose UTC form is out of range."""


def to_utc(moment: datetime) -> datetime:
    """`moment` in UTC (naive means UTC); DateError when that falls outside years 1 to 9999."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise DateError("the date is out of range in UTC (years 1 to 9999)") from None


def _text(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise DateError("the date is empty")
    if len(stripped) > _MAX_TEXT:
        raise DateError("the date is too long")
    return stripped


def parse_iso(value: str) -> datetime:
    """ISO 8601 (`2011-07-07T09:30:58+00:00`, `...Z`, a space for the T); naive means UTC."""
    text = _text(value)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DateError("the date is not ISO 8601") from None
    return to_utc(parsed)


def parse_gmt(value: str) -> datetime:
    """OFSC's GMT `YYYY-MM-DD HH24:MI:SS`, or any ISO 8601 form (an offset is honoured)."""
    text = _text(value)
    try:
        return datetime.strptime(text, _GMT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return parse_iso(text)
    except DateError:
        raise DateError("the date is not a GMT date and time (YYYY-MM-DD HH24:MI:SS)") from None


def parse_rfc2822(value: str) -> datetime:
    """RFC 2822 (`Tue, 01 Oct 2024 10:00:00 +0300`), ISO 8601 tolerated."""
    text = _text(value)
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return parse_iso(text)
    year = _RFC2822_YEAR.search(text)
    if year and len(year[1]) == 4 and int(year[1]) != parsed.year:
        # email.utils reads a year below 100 as 19xx/20xx even when written with four digits.
        try:
            parsed = parsed.replace(year=int(year[1]))
        except ValueError:
            raise DateError("the date is not a calendar date") from None
    return to_utc(parsed)


def from_epoch_ms(value: int) -> datetime:
    """Epoch milliseconds (0 to the end of year 9999), exact to the millisecond."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DateError("epoch milliseconds must be an integer")
    if not 0 <= value <= MAX_EPOCH_MS:
        raise DateError(f"epoch milliseconds must be 0 to {MAX_EPOCH_MS}")
    return _EPOCH + timedelta(milliseconds=value)
