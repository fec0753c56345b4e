"""Which time a status change is recorded at, when a carrier's clock says something else.

A carrier's time of an event (Vibes `receiptDate`, Concepto Móvil `doneDate`...) is kept in the
history as given. The message's `status_changed_at` and `delivered_at`, which callbacks carry,
use it only when it is plausible: within [submission time - 1 day, arrival + 1 day]. Otherwise
they use the receipt's arrival. And a status is never recorded at a time before the status
before it (a carrier's clock a few seconds behind ours would otherwise make an `enroute` older
than its `submitted`), so callbacks go out in time order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smsbridge.models import Message, parse_iso

#: How far a carrier's time may lie before the submission, or after the arrival, to be believed.
PLAUSIBLE_SKEW = timedelta(days=1)


def _parsed(value: str) -> datetime | None:
    try:
        return parse_iso(value) if value else None
    except ValueError:
        return None


def plausible(at: datetime | None, message: Message, arrived: datetime) -> datetime:
    """`at` when it lies within [submission - 1 day, `arrived` + 1 day], else `arrived`.

    The submission time is `submitted_at`, or `inserted_at` for a receipt that came before the
    submission's answer was recorded.
    """
    if at is None:
        return arrived
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    since = _parsed(message.submitted_at) or _parsed(message.inserted_at) or arrived
    if since - PLAUSIBLE_SKEW <= at <= arrived + PLAUSIBLE_SKEW:
        return at
    return arrived


def recorded_at(at: datetime | None, message: Message, arrived: datetime) -> datetime:
    """The time a status change of `message` is recorded at: the plausible carrier time, but
    not before `message.status_changed_at` (the status before it)."""
    when = plausible(at, message, arrived)
    before = _parsed(message.status_changed_at)
    return max(when, before) if before is not None else when
