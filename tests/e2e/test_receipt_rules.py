"""Receipts through the local stack: Vibes forwarding by itself (numbers 21-24 on the route that
asks Vibes for its own alternate delivery), and 300 repeats of one receipt in one request."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e

#: +1844 is routed to `vibes-longcode`, which has no alternate of ours: Vibes is asked for its own.
FORWARDING = "+184455512"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def forwards(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in record["history"] if h.get("gateway_status") == "Forwarded"]


def alternate_receipts(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in record["history"] if h.get("gateway_forwarded_from")]


@pytest.mark.parametrize(
    ("ending", "status", "forward_seen"),
    [
        ("21", "delivered", True),  # original's Forwarded receipt first
        ("22", "delivered", True),  # the alternate's Handset receipt first
        ("23", "delivered", False),  # receipt option FINAL: only the alternate's final
        ("24", "undeliverable", True),  # the alternate fails
    ],
)
def test_vibes_forwarding_by_itself_ends_with_the_alternates_outcome(
    client: Client, ending: str, status: str, forward_seen: bool
) -> None:
    mid = unique(f"vfw{ending}")
    client.send(to=f"{FORWARDING}{ending}", message_id=mid, alternate_delivery=True)
    expected = 1 if forward_seen else 0
    record = client.wait_for(mid, lambda r: r["status"] == status and len(forwards(r)) == expected)
    [submission] = client.submissions(record["id"])
    assert submission["alternate_delivery"] is True
    assert record["carrier"] == "vibes-longcode"
    assert not record.get("forwarded_to")  # one record: smsbridge made no alternate of its own
    [*_, final] = alternate_receipts(record)
    assert final["status"] == status
    if forward_seen:
        [forward] = forwards(record)
        assert forward["gateway_forwarded_to"] == final["gateway_id"]
    time.sleep(0.5)
    assert client.get(mid)["status"] == status


def test_without_alternate_delivery_the_carrier_does_not_forward(client: Client) -> None:
    mid = unique("vfw-no")
    client.send(to=f"{FORWARDING}21", message_id=mid)
    record = client.wait_status(mid, "undeliverable")
    assert forwards(record) == []


def test_300_repeats_of_one_receipt_answer_within_a_second_and_stay_bounded(
    client: Client,
) -> None:
    mid = unique("rep")
    client.send(to="+4915112345614", message_id=mid)  # 14: enroute, never a final
    record = client.wait_for(
        mid, lambda r: r["status"] == "enroute" and r.get("gateway_id", "") != ""
    )
    auth = {"_login": "smartswitch", "_password": "smartswitch-secret"}
    params = [("message_id", record["gateway_id"]), ("message_state", "enroute")] * 300
    query = urlencode(params + list(auth.items()))
    answer = requests.post(f"{client.api}/dlr/smartswitch?{query}", timeout=30)
    assert answer.status_code == 200
    assert len(answer.json()["data"]) == 300
    after = client.get(mid)
    assert len(after["history"]) == len(record["history"])
    final = urlencode(
        [("message_id", record["gateway_id"]), ("message_state", "delivered"), *auth.items()]
    )
    assert requests.post(f"{client.api}/dlr/smartswitch?{final}", timeout=30).ok
    assert client.get(mid)["status"] == "delivered"
