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


def test_a_receipt_answers_503_so_the_carrier_posts_it_again(broken_store: Stack) -> None:
    event = http_event(
        "POST",
        "/dlr/smartswitch",
        body="{}",
        headers={"Content-Type": "application/json"},
        path_parameters={"carrier": "smartswitch"},
    )
    answer = broken_store.invoke(broken_store.handler_once("dlr_webhook"), event)
    assert answer["statusCode"] == 503
    assert answer["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert answer["body"] == "temporarily unavailable"
