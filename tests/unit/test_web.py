"""The neutral HTTP request: auth headers, form bodies, content type."""

from __future__ import annotations

import base64

import pytest

from smsbridge.web import HttpAnswer, HttpRequest


def _request(headers: dict[str, str] | None = None, body: bytes = b"") -> HttpRequest:
    return HttpRequest(method="POST", path="/dlr/smartswitch", headers=headers or {}, body=body)


def _basic(credentials: str | bytes) -> str:
    raw = credentials.encode("utf-8") if isinstance(credentials, str) else credentials
    return "Basic " + base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (_basic("ofsc:ofsc-secret"), ("ofsc", "ofsc-secret")),
        (_basic("user:pa:ss:word"), ("user", "pa:ss:word")),
        (_basic("user:"), ("user", "")),
        (_basic(":secret"), ("", "secret")),
        (_basic("usuario:contraseña"), ("usuario", "contraseña")),
        ("basic " + base64.b64encode(b"a:b").decode(), ("a", "b")),
        ("BASIC  " + base64.b64encode(b"a:b").decode() + " ", ("a", "b")),
    ],
)
def test_basic_auth(header: str, expected: tuple[str, str]) -> None:
    assert _request({"authorization": header}).basic_auth() == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        _basic("no-colon"),
        _basic(b"\xff\xfe:latin"),
        "Bearer demo-token",
        "Digest username=ofsc",
    ],
)
def test_basic_auth_absent_or_malformed(header: str) -> None:
    assert _request({"authorization": header}).basic_auth() is None


def test_basic_auth_without_a_header() -> None:
    assert _request().basic_auth() is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer demo-token", "demo-token"),
        ("bearer demo-token", "demo-token"),
        ("BEARER  demo-token ", "demo-token"),
        ("Bearer ", None),
        ("Bearer", None),
        (_basic("demo:demo-token"), None),
        ("Token demo-token", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, expected: str | None) -> None:
    assert _request({"authorization": header}).bearer_token() == expected


def test_bearer_token_without_a_header() -> None:
    assert _request().bearer_token() is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", "application/json"),
        ("application/x-www-form-urlencoded; charset=UTF-8", "application/x-www-form-urlencoded"),
        ("Text/XML; charset=utf-8", "text/xml"),
        (" application/vnd.api+json ", "application/vnd.api+json"),
        ("", ""),
    ],
)
def test_content_type(header: str, expected: str) -> None:
    assert _request({"content-type": header}).content_type == expected


def test_content_type_absent() -> None:
    assert _request().content_type == ""


def test_form_keeps_order_and_repeated_names() -> None:
    body = (
        b"_login=smartswitch&_password=smartswitch-secret"
        b"&message_id=1561370632513&message_state=delivered&request_id=1"
        b"&message_id=1561370632522&message_state=delivered&request_id=2"
    )
    assert _request(body=body).form() == [
        ("_login", "smartswitch"),
        ("_password", "smartswitch-secret"),
        ("message_id", "1561370632513"),
        ("message_state", "delivered"),
        ("request_id", "1"),
        ("message_id", "1561370632522"),
        ("message_state", "delivered"),
        ("request_id", "2"),
    ]


def test_form_decodes_escapes_and_keeps_blank_values() -> None:
    body = b"text=Hola+mundo%21&empty=&sign=%E2%82%AC&plus=%2B380"
    assert _request(body=body).form() == [
        ("text", "Hola mundo!"),
        ("empty", ""),
        ("sign", "\u20ac"),
        ("plus", "+380"),
    ]


def test_form_of_an_empty_or_undecodable_body() -> None:
    assert _request().form() == []
    assert _request(body=b"a=\xff").form() == [("a", "\ufffd")]


def test_query_keeps_repeated_names() -> None:
    request = HttpRequest(
        method="POST",
        path="/dlr/smartswitch",
        query=[("message_id", "1"), ("message_id", "2")],
    )
    assert [value for name, value in request.query if name == "message_id"] == ["1", "2"]


def test_answer_defaults() -> None:
    answer = HttpAnswer(200)
    assert answer.body == ""
    assert answer.content_type == "text/plain; charset=utf-8"
    assert answer.headers == {}
