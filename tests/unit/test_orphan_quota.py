"""The orphan quota: receipts for unknown carrier ids cannot fill the table (SPEC 3.3).

A small ORPHAN_LIMIT keeps the request tests fast; one test runs the stated scale (12,000 unknown
ids against the default limit of 10,000) through the repository against in-process moto.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from smsbridge.config import Settings, parse_config
from smsbridge.models import StatusReport
from smsbridge.queueing import DispatchQueue
from smsbridge.receipts import ReceiptDesk
from smsbridge.repository import MessageRepository, OrphanLimitReached, OrphanQuota
from smsbridge.statuses import Status
from smsbridge.tracking import StatusTracker
from smsbridge.web import HttpRequest
from tests.doubles import RecordingMetrics
from tests.support import basic, local_documents

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TABLE = "messages"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def desk(dynamodb: Any, limit: int, clock: datetime = NOW) -> ReceiptDesk:
    config, secrets = local_documents("http://127.0.0.1:9")
    tracker = StatusTracker(
        MessageRepository(dynamodb, TABLE),
        Settings(orphan_limit=limit),
        parse_config(json.loads(json.dumps(config)), secrets),
        DispatchQueue(dynamodb, ""),  # receipts queue nothing here
        RecordingMetrics(),
        clock=lambda: clock,
    )
    return ReceiptDesk(tracker)


def smartswitch(ids: list[str]) -> HttpRequest:
    query = [("_login", "smartswitch"), ("_password", "smartswitch-secret")]
    for gid in ids:
        query += [("message_id", gid), ("message_state", "delivered")]
    return HttpRequest("POST", "/dlr/smartswitch", query=query)


def orphan_items(dynamodb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE):
        items += [i for i in page["Items"] if "orphans" in i and "message_ref" not in i]
    return items


def refused(d: ReceiptDesk) -> float:
    metrics = d._tracker.metrics
    assert isinstance(metrics, RecordingMetrics)
    return metrics.count("OrphanRefused")


def test_unknown_ids_over_the_limit_are_refused_with_the_formats_answer(dynamodb: Any) -> None:
    d = desk(dynamodb, limit=50)
    first = d.handle("smartswitch", smartswitch([f"a{i}" for i in range(40)]))
    assert first.status == 200
    answer = d.handle("smartswitch", smartswitch([f"b{i}" for i in range(20)]))
    assert answer.status == 429
    body = json.loads(answer.body)
    assert body["errors"][0]["code"] == "too_many_unmatched_receipts"
    assert "data" not in body
    assert len(orphan_items(dynamodb)) == 50
    assert refused(d) == 10
    # More receipts for an id that waits already take no new place.
    again = d.handle("smartswitch", smartswitch(["a1", "a2"]))
    assert again.status == 200


def test_other_formats_answer_the_refusal_in_their_own_shape(dynamodb: Any) -> None:
    d = desk(dynamodb, limit=1)
    auth = {"authorization": basic("conceptomovil", "conceptomovil-secret")}
    receipts = [
        {"messageId": n, "statusDelivery": "DELIVERED", "sendDate": 1588694204000, "carrier": "X"}
        for n in (1, 2)
    ]
    answer = d.handle(
        "conceptomovil",
        HttpRequest(
            "POST",
            "/dlr/conceptomovil",
            headers={**auth, "content-type": "application/json"},
            body=json.dumps(receipts).encode(),
        ),
    )
    assert answer.status == 429
    assert "send them again later" in answer.body


def test_a_linked_id_frees_its_place_and_a_refused_receipt_applies_when_sent_again(
    dynamodb: Any,
) -> None:
    d = desk(dynamodb, limit=2)
    assert d.handle("smartswitch", smartswitch(["x1", "x2"])).status == 200
    assert d.handle("smartswitch", smartswitch(["x3"])).status == 429
    repository = d._repository
    ttl = int((NOW + timedelta(days=7)).timestamp())
    link = repository.link_gateway_id("smartswitch", "x1", "some-message", expires_at=ttl)
    assert [o.status for o in link.orphans] == [Status.DELIVERED]
    # A link repeated (its answer lost) frees nothing more.
    repository.link_gateway_id("smartswitch", "x1", "some-message", expires_at=ttl)
    assert d.handle("smartswitch", smartswitch(["x3"])).status == 200
    assert d.handle("smartswitch", smartswitch(["x4"])).status == 429


def test_places_taken_on_earlier_days_count_until_their_orphans_expire(dynamodb: Any) -> None:
    assert desk(dynamodb, 3, NOW).handle("smartswitch", smartswitch(["d1", "d2"])).status == 200
    six_days = desk(dynamodb, 3, NOW + timedelta(days=6))
    assert six_days.handle("smartswitch", smartswitch(["d3", "d4"])).status == 429
    # Eight days on, the first day's orphans have expired (TTL 7 days): their places are free.
    later = desk(dynamodb, 3, NOW + timedelta(days=8))
    assert later.handle("smartswitch", smartswitch(["d5", "d6"])).status == 200


@pytest.mark.skipif(
    os.environ.get("ORPHAN_SCALE_TEST") != "1",
    # Measured: 223 s of CPU (47 min on a loaded shared machine), 2,000 refused, 10,000 kept.
    reason="12,000 ids against moto take minutes; ORPHAN_SCALE_TEST=1 runs it",
)
def test_12000_unknown_ids_leave_at_most_10000_orphan_items(dynamodb: Any) -> None:
    repository = MessageRepository(dynamodb, TABLE)
    quota = OrphanQuota(limit=10_000, day=20_000, window_days=7, expires_at=2_000_000_000)
    refusals = 0
    for i in range(12_000):
        report = StatusReport(Status.DELIVERED, source="receipt:smartswitch", gateway_id=f"u{i}")
        try:
            repository.store_orphan("smartswitch", f"u{i}", report, expires_at=0, quota=quota)
        except OrphanLimitReached:
            refusals += 1
    assert refusals == 2_000
    assert len(orphan_items(dynamodb)) == 10_000
