"""Every path of SPEC 9's magic numbers, through the real HTTP API and the simulator."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

import pytest
import requests

from tests.e2e.conftest import Client

pytestmark = pytest.mark.e2e


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_health(client: Client) -> None:
    answer = requests.get(f"{client.api}/health", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_swagger_ui_and_openapi_document_are_served(client: Client) -> None:
    assert "swagger" in requests.get(f"{client.api}/v1/docs", timeout=10).text.lower()
    document = requests.get(f"{client.api}/v1/docs.json", timeout=10).json()
    assert "/v1/messages" in document["paths"]


def test_an_ip2sms_message_is_submitted_then_delivered_by_polling(client: Client) -> None:
    mid = unique("ip2sms")
    answer = client.send(to="+380671234501", message_id=mid)
    assert answer["status"] == "sending"
    record = client.wait_status(mid, "submitted", "enroute", "delivered", timeout=10)
    (taken,) = client.submissions(record["id"])
    assert record["gateway_id"] == taken["gateway_id"]
    record = client.wait_status(mid, "delivered")
    assert any(h.get("source") == "poll:ip2sms" for h in record["history"])


@pytest.mark.parametrize(
    ("to", "carrier"),
    [
        ("+4915112345601", "smartswitch"),
        ("+525512345601", "conceptomovil"),
        ("+18475551201", "vibes"),
    ],
)
def test_default_numbers_end_delivered_through_receipts(
    client: Client, to: str, carrier: str
) -> None:
    mid = unique(carrier)
    client.send(to=to, message_id=mid)
    record = client.wait_status(mid, "delivered")
    assert record["carrier"] == carrier
    assert any(h.get("source") == f"receipt:{carrier}" for h in record["history"])
    assert record["delivered_at"]


@pytest.mark.parametrize(
    ("to", "final"),
    [
        ("+4915112345611", "undeliverable"),
        ("+4915112345616", "expired"),
        ("+380671234511", "undeliverable"),
        ("+380671234516", "expired"),
        ("+4915112345619", "delivered"),
    ],
)
def test_failures_and_the_early_receipt_end_in_their_final_status(
    client: Client, to: str, final: str
) -> None:
    mid = unique("final")
    client.send(to=to, message_id=mid)
    client.wait_status(mid, final)


def test_repeated_and_reordered_receipts_end_delivered_with_each_distinct_one_in_history(
    client: Client,
) -> None:
    mid = unique("reorder")
    client.send(to="+4915112345615", message_id=mid)
    record = client.wait_for(
        mid,
        lambda r: sum(h.get("source") == "receipt:smartswitch" for h in r["history"]) == 2,
    )
    assert record["status"] == "delivered"
    # The four receipts (delivered, enroute, delivered, enroute) repeat two: they add nothing.
    time.sleep(1.0)
    record = client.get(mid)
    receipts = [h["status"] for h in record["history"] if h.get("source") == "receipt:smartswitch"]
    assert receipts == ["delivered", "enroute"]
    assert record["status"] == "delivered"


def test_a_permanent_reject_fails(client: Client) -> None:
    mid = unique("reject")
    client.send(to="+4915112345612", message_id=mid)
    record = client.wait_status(mid, "failed")
    assert record["description"]


def test_503_twice_is_submitted_on_the_third_try(client: Client) -> None:
    mid = unique("busy")
    client.send(to="+4915112345613", message_id=mid)
    record = client.wait_status(mid, "delivered", timeout=30)
    tries = client.submissions(record["id"])
    assert len(tries) == 3
    assert record["attempts"] == 3


def test_late_answers_reuse_the_reference_and_send_one_sms(client: Client) -> None:
    mid = unique("late")
    client.send(to="+4915112345617", message_id=mid)
    record = client.wait_status(mid, "delivered", timeout=40)
    tries = client.submissions(record["id"])
    assert len(tries) == 3
    assert sum(t["taken"] for t in tries) == 1
    assert {t["reference"] for t in tries} == {record["id"]}


def test_no_final_status_ends_terminated_after_the_time_out(client: Client) -> None:
    mid = unique("silent")
    client.send(to="+380671234514", message_id=mid)
    record = client.wait_status(mid, "terminated", timeout=40)
    assert "no final status" in record["description"]


def test_alternate_delivery_forwards_a_short_code_failure_to_the_long_code(client: Client) -> None:
    mid = unique("alt")
    client.send(to="+18475551218", message_id=mid, alternate_delivery=True)
    original = client.wait_status(mid, "forwarded")
    assert original["forwarded_to"]
    # The alternate is queued when the original becomes forwarded; dispatch submits it next.
    deadline = time.monotonic() + 10
    alternate = client.submissions(original["forwarded_to"])
    while not alternate and time.monotonic() < deadline:
        time.sleep(0.2)
        alternate = client.submissions(original["forwarded_to"])
    assert alternate and alternate[0]["carrier"] == "vibes-longcode"


OFSC = "Basic " + base64.b64encode(b"ofsc:ofsc-secret").decode()
ENVELOPE = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:urn="urn:toatech:agent"><soapenv:Body><urn:{op}><urn:messages>{messages}'
    "</urn:messages></urn:{op}></soapenv:Body></soapenv:Envelope>"
)


def ofsc(client: Client, op: str, messages: str) -> ET.Element:
    answer = requests.post(
        f"{client.api}/ofsc",
        data=ENVELOPE.format(op=op, messages=messages),
        headers={"Authorization": OFSC, "Content-Type": "text/xml"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return ET.fromstring(answer.content)


def texts(root: ET.Element, name: str) -> list[str]:
    return [e.text or "" for e in root.iter() if e.tag.rsplit("}", 1)[-1] == name]


def test_ofsc_ten_messages_once_then_status_and_drop(client: Client) -> None:
    ids = [unique("ofsc") for _ in range(10)]
    messages = "".join(
        f"<urn:message><urn:message_id>{mid}</urn:message_id>"
        f"<urn:address>+49151123456{i:02d}</urn:address><urn:body>Visit at 10:00</urn:body>"
        "</urn:message>"
        for i, mid in enumerate(ids)
    )
    start = len(client.submissions())
    root = ofsc(client, "send_message", messages)
    assert texts(root, "status") == ["sending"] * 10
    deadline = time.monotonic() + 15
    while len(client.submissions()) < start + 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(client.submissions()) == start + 10
    root = ofsc(client, "send_message", messages)
    assert len(texts(root, "status")) == 10
    time.sleep(2)
    assert len(client.submissions()) == start + 10
    by_id = "".join(f"<urn:message><urn:message_id>{m}</urn:message_id></urn:message>" for m in ids)
    root = ofsc(client, "get_message_status", by_id)
    assert set(texts(root, "code")) == {"OK"}
    first = f"<urn:message><urn:message_id>{ids[0]}</urn:message_id></urn:message>"
    root = ofsc(client, "drop_message", first)
    assert texts(root, "code") == ["ERROR"]


def test_twenty_conflicting_receipts_in_parallel_obey_the_ordering_rules(client: Client) -> None:
    mid = unique("race")
    client.send(to="+4915112345614", message_id=mid)
    record = client.wait_status(mid, "submitted", "enroute")
    states = ["delivered", "undeliverable", "enroute", "expired", "rejected"] * 4
    barrier = threading.Barrier(len(states))
    answers: list[int] = []

    def post(state: str) -> None:
        query = urlencode(
            {
                "message_id": record["gateway_id"],
                "message_state": state,
                "_login": "smartswitch",
                "_password": "smartswitch-secret",
            }
        )
        barrier.wait()
        answers.append(
            requests.post(f"{client.api}/dlr/smartswitch?{query}", timeout=30).status_code
        )

    threads = [threading.Thread(target=post, args=(s,)) for s in states]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 20
    final = client.get(mid)
    receipts = [h for h in final["history"] if h.get("source") == "receipt:smartswitch"]
    # Each distinct receipt once, however the repeats raced.
    assert sorted(h["status"] for h in receipts) == sorted(set(states))
    assert final["status"] in {"delivered", "undeliverable", "expired", "rejected"}
    # History is in commit order: the first final recorded is the one that stuck.
    first_final = next(h["status"] for h in receipts if h["status"] != "enroute")
    assert final["status"] == first_final
