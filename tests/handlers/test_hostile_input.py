"""Hostile and careless input through the handlers: every refusal is a 4xx (or a SOAP Client
fault) in the route's own format, never a server error; every accepted id can be read back."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode
from xml.etree import ElementTree as ET

import pytest

from local.api import http_event
from tests.handlers.conftest import Stack
from tests.handlers.test_ofsc import ENVELOPE, OK, by_id, send_message, texts
from tests.support import basic, bearer


def ofsc_call(stack: Stack, body: str | bytes, auth: str | None = OK) -> dict[str, Any]:
    headers = {"Content-Type": "text/xml"}
    if auth is not None:
        headers["Authorization"] = auth
    return stack.invoke(
        stack.handler("send_message"), http_event("POST", "/ofsc", body=body, headers=headers)
    )


def client_fault(answer: dict[str, Any]) -> str:
    """The faultstring of a SOAP Client fault (fails on anything else)."""
    root = ET.fromstring(answer["body"])
    assert texts(root, "faultcode") == ["soapenv:Client"], answer["body"]
    assert "Traceback" not in answer["body"]
    return texts(root, "faultstring")[0]


def one_message(message_id: str, address: str, body: str) -> str:
    return ENVELOPE.format(
        body="<urn:send_message><urn:messages><urn:message>"
        f"<urn:message_id>{message_id}</urn:message_id><urn:address>{address}</urn:address>"
        f"<urn:body>{body}</urn:body></urn:message></urn:messages></urn:send_message>"
    )


# --- /ofsc: decoding, depth, authentication before parsing, namespace, ids, text -------------


@pytest.mark.parametrize(
    "body",
    [
        b"\xb2",
        send_message(["x"], ["+4915112345601"]).encode().replace(b"technician", b"t\xe9chnician"),
    ],
)
def test_ofsc_undecodable_bodies_are_client_faults(stack: Stack, body: bytes) -> None:
    answer = ofsc_call(stack, body)
    assert answer["statusCode"] == 500  # SOAP 1.1: a fault travels with HTTP 500
    assert "not valid utf-8" in client_fault(answer)
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0


def test_ofsc_a_latin1_document_that_says_so_is_read_in_latin1(stack: Stack) -> None:
    document = one_message("latin-1", "+4915112345601", "Caf\xe9 at 10:00").replace(
        'encoding="UTF-8"', 'encoding="ISO-8859-1"'
    )
    answer = ofsc_call(stack, document.encode("latin-1"))
    assert answer["statusCode"] == 200, answer["body"]
    assert texts(ET.fromstring(answer["body"]), "status") == ["sending"]
    (row,) = stack.dynamodb.scan(TableName=stack.table)["Items"]
    assert row["text"]["S"] == "Caf\xe9 at 10:00"


def test_ofsc_a_deeply_nested_body_is_a_client_fault(stack: Stack) -> None:
    nested = "<b>" * 1_000 + "x" + "</b>" * 1_000
    answer = ofsc_call(stack, one_message("deep", "+4915112345601", nested))
    assert answer["statusCode"] == 500
    assert "deeper than" in client_fault(answer)
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0


def test_ofsc_wrong_basic_credentials_are_refused_before_the_body_is_read(stack: Stack) -> None:
    answer = ofsc_call(stack, b"\xb2 not even xml", auth=basic("ofsc", "wrong"))
    assert answer["statusCode"] == 401
    assert client_fault(answer) == "authentication failed"


def test_ofsc_an_operation_outside_the_toatech_namespace_is_a_client_fault(stack: Stack) -> None:
    document = send_message(["ns-1"], ["+4915112345601"]).replace(
        'xmlns:urn="urn:toatech:agent"', 'xmlns:urn="urn:someone:else"'
    )
    answer = ofsc_call(stack, document)
    assert answer["statusCode"] == 500
    assert "namespace" in client_fault(answer)
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0


def test_ofsc_a_message_id_over_64_characters_fails_and_is_not_stored(stack: Stack) -> None:
    long_id = "x" * 100_000
    answer = ofsc_call(stack, send_message([long_id, "fine-1"], ["+4915112345601"] * 2))
    assert answer["statusCode"] == 200
    root = ET.fromstring(answer["body"])
    assert texts(root, "status") == ["failed", "sending"]
    assert "64 characters" in texts(root, "description")[0]
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 1
    status = ofsc_call(stack, by_id("get_message_status", [long_id]))
    assert texts(ET.fromstring(status["body"]), "code") == ["NOT FOUND"]


def test_ofsc_text_with_a_nul_fails_with_a_description_and_is_never_queued(stack: Stack) -> None:
    body = json.dumps({"to": "+4915112345601", "text": "pay\u0000load"})
    answer = ofsc_call(stack, one_message("nul-1", "", body))
    root = ET.fromstring(answer["body"])
    assert texts(root, "status") == ["failed"]
    assert "control character" in texts(root, "description")[0]
    assert stack.receive() == []


# --- /v1/messages: decoding and depth ---------------------------------------------------------


def json_call(stack: Stack, method: str, path: str, body: str | bytes = "") -> dict[str, Any]:
    return stack.invoke(
        stack.handler("send_message"),
        http_event(method, path, route=path, body=body, headers=bearer()),
    )


def refusal(answer: dict[str, Any], status: int) -> dict[str, Any]:
    assert answer["statusCode"] == status, answer["body"]
    assert answer["headers"]["Content-Type"].startswith("application/json")
    document: dict[str, Any] = json.loads(answer["body"])
    return document


@pytest.mark.parametrize(
    "body",
    [
        b'{"to": "+4915112345601", "text": "caf\xe9"}',
        b"\xb2",
        "[" * 1_500 + "]" * 1_500,
        '{"messages": ' + "[" * 1_100 + "]" * 1_100 + "}",
        '{"to": "+4915112345601", "text": "hi", "validity_minutes": ' + "9" * 5_000 + "}",
    ],
)
def test_json_non_utf8_or_deep_bodies_are_422(stack: Stack, body: str | bytes) -> None:
    document = refusal(json_call(stack, "POST", "/v1/messages", body), 422)
    assert document["detail"][0]["loc"] == ["body"]
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0


# --- ids: one rule, percent-decoded paths ----------------------------------------------------

ODD_IDS = ["sp ace", "a/b", "what?", "100%", "caf\xe9-\u043a\u0438\u0457\u0432", "sp%20ace", "#1"]


def test_every_accepted_id_can_be_read_and_cancelled(stack: Stack) -> None:
    for message_id in ODD_IDS:
        body = json.dumps({"message_id": message_id, "to": "+4915112345601", "text": "hi"})
        assert json_call(stack, "POST", "/v1/messages", body)["statusCode"] == 202
    for message_id in ODD_IDS:
        path = "/v1/messages/" + quote(message_id, safe="")
        found = json_call(stack, "GET", path)
        assert found["statusCode"] == 200, (message_id, found["body"])
        assert json.loads(found["body"])["message_id"] == message_id
        cancelled = json_call(stack, "DELETE", path)
        assert cancelled["statusCode"] == 200, (message_id, cancelled["body"])
        assert json.loads(cancelled["body"])["status"] == "cancelled"


def test_a_percent_encoded_path_finds_the_decoded_id_not_the_literal_one(stack: Stack) -> None:
    for message_id in ("sp ace", "sp%20ace"):
        body = json.dumps({"message_id": message_id, "to": "+4915112345601", "text": "hi"})
        json_call(stack, "POST", "/v1/messages", body)
    found = json.loads(json_call(stack, "GET", "/v1/messages/sp%20ace")["body"])
    assert found["message_id"] == "sp ace"
    found = json.loads(json_call(stack, "GET", "/v1/messages/sp%2520ace")["body"])
    assert found["message_id"] == "sp%20ace"


@pytest.mark.parametrize(
    "message_id", ["x" * 65, "nul\u0000", "tab\tid", " lead", "trail ", "bell\u0007", "\u0085"]
)
def test_json_ids_outside_the_rule_are_422(stack: Stack, message_id: str) -> None:
    body = json.dumps({"message_id": message_id, "to": "+4915112345601", "text": "hi"})
    document = refusal(json_call(stack, "POST", "/v1/messages", body), 422)
    assert document["detail"][0]["loc"][-1] == "message_id"
    path = "/v1/messages/" + quote(message_id, safe="")
    refusal(json_call(stack, "GET", path), 422)
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0


@pytest.mark.parametrize("text", ["pay\u0000load", "esc\u001b[31m", "\u007f", "lone \ud800"])
def test_json_text_with_control_characters_is_422(stack: Stack, text: str) -> None:
    body = json.dumps({"message_id": "ctl", "to": "+4915112345601", "text": text})
    document = refusal(json_call(stack, "POST", "/v1/messages", body), 422)
    assert document["detail"][0]["loc"][-1] == "text"
    assert stack.receive() == []


def test_a_path_id_that_is_not_utf8_is_422(stack: Stack) -> None:
    refusal(json_call(stack, "GET", "/v1/messages/%FF%FE"), 422)


# --- receipts: out-of-range fields are 400 in the format's shape ------------------------------

LONG_ID = "9" * 3_000
SMARTSWITCH_AUTH = {"_login": "smartswitch", "_password": "smartswitch-secret"}


def dlr(stack: Stack, carrier: str, **kwargs: Any) -> dict[str, Any]:
    return stack.invoke(
        stack.handler("dlr_webhook"),
        http_event(
            "POST",
            f"/dlr/{carrier}",
            route="/dlr/{carrier}",
            path_parameters={"carrier": carrier},
            **kwargs,
        ),
    )


def test_smartswitch_an_over_long_carrier_id_is_a_json_api_400(stack: Stack) -> None:
    query = urlencode({"message_id": LONG_ID, "message_state": "delivered", **SMARTSWITCH_AUTH})
    answer = dlr(stack, "smartswitch", query=query)
    assert answer["statusCode"] == 400
    assert "longer than" in json.loads(answer["body"])["errors"][0]["detail"]


@pytest.mark.parametrize(
    "receipt",
    [
        {"messageId": LONG_ID, "statusDelivery": "DELIVERED", "sendDate": 1700000000000},
        {"messageId": "123", "statusDelivery": "DELIVERED", "sendDate": "9" * 5_000},
        {"messageId": "123", "statusDelivery": "DELIVERED", "sendDate": 1, "doneDate": "1" * 5000},
        {"messageId": "12\u0000", "statusDelivery": "DELIVERED", "sendDate": 1700000000000},
        {"messageId": "\ud800", "statusDelivery": "DELIVERED", "sendDate": 1700000000000},
    ],
)
def test_conceptomovil_out_of_range_fields_are_a_plain_400(
    stack: Stack, receipt: dict[str, Any]
) -> None:
    answer = dlr(
        stack,
        "conceptomovil",
        body=json.dumps(receipt),
        headers={
            "Authorization": basic("conceptomovil", "conceptomovil-secret"),
            "Content-Type": "application/json",
        },
    )
    assert answer["statusCode"] == 400, answer["body"]
    assert answer["body"] and "temporarily" not in answer["body"]


@pytest.mark.parametrize("attribute", ["messageId", "fwdToMessageId", "fwdFromMessageId"])
def test_vibes_an_over_long_carrier_id_is_a_400(stack: Stack, attribute: str) -> None:
    ids = {"messageId": "abc", attribute: LONG_ID}
    attributes = " ".join(f'{name}="{value}"' for name, value in ids.items())
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?><mtMessageResponse {attributes}>'
        '<type>Handset</type><status isError="false"><description>ok</description></status>'
        "</mtMessageResponse>"
    )
    answer = dlr(
        stack,
        "vibes",
        body=document,
        headers={"Authorization": basic("vibes", "vibes-secret"), "Content-Type": "text/xml"},
    )
    assert answer["statusCode"] == 400, answer["body"]
    assert "longer than" in answer["body"]


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
)
def test_json_bodies_are_read_as_json_whatever_their_declared_type(
    stack: Stack, content_type: str
) -> None:
    headers = {**bearer(), "Content-Type": content_type}
    handler = stack.handler("send_message")
    answer = stack.invoke(
        handler, http_event("POST", "/v1/messages", body="\u0100", headers=headers)
    )
    refusal(answer, 422)
    message = json.dumps({"message_id": "typed", "to": "+4915112345601", "text": "hi"})
    answer = stack.invoke(
        handler, http_event("POST", "/v1/messages", body=message, headers=headers)
    )
    assert answer["statusCode"] == 202, answer["body"]
