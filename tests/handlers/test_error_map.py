"""What a route answers when the layer fails unexpectedly: the function's one error map answers
in the route's own format (SOAP Server fault, JSON, plain text), never with a stack trace."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from local.api import http_event
from tests.handlers.conftest import Stack
from tests.handlers.test_ofsc import OK, send_message, texts
from tests.support import bearer


class Broken(RuntimeError):
    """A failure no route expects."""


@pytest.fixture
def broken_store(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for name in ("send_message", "dlr_webhook"):

        def tracker() -> None:
            raise Broken("/secret/path.py line 1")

        monkeypatch.setattr(stack.handler_once(name).runtime, "tracker", tracker)
    return stack


def test_ofsc_answers_a_soap_server_fault(broken_store: Stack) -> None:
    event = http_event(
        "POST",
        "/ofsc",
        body=send_message(["m1"], ["+4915112345601"]),
        headers={"Content-Type": "text/xml", "Authorization": OK},
    )
    answer = broken_store.invoke(broken_store.handler_once("send_message"), event)
    assert answer["statusCode"] == 500
    assert answer["headers"]["Content-Type"] == "text/xml"
    root = ET.fromstring(answer["body"])
    assert texts(root, "faultcode") == ["soapenv:Server"]
    assert texts(root, "faultstring") == ["internal error"]


def test_json_api_answers_a_json_500(broken_store: Stack) -> None:
    event = http_event(
        "POST",
        "/v1/messages",
        body=json.dumps({"to": "+4915112345601", "text": "hi"}),
        headers=bearer(),
    )
    answer = broken_store.invoke(broken_store.handler_once("send_message"), event)
    assert answer["statusCode"] == 500
    assert answer["headers"]["Content-Type"] == "application/json"
    assert json.loads(answer["body"]) == {"message": "internal error"}


def dlr_post(carrier: str, content_type: str = "application/json") -> dict[str, object]:
    return http_event(
        "POST",
        f"/dlr/{carrier}",
        body="{}",
        headers={"Content-Type": content_type},
        path_parameters={"carrier": carrier},
    )


def test_a_smartswitch_receipt_answers_503_in_json_api(broken_store: Stack) -> None:
    """The seed's error format, `{"errors": [{code, title, detail}]}` and never `data`, also
    for an internal error; a 5xx makes the carrier post the receipt again later."""
    answer = broken_store.invoke(broken_store.handler_once("dlr_webhook"), dlr_post("smartswitch"))
    assert answer["statusCode"] == 503
    assert answer["headers"]["Content-Type"] == "application/vnd.api+json"
    assert json.loads(answer["body"]) == {
        "errors": [
            {
                "code": "internal_error",
                "title": "Internal error",
                "detail": "temporarily unavailable",
            }
        ]
    }


@pytest.mark.parametrize(
    ("carrier", "content_type"),
    [("conceptomovil", "application/json"), ("vibes", "application/xml")],
)
def test_other_receipts_answer_503_in_plain_text(
    broken_store: Stack, carrier: str, content_type: str
) -> None:
    answer = broken_store.invoke(
        broken_store.handler_once("dlr_webhook"), dlr_post(carrier, content_type)
    )
    assert answer["statusCode"] == 503
    assert answer["headers"]["Content-Type"].startswith("text/plain")
    assert answer["body"] == "temporarily unavailable"


def test_a_receipt_answers_plain_503_when_the_configuration_cannot_be_read(
    broken_store: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = broken_store.handler_once("dlr_webhook")

    def config() -> None:
        raise Broken("no configuration")

    monkeypatch.setattr(module.runtime, "config", config)
    answer = broken_store.invoke(module, dlr_post("smartswitch"))
    assert answer["statusCode"] == 503
    assert answer["body"].startswith("temporarily unavailable")
