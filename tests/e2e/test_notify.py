"""Telling the originator through the local stack: signed JSON callbacks, OFSC set_message_status
in batches, retries with back-off and the dead-letter queue, refused callback URLs.

The stack runs with NOTIFY_MAX_ATTEMPTS=4 and NOTIFY_BACKOFF_SECONDS=1 (conftest.FAST).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import requests

from smsbridge import webhook_signature
from tests.e2e.conftest import Client
from tests.e2e.test_flows import ENVELOPE, OFSC

pytestmark = pytest.mark.e2e

SECRET = "demo-callback-secret"
RANK = {"submitted": 1, "enroute": 2, "unknown": 2, "forwarded": 3, "delivered": 4}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def header(call: dict[str, Any], name: str) -> str:
    return str({k.lower(): v for k, v in call["headers"].items()}.get(name.lower(), ""))


def signed(call: dict[str, Any]) -> bool:
    """The callback verifies as a receiver checks it: signature, event id, time window."""
    return webhook_signature.verify(
        SECRET,
        header(call, webhook_signature.SIGNATURE_HEADER),
        header(call, webhook_signature.EVENT_ID_HEADER),
        call["body"].encode(),
        now=time.time(),
    )


def wait_calls(
    client: Client,
    path: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 30,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    calls = client.callbacks(path)
    while not done(calls):
        if time.monotonic() > deadline:
            raise AssertionError(f"callbacks on {path} never got there: {calls}")
        time.sleep(0.25)
        calls = client.callbacks(path)
    return calls


def statuses(calls: list[dict[str, Any]]) -> list[str]:
    return [c["json"]["status"] for c in calls]


def test_final_sends_one_signed_delivered_callback_also_with_repeated_receipts(
    client: Client,
) -> None:
    # Distinct receipts in the history: 01 enroute, delivered; 15 delivered, enroute (its four
    # receipts repeat two, and a repeat adds no entry).
    receipts = {"+4915112345601": 2, "+4915112345615": 2}
    paths: dict[str, str] = {}
    for to, count in receipts.items():
        mid = unique("final")
        paths[mid] = f"/_sim/callback/{mid}"
        client.send(to=to, message_id=mid, callback_url=f"{client.sim}{paths[mid]}")

        def all_receipts(record: dict[str, Any], count: int = count) -> bool:
            applied = [h for h in record["history"] if h.get("source", "").startswith("receipt:")]
            return len(applied) >= count

        client.wait_for(mid, all_receipts)
    for path in paths.values():
        wait_calls(client, path, lambda calls: len(calls) >= 1)
    time.sleep(3)  # repeated and reordered receipts have had time to cause a second callback
    for mid, path in paths.items():
        (call,) = client.callbacks(path)
        assert signed(call)
        body = call["json"]
        assert body["message_id"] == mid
        assert body["status"] == "delivered"
        assert body["status_changed_at"] == client.get(mid)["status_changed_at"]
    record = client.get(list(paths)[1])
    receipts_15 = [
        h["status"] for h in record["history"] if h.get("source", "").startswith("receipt:")
    ]
    assert receipts_15 == ["delivered", "enroute"]  # out of order: the enroute came after


def test_all_sends_intermediate_statuses_then_delivered_in_order(client: Client) -> None:
    mid = unique("all")
    path = f"/_sim/callback/{mid}"
    client.send(
        to="+4915112345602",
        message_id=mid,
        callback_url=f"{client.sim}{path}",
        callback_events="all",
    )
    client.wait_status(mid, "delivered")
    calls = wait_calls(client, path, lambda c: "delivered" in statuses(c))
    time.sleep(2)
    calls = client.callbacks(path)
    seen = statuses(calls)
    assert seen[-1] == "delivered"
    assert len(seen) >= 2 and set(seen[:-1]) <= {"submitted", "enroute"}
    assert [RANK[s] for s in seen] == sorted(RANK[s] for s in seen)
    assert len(seen) == len(set(seen))
    assert all(signed(c) and c["json"]["message_id"] == mid for c in calls)


def test_alternate_delivery_all_hears_forwarded_then_the_alternates_delivered(
    client: Client,
) -> None:
    mid = unique("alt-all")
    path = f"/_sim/callback/{mid}"
    client.send(
        to="+18475551218",
        message_id=mid,
        alternate_delivery=True,
        callback_url=f"{client.sim}{path}",
        callback_events="all",
    )
    calls = wait_calls(client, path, lambda c: "delivered" in statuses(c))
    seen = statuses(calls)
    assert "forwarded" in seen
    assert seen.index("forwarded") < seen.index("delivered")
    assert [RANK[s] for s in seen if s != "forwarded"][-1] == RANK["delivered"]
    forwarded = calls[seen.index("forwarded")]["json"]
    delivered = calls[seen.index("delivered")]["json"]
    original = client.get(mid)
    assert forwarded["forwarded_to"] == original["forwarded_to"]
    assert delivered["forwarded_from"] == original["id"]
    assert {c["json"]["message_id"] for c in calls} == {mid}
    # After `forwarded`, only the alternate's statuses.
    assert all(c["json"]["forwarded_from"] for c in calls[seen.index("forwarded") + 1 :])
    assert all(signed(c) for c in calls)


def test_alternate_delivery_final_hears_one_delivered(client: Client) -> None:
    mid = unique("alt-final")
    path = f"/_sim/callback/{mid}"
    client.send(
        to="+18475551218",
        message_id=mid,
        alternate_delivery=True,
        callback_url=f"{client.sim}{path}",
    )
    wait_calls(client, path, lambda c: len(c) >= 1)
    time.sleep(3)
    (call,) = client.callbacks(path)
    assert call["json"]["status"] == "delivered"
    assert call["json"]["message_id"] == mid
    assert call["json"]["forwarded_from"]
    assert signed(call)


def _dead_lettered(client: Client, message_id: str) -> list[dict[str, Any]]:
    sqs = client.stack.clients.sqs
    url = client.stack.queue_url("NotifyDeadLetterQueue")
    found: list[dict[str, Any]] = []
    for _ in range(5):
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        for message in answer.get("Messages", []):
            body = json.loads(message["Body"])
            if body.get("message_id") == message_id and body not in found:
                found.append(body)
    return found


def test_failing_endpoints_are_retried_with_back_off_without_holding_up_a_healthy_one(
    client: Client,
) -> None:
    ids = {name: unique(name) for name in ("fail3", "always", "healthy")}
    urls = {
        "fail3": f"/_sim/callback/{ids['fail3']}?fail=3",
        "always": f"/_sim/callback/{ids['always']}?fail=always",
        "healthy": f"/_sim/callback/{ids['healthy']}",
    }
    answer = client.http.post(
        f"{client.api}/v1/messages",
        json={
            "messages": [
                {
                    "message_id": ids[name],
                    "to": "+4915112345603",
                    "text": "hello",
                    "callback_url": f"{client.sim}{urls[name]}",
                }
                for name in ids
            ]
        },
        headers={"Authorization": "Bearer demo-token"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    healthy = wait_calls(client, f"/_sim/callback/{ids['healthy']}", lambda c: len(c) >= 1)
    assert healthy[0]["answered"] == 200
    fail3 = wait_calls(client, f"/_sim/callback/{ids['fail3']}", lambda c: len(c) >= 4, timeout=45)
    always = wait_calls(
        client, f"/_sim/callback/{ids['always']}", lambda c: len(c) >= 4, timeout=45
    )
    deadline = time.monotonic() + 20
    while not _dead_lettered(client, ids["always"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(6)  # a fifth try would have come by now (the back-off is 1, 2, 4 s)
    fail3 = client.callbacks(f"/_sim/callback/{ids['fail3']}")
    always = client.callbacks(f"/_sim/callback/{ids['always']}")
    assert [c["answered"] for c in fail3] == [500, 500, 500, 200]
    # Every try is signed afresh, under the one event id of the status change.
    assert all(signed(c) for c in fail3)
    assert len({header(c, webhook_signature.EVENT_ID_HEADER) for c in fail3}) == 1
    assert [c["answered"] for c in always] == [503, 503, 503, 503]
    (dead,) = _dead_lettered(client, ids["always"])
    assert dead["status"] == "delivered"
    assert len(client.callbacks(f"/_sim/callback/{ids['healthy']}")) == 1


def _ofsc_calls(client: Client, ids: set[str]) -> list[dict[str, Any]]:
    return [
        call
        for call in client.callbacks("/_sim/ofsc")
        if any(m.get("message_id") in ids for m in call["messages"])
    ]


def test_ofsc_hears_one_final_status_per_message_in_batched_set_message_status_calls(
    client: Client,
) -> None:
    endings = ["01", "11", "02", "12", "16", "19"]
    expected: dict[str, str] = {}
    never_submitted: set[str] = set()
    messages = []
    for i in range(30):
        ending = endings[i % len(endings)]
        mid = unique(f"ofsc{i}")
        to = (
            f"+52551234{56 + i % 3}{ending}"
            if i % 5 == 0 and ending in ("01", "11")
            else (f"+49151123{i:03d}{ending}")
        )
        expected[mid] = "delivered" if ending in ("01", "02", "19") else "failed"
        if ending == "12":
            never_submitted.add(mid)
        messages.append(
            f"<urn:message><urn:message_id>{mid}</urn:message_id>"
            f"<urn:address>{to}</urn:address><urn:body>Visit at 10:00</urn:body></urn:message>"
        )
    answer = requests.post(
        f"{client.api}/ofsc",
        data=ENVELOPE.format(op="send_message", messages="".join(messages)),
        headers={"Authorization": OFSC, "Content-Type": "text/xml"},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    root = ET.fromstring(answer.content)
    assert len([e for e in root.iter() if e.tag.endswith("}message_response")]) == 30

    ids = set(expected)

    def everyone_heard(calls: list[dict[str, Any]]) -> bool:
        return ids <= {m["message_id"] for c in calls for m in c["messages"]}

    deadline = time.monotonic() + 40
    calls = _ofsc_calls(client, ids)
    while not everyone_heard(calls):
        assert time.monotonic() < deadline, f"not every message heard: {calls}"
        time.sleep(0.5)
        calls = _ofsc_calls(client, ids)
    time.sleep(3)
    calls = _ofsc_calls(client, ids)

    heard = [m for c in calls for m in c["messages"] if m["message_id"] in ids]
    assert sorted(m["message_id"] for m in heard) == sorted(ids)  # exactly one each
    for message in heard:
        assert message["status"] == expected[message["message_id"]], message
        # `sent` is the submission time, on every final of a submitted message (seed).
        if message["message_id"] in never_submitted:
            assert "sent" not in message, message
        else:
            assert datetime.strptime(message["sent"], "%Y-%m-%dT%H:%M:%S+00:00"), message
        if message["status"] != "delivered":
            assert message["description"]
    assert all(len(c["messages"]) <= 100 for c in calls)
    assert len(calls) < len(ids)
    for call in calls:
        user = call["user"]
        assert call["operation"] == "set_message_status"
        assert user["login"] == "ofsc" and user["company"]
        inner = hashlib.sha256(
            ("ofsc-secret" + hashlib.sha256(b"ofsc").hexdigest()).encode()
        ).hexdigest()
        assert user["auth_string"] == hashlib.sha256((user["now"] + inner).encode()).hexdigest()
        sent_at = datetime.fromisoformat(user["now"])
        assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 120


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hook",
        "http://[::1]:22/",
        "file:///etc/passwd",
        "ftp://example.com/hook",
        "not a url",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:127.0.0.1]/hook",
    ],
)
def test_a_callback_url_that_reaches_inside_is_422_and_stores_nothing(
    client: Client, url: str
) -> None:
    mid = unique("ssrf")
    answer = client.http.post(
        f"{client.api}/v1/messages",
        json={"message_id": mid, "to": "+4915112345601", "text": "x", "callback_url": url},
        headers={"Authorization": "Bearer demo-token"},
        timeout=10,
    )
    assert answer.status_code == 422, answer.text
    assert "callback_url" in answer.text
    missing = client.http.get(
        f"{client.api}/v1/messages/{mid}",
        headers={"Authorization": "Bearer demo-token"},
        timeout=10,
    )
    assert missing.status_code == 404
