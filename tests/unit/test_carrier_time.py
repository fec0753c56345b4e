"""Carrier times: kept in the history as given, but a status is recorded at a plausible time that
is never earlier than the status before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from smsbridge.models import HistoryEntry, Message, StatusReport, iso
from smsbridge.statuses import Status
from smsbridge.transitions import transition
from smsbridge.web import HttpRequest
from tests.support import a_message
from tests.unit import test_orphan_quota

#: The moto table and the receipt desk of the orphan quota tests.
dynamodb = test_orphan_quota.dynamodb
desk = test_orphan_quota.desk

#: The receipt's arrival.
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
SUBMITTED = NOW - timedelta(hours=2)


def submitted(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "status": Status.SUBMITTED,
        "inserted_at": iso(SUBMITTED - timedelta(seconds=1)),
        "submitted_at": iso(SUBMITTED),
        "status_changed_at": iso(SUBMITTED),
        "gateway_id": "g-1",
        "history": [HistoryEntry(at=iso(SUBMITTED), status="submitted")],
    }
    return a_message(**(values | fields))


def receipt(status: Status, at: datetime | None) -> StatusReport:
    return StatusReport(status, source="receipt:vibes", gateway_status="Handset", at=at)


@pytest.mark.parametrize(
    "carrier_at",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        SUBMITTED - timedelta(days=1, seconds=1),
        NOW + timedelta(days=1, seconds=1),
    ],
    ids=["year-1", "year-9999", "a-day-before-submission", "a-day-after-arrival"],
)
def test_an_implausible_carrier_time_is_kept_in_the_history_but_not_as_delivered_at(
    carrier_at: datetime,
) -> None:
    change = transition(submitted(), [receipt(Status.DELIVERED, carrier_at)], now=NOW)
    assert change.fields["delivered_at"] == iso(NOW)
    assert change.fields["status_changed_at"] == iso(NOW)
    entry = change.history[-1]
    assert entry.at == iso(carrier_at)  # as the carrier gave it
    assert entry.received_at == iso(NOW)


@pytest.mark.parametrize(
    "carrier_at",
    [
        SUBMITTED + timedelta(minutes=5),
        NOW + timedelta(hours=23),
    ],
)
def test_a_plausible_carrier_time_is_the_time_of_the_change(carrier_at: datetime) -> None:
    change = transition(submitted(), [receipt(Status.DELIVERED, carrier_at)], now=NOW)
    assert change.fields["delivered_at"] == iso(carrier_at)
    assert change.fields["status_changed_at"] == iso(carrier_at)


def test_no_status_is_recorded_before_the_one_before_it() -> None:
    # The carrier's clock runs a little behind ours: its enroute is "before" our submitted.
    behind = SUBMITTED - timedelta(seconds=20)
    change = transition(submitted(), [receipt(Status.ENROUTE, behind)], now=NOW)
    assert change.fields["status_changed_at"] == iso(SUBMITTED)
    assert change.history[-1].at == iso(behind)
    # Within one run of reports too: delivered after an enroute with a later time.
    run = [
        receipt(Status.ENROUTE, SUBMITTED + timedelta(minutes=3)),
        receipt(Status.DELIVERED, SUBMITTED + timedelta(minutes=1)),
    ]
    change = transition(submitted(), run, now=NOW)
    assert change.fields["status_changed_at"] == iso(SUBMITTED + timedelta(minutes=3))
    assert change.fields["delivered_at"] == iso(SUBMITTED + timedelta(minutes=3))


def test_a_receipt_before_the_submission_was_recorded_is_judged_from_intake() -> None:
    queued = a_message(
        status=Status.QUEUED,
        inserted_at=iso(NOW - timedelta(seconds=2)),
        status_changed_at=iso(NOW - timedelta(seconds=2)),
    )
    carrier_at = NOW - timedelta(seconds=1)
    change = transition(queued, [receipt(Status.DELIVERED, carrier_at)], now=NOW)
    assert change.fields["delivered_at"] == iso(carrier_at)


def test_a_year_1_receipt_date_never_reaches_delivered_at(dynamodb: Any) -> None:
    """Through the receipt desk: a Vibes receipt whose receiptDate is year 1."""
    d = desk(dynamodb, limit=10, clock=NOW)
    repository = d._repository
    message = submitted(id="m-year1", carrier="vibes", gateway_id="vibes-g1")
    repository.create(message, next_check_at=None)
    repository.link_gateway_id("vibes", "vibes-g1", "m-year1", expires_at=2_000_000_000)
    body = (
        '<mtMessageResponse messageId="vibes-g1" receiptDate="0001-01-01T00:00:00.000Z">'
        '<type>Handset</type><status isError="false"><description>Delivered</description>'
        "</status></mtMessageResponse>"
    )
    answer = d.handle(
        "vibes",
        HttpRequest(
            "POST",
            "/dlr/vibes",
            headers={"content-type": "application/xml"},
            query=[("token", "vibes-secret")],
            body=body.encode(),
        ),
    )
    assert answer.status == 200
    stored = repository.get("m-year1")
    assert stored is not None and stored.status == Status.DELIVERED
    assert stored.delivered_at == iso(NOW)
    assert stored.status_changed_at == iso(NOW)
    assert stored.history[-1].at.startswith("0001-01-01")
