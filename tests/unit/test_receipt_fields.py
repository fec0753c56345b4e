"""Nothing a carrier tells us is dropped: every field a receipt parser returns is stored, or
listed as ignored with the reason (smsbridge.receipts.RECEIPT_FIELDS / RECEIPT_EXTRA_*)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from smsbridge.carriers import conceptomovil, ip2sms, smartswitch, vibes
from smsbridge.carriers.base import Receipt
from smsbridge.models import HistoryEntry, StatusReport
from smsbridge.receipts import (
    RECEIPT_EXTRA_IGNORED,
    RECEIPT_EXTRA_STORED,
    RECEIPT_FIELDS,
    report_of,
)
from smsbridge.statuses import Status
from smsbridge.transitions import history_entry
from tests.unit.carrier_fakes import DLR_CREDENTIALS, carrier_config, http_request

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def richest_receipts() -> dict[str, list[Receipt]]:
    """For each format, receipts carrying every field the format can read."""
    vibes_xml = (
        '<mtMessageResponse messageId="865cd3d1" submitterMessageId="239487234987234" '
        'fwdToMessageId="734cd3d1" receiptDate="not a date"><type>Carrier</type>'
        '<status isError="true"><description>failed</description><errorCode>100</errorCode>'
        "<internalErrorCode>255</internalErrorCode></status></mtMessageResponse>"
    )
    vibes_alternate = vibes_xml.replace("fwdToMessageId", "fwdFromMessageId")
    conceptomovil_body = json.dumps(
        {
            "messageId": 12345678,
            "statusDelivery": "DELIVERED",
            "sendDate": 1588694204000,
            "doneDate": 1588694204000,
            "carrier": "CLARO",
        }
    )
    ip2sms_xml = (
        '<status id="77" date="Wed, 28 Mar 2007 12:35:00 +0300" ext_id="abc">'
        '<state error="no route">Undeliverable</state></status>'
    )
    query = "message_id=1&message_state=delivered&request_id=9"

    def request(fmt: str, body: str, content_type: str | None, url: str = "") -> object:
        return http_request(
            url or f"/dlr/{fmt}", body=body, auth=DLR_CREDENTIALS[fmt], content_type=content_type
        )

    smartswitch_request = http_request(
        f"/dlr/smartswitch?{query}&_login=smartswitch&_password=smartswitch-secret"
    )
    return {
        "smartswitch": smartswitch.read_receipts(
            smartswitch_request, carrier_config("smartswitch")
        ),
        "conceptomovil": conceptomovil.read_receipts(
            request("conceptomovil", conceptomovil_body, "application/json"),  # type: ignore[arg-type]
            carrier_config("conceptomovil"),
        ),
        "vibes": [
            *vibes.read_receipts(
                request("vibes", vibes_xml, "application/xml"),  # type: ignore[arg-type]
                carrier_config("vibes"),
            ),
            *vibes.read_receipts(
                request("vibes", vibes_alternate, "application/xml"),  # type: ignore[arg-type]
                carrier_config("vibes"),
            ),
        ],
        "ip2sms": ip2sms.read_receipts(
            request("ip2sms", ip2sms_xml, "application/xml"),  # type: ignore[arg-type]
            carrier_config("ip2sms"),
        ),
    }


def test_every_receipt_field_is_documented_as_used_or_ignored() -> None:
    assert {f.name for f in fields(Receipt)} == set(RECEIPT_FIELDS)


@pytest.mark.parametrize("fmt", ["smartswitch", "conceptomovil", "vibes", "ip2sms"])
def test_every_extra_key_a_format_returns_is_stored_or_ignored_with_a_reason(fmt: str) -> None:
    receipts = richest_receipts()[fmt]
    assert receipts
    for receipt in receipts:
        unknown = set(receipt.extra) - set(RECEIPT_EXTRA_STORED) - set(RECEIPT_EXTRA_IGNORED)
        assert not unknown, f"{fmt} returns extra {unknown}: store it or say why it is ignored"
    assert all(reason.strip() for reason in RECEIPT_EXTRA_IGNORED.values())
    assert not set(RECEIPT_EXTRA_STORED) & set(RECEIPT_EXTRA_IGNORED)


@pytest.mark.parametrize("fmt", ["smartswitch", "conceptomovil", "vibes", "ip2sms"])
def test_what_is_not_ignored_reaches_the_history_entry(fmt: str) -> None:
    ignored = {name for name, use in RECEIPT_FIELDS.items() if use.startswith("ignored")}
    for receipt in richest_receipts()[fmt]:
        report = report_of(carrier_config(fmt), receipt)
        entry = history_entry(report, NOW)
        kept = set(entry.to_dict().values())
        for name in set(RECEIPT_FIELDS) - ignored - {"status", "extra", "missing_fields", "at"}:
            value = getattr(receipt, name)
            if value:
                assert value in kept, f"{fmt}: {name}={value!r} is not in {entry}"
        if receipt.at is not None:
            assert entry.at == receipt.at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            assert entry.received_at
        for key, value in receipt.extra.items():
            if key in RECEIPT_EXTRA_STORED:
                assert getattr(entry, RECEIPT_EXTRA_STORED[key]) == value


def test_stored_extra_keys_name_fields_of_the_report_and_the_history_entry() -> None:
    report_fields = {f.name for f in fields(StatusReport)}
    entry_fields = {f.name for f in fields(HistoryEntry)}
    for target in RECEIPT_EXTRA_STORED.values():
        assert target in report_fields and target in entry_fields


def test_repeated_reports_are_the_same_event_only_with_the_same_carrier_time() -> None:
    first = history_entry(StatusReport(Status.ENROUTE, source="receipt:x"), NOW)
    later = history_entry(StatusReport(Status.ENROUTE, source="receipt:x"), NOW.replace(minute=5))
    # No carrier time: the receipt says the same thing again.
    assert first.same_event(later)
    timed = history_entry(StatusReport(Status.ENROUTE, source="receipt:x", at=NOW), NOW)
    retimed = history_entry(
        StatusReport(Status.ENROUTE, source="receipt:x", at=NOW.replace(minute=1)), NOW
    )
    assert not timed.same_event(retimed)
    assert not first.same_event(timed)
    errored = history_entry(
        StatusReport(Status.ENROUTE, source="receipt:x", gateway_error="7"), NOW
    )
    assert not first.same_event(errored)
