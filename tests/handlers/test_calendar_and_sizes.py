"""Calendar edges and oversized fields through the handlers: each is a bad field answered in the
route's own way (a `failed` message, a SOAP Client fault, the carrier's answer), never a 5xx."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from smsbridge import bounds, ofsc
from smsbridge.models import sms_id_for
from tests.handlers.conftest import Stack, dlr_event
from tests.handlers.test_dlr_webhook import submitted
from tests.handlers.test_hostile_input import client_fault, ofsc_call
from tests.handlers.test_ofsc import ENVELOPE, by_id, texts
from tests.support import basic


def send_with(send_to: str = "", user: str = "", body: str = "Hi") -> str:
    return ENVELOPE.format(
        body=f"<urn:send_message>{user}<urn:messages><urn:message>"
        "<urn:message_id>edge-1</urn:message_id><urn:address>+4915112345678</urn:address>"
        f"<urn:body>{body}</urn:body><urn:send_to>{send_to}</urn:send_to>"
        "</urn:message></urn:messages></urn:send_message>"
    )


@pytest.mark.parametrize(
    "send_to", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-23:59", "2030-01-01 00:00:60"]
)
def test_ofsc_a_send_to_out_of_range_fails_the_message_not_the_call(
    stack: Stack, send_to: str
) -> None:
    answer = ofsc_call(stack, send_with(send_to))
    assert answer["statusCode"] == 200, answer["body"]
    root = ET.fromstring(answer["body"])
    assert texts(root, "status") == ["failed"]
    assert texts(root, "description")[0].startswith("send_to: ")
    assert texts(root, "stop_further_attempts") == ["1"]


def test_ofsc_a_user_now_out_of_range_is_an_authentication_failure(stack: Stack) -> None:
    now = "9999-12-31 14:21:14-23:59"
    auth_string = ofsc.auth_string_sha256(now, "ofsc", "ofsc-secret")
    user = (
        f"<urn:user><urn:now>{now}</urn:now><urn:login>ofsc</urn:login>"
        f"<urn:company>acme</urn:company><urn:auth_string>{auth_string}</urn:auth_string></urn:user>"
    )
    answer = ofsc_call(stack, send_with(user=user), auth=None)
    assert answer["statusCode"] == 401
    assert client_fault(answer) == "authentication failed"


def test_vibes_a_receipt_date_out_of_range_is_kept_as_text_and_the_receipt_applied(
    stack: Stack,
) -> None:
    record = submitted(stack, "+18475551209", "edge-vibes")
    raw = "0001-01-01T00:00:00+14:00"
    body = (
        f'<mtMessageResponse messageId="{record["gateway_id"]}" receiptDate="{raw}">'
        '<type>Handset</type><status isError="false"><description>d</description></status>'
        "</mtMessageResponse>"
    )
    event = dlr_event(
        "vibes", query="token=vibes-secret", body=body, headers={"content-type": "text/xml"}
    )
    answer = stack.invoke(stack.handler("dlr_webhook"), event)
    assert answer["statusCode"] == 200
    after = stack.item(record["id"])
    assert after is not None
    assert after["status"] == "delivered"
    assert after["history"][-1]["carrier_time_text"] == raw


def test_conceptomovil_a_300_character_operator_is_cut_and_marked(stack: Stack) -> None:
    record = submitted(stack, "+525512345609", "edge-operator")
    operator = "Operadora Móvil " * 19  # 304 characters
    receipt = {
        "messageId": int(record["gateway_id"]),
        "statusDelivery": "DELIVERED",
        "sendDate": 1588694204000,
        "carrier": operator,
    }
    headers = {
        "content-type": "application/json",
        "authorization": basic("conceptomovil", "conceptomovil-secret"),
    }
    answer = stack.invoke(
        stack.handler("dlr_webhook"),
        dlr_event("conceptomovil", body=json.dumps(receipt), headers=headers),
    )
    assert (answer["statusCode"], answer["body"]) == (200, "OK")
    after = stack.item(record["id"])
    assert after is not None
    stored = after["operator"]
    assert stored.endswith(bounds.CUT_MARK)
    assert operator.startswith(stored.removesuffix(bounds.CUT_MARK))
    assert len(stored) == bounds.OPERATOR.chars
    assert after["history"][-1]["operator"] == stored


@pytest.mark.parametrize(("ensure_ascii", "count"), [(False, 80_000), (True, 40_000)])
def test_ofsc_a_long_non_ascii_sender_in_a_json_body_fails_the_message(
    stack: Stack, ensure_ascii: bool, count: int
) -> None:
    sender = "中" * count
    body = json.dumps(
        {"to": "+4915112345678", "text": "Hi", "sender": sender}, ensure_ascii=ensure_ascii
    )
    answer = ofsc_call(stack, send_with(body=body))
    assert answer["statusCode"] == 200, answer["body"][:300]
    root = ET.fromstring(answer["body"])
    assert texts(root, "status") == ["failed"]
    assert texts(root, "description") == ["unreadable message: sender is over 16 characters"]
    record = stack.item(sms_id_for("ofsc", "edge-1"))
    assert record is not None
    assert "中" not in record["sender"] and "中" not in record["description"]


def test_ofsc_a_call_over_the_largest_batch_is_413_before_any_work(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ofsc.MAX_MESSAGES, "drop_message", 3)
    answer = ofsc_call(stack, by_id("drop_message", ["a", "b", "c", "d"]))
    assert answer["statusCode"] == 413
    assert client_fault(answer) == "drop_message carries at most 3 messages"
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0
