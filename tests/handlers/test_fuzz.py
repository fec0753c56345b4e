"""Hostile bodies, headers and paths against every HTTP route, through the real handlers.

Each answer must be a 2xx-4xx (SOAP 1.1 faults travel with HTTP 500: those must be `Client`
faults), carry no traceback, and refuse in the route's own format. `make test` runs a few
hundred cases; `make fuzz` (FUZZ_EXAMPLES=2000) runs over 10,000 and prints the count per route.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.api import http_event
from tests.handlers.conftest import Stack, dlr_event
from tests.support import basic

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTS: Counter[str] = Counter()

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
URN = "urn:toatech:agent"
CARRIER_AUTH = {
    "smartswitch": basic("smartswitch", "smartswitch-secret"),
    "conceptomovil": basic("conceptomovil", "conceptomovil-secret"),
    "vibes": basic("vibes", "vibes-secret"),
}

# --- strategies -------------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",
            "\u202e",
            "%00",
            "%",
            "%ZZ",
            "../..",
            "a/b",
            "<x/>",
            "&amp;",
            "&lol;",
            "]]>",
            '"',
            "'",
            "{}",
            "[]",
            "9" * 5000,
            "x" * 3000,
            "1e999",
            "NaN",
            "-1",
            "+380671234501",
            "0671234501",
            "DELIVERED",
            "delivered",
            "Handset",
            "true",
        ]
    ),
)


@st.composite
def nested(draw: st.DrawFn, open_: str, close: str) -> str:
    depth = draw(st.integers(min_value=1, max_value=3000))
    return open_ * depth + draw(nasty_text) + close * depth


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | nasty_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["to", "text", "message_id", "x"]) | nasty_text, children)
    ),
    max_leaves=12,
)


@st.composite
def json_message(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "to": st.sampled_from(["+380671234501", "+4915112345678", "12"]) | nasty_text,
        "text": nasty_text,
        "message_id": nasty_text,
        "type": st.sampled_from(["text", "2FA", "verification", "bogus"]) | nasty_text,
        "sender": nasty_text,
        "country": st.sampled_from(["UA", "ua", "XX"]) | nasty_text,
        "alternate_delivery": st.booleans() | nasty_text,
        "callback_url": st.sampled_from(["https://example.org/cb"]) | nasty_text,
        "validity_minutes": st.integers() | nasty_text,
    }
    chosen = draw(st.sets(st.sampled_from(sorted(fields)), max_size=len(fields)))
    return {name: draw(fields[name]) for name in chosen}


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def encoded(text: str, encoding: str) -> bytes:
    return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


json_bodies = st.one_of(
    st.binary(max_size=200),
    nasty_text.map(utf8),
    nested("[", "]").map(utf8),
    nested('{"a":', "}").map(utf8),
    json_value.map(lambda v: utf8(json.dumps(v))),
    json_message().map(lambda m: utf8(json.dumps(m))),
    st.lists(json_message(), max_size=4).map(lambda ms: utf8(json.dumps({"messages": ms}))),
    st.tuples(json_message(), st.sampled_from(["latin-1", "utf-16", "utf-8"])).map(
        lambda pair: encoded(json.dumps(pair[0], ensure_ascii=False), pair[1])
    ),
)


@st.composite
def soap_document(draw: st.DrawFn) -> bytes:
    operation = draw(
        st.sampled_from(["send_message", "get_message_status", "drop_message"]) | nasty_text
    )
    namespace = draw(st.sampled_from([URN, URN, "urn:wrong", ""]))
    envelope_ns = draw(st.sampled_from([SOAP, SOAP, "http://www.w3.org/2003/05/soap-envelope"]))
    messages = []
    for _ in range(draw(st.integers(0, 4))):
        body = draw(
            nasty_text
            | nested("<b>", "</b>")
            | json_message().map(json.dumps)
            | st.just("<sms><to>+380671234501</to><text>hi</text></sms>")
        )
        fields = {
            "message_id": draw(nasty_text),
            "address": draw(st.sampled_from(["+380671234501", ""]) | nasty_text),
            "body": body,
            "send_to": draw(st.sampled_from(["", "2030-01-01 00:00:00"]) | nasty_text),
        }
        escape = draw(st.booleans())
        inner = "".join(
            f"<urn:{name}>{_xml_escape(value) if escape else value}</urn:{name}>"
            for name, value in fields.items()
        )
        messages.append(f"<urn:message>{inner}</urn:message>")
    encoding = draw(st.sampled_from(["UTF-8", "ISO-8859-1", "UTF-16", "windows-1252", "bogus"]))
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        f'<soapenv:Envelope xmlns:soapenv="{envelope_ns}" xmlns:urn="{namespace}">'
        f"<soapenv:Body><urn:{operation}><urn:messages>{''.join(messages)}</urn:messages>"
        f"</urn:{operation}></soapenv:Body></soapenv:Envelope>"
    )
    python_encoding = {"bogus": "utf-8"}.get(encoding, encoding)
    return encoded(text, draw(st.sampled_from([python_encoding, "utf-8", "latin-1"])))


def _xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


xml_bodies = st.one_of(
    st.binary(max_size=200),
    nasty_text.map(utf8),
    nested("<a>", "</a>").map(utf8),
    soap_document(),
)


def headers_with(auth: st.SearchStrategy[str | None]) -> st.SearchStrategy[dict[str, str]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, str]:
        headers: dict[str, str] = {}
        value = draw(auth)
        if value is not None:
            headers["authorization"] = value
        content_type = draw(
            st.sampled_from(
                [
                    None,
                    "application/json",
                    "text/xml; charset=utf-8",
                    "application/xml",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                ]
            )
            | nasty_text
        )
        if content_type is not None:
            headers["content-type"] = content_type
        names = st.sampled_from(["x-a", "content-length", "host"])
        extra = draw(st.dictionaries(names, nasty_text))
        return {**extra, **headers}

    return build()


def auth_choice(valid: str) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.just(valid),
        st.just(valid),
        st.none(),
        nasty_text,
        st.sampled_from(["Basic", "Basic !!!", "Bearer", "Basic " + "QQ==" * 10]),
    )


# --- checks -----------------------------------------------------------------------------------


def check_json(route: str, answer: dict[str, Any]) -> None:
    COUNTS[route] += 1
    status = answer["statusCode"]
    body = answer.get("body") or ""
    assert status < 500, (status, body)
    assert "Traceback" not in body
    if status >= 400:
        assert answer["headers"]["Content-Type"].startswith("application/json"), answer
        document = json.loads(body)
        assert "message" in document or "detail" in document, body


def check_soap(answer: dict[str, Any]) -> None:
    COUNTS["POST /ofsc"] += 1
    status = answer["statusCode"]
    body = answer.get("body") or ""
    assert "Traceback" not in body
    if status >= 400:
        assert answer["headers"]["Content-Type"].startswith("text/xml"), answer
        root = ET.fromstring(body)
        codes = [e.text for e in root.iter() if e.tag == "faultcode"]
        assert codes == ["soapenv:Client"], (status, body)
        assert root.tag == f"{{{SOAP}}}Envelope"


def check_receipt(carrier: str, answer: dict[str, Any]) -> None:
    COUNTS[f"POST /dlr/{carrier}"] += 1
    status = answer["statusCode"]
    body = answer.get("body") or ""
    assert status < 500, (status, body)
    assert "Traceback" not in body
    if status < 400:
        return
    if carrier == "smartswitch":
        assert json.loads(body)["errors"][0]["detail"], body
    elif carrier in ("conceptomovil", "vibes", "ip2sms"):
        assert body and "\n" not in body, body  # one plain line
    else:
        assert json.loads(body) == {"message": "Not Found"}


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    if os.environ.get("FUZZ_EXAMPLES"):
        print("\nfuzz cases per route:")
        for route, count in sorted(COUNTS.items()):
            print(f"  {route:28} {count:6}")
        print(f"  {'total':28} {sum(COUNTS.values()):6}")


@pytest.fixture(autouse=True)
def quiet_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "CRITICAL")


# --- the routes -------------------------------------------------------------------------------


@FUZZ
@given(body=json_bodies, headers=headers_with(auth_choice("Bearer demo-token")))
def test_post_messages(stack: Stack, body: bytes, headers: dict[str, str]) -> None:
    handler = stack.handler_once("send_message")
    answer = stack.invoke(handler, http_event("POST", "/v1/messages", body=body, headers=headers))
    check_json("POST /v1/messages", answer)


@FUZZ
@given(
    segment=st.one_of(
        nasty_text.map(lambda s: quote(s, safe="", errors="surrogatepass")),
        nasty_text.filter(lambda s: s and "/" not in s and "?" not in s and "#" not in s),
        st.sampled_from(["%", "%ZZ", "%FF%FE", "%00", "%2F", "a%2Fb", "sp%20ace", "%C3%A9"]),
    ),
    method=st.sampled_from(["GET", "DELETE"]),
    headers=headers_with(auth_choice("Bearer demo-token")),
)
def test_message_paths(stack: Stack, segment: str, method: str, headers: dict[str, str]) -> None:
    handler = stack.handler_once("send_message")
    event = http_event(
        method, f"/v1/messages/{segment}", route="/v1/messages/{message_id}", headers=headers
    )
    check_json(f"{method} /v1/messages/{{id}}", stack.invoke(handler, event))


@FUZZ
@given(body=xml_bodies, headers=headers_with(auth_choice(basic("ofsc", "ofsc-secret"))))
def test_ofsc(stack: Stack, body: bytes, headers: dict[str, str]) -> None:
    handler = stack.handler_once("send_message")
    check_soap(stack.invoke(handler, http_event("POST", "/ofsc", body=body, headers=headers)))


@FUZZ
@given(
    path=st.sampled_from(["/health", "/v1/docs.json", "/", "/nope", "/v1/messages"])
    | nasty_text.map(lambda s: "/" + quote(s, errors="surrogatepass")),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    body=st.binary(max_size=64),
)
def test_other_paths(stack: Stack, path: str, method: str, body: bytes) -> None:
    handler = stack.handler_once("send_message")
    answer = stack.invoke(handler, http_event(method, path, body=body))
    check_json("other paths", answer)


receipt_bodies = st.one_of(json_bodies, xml_bodies)


@FUZZ
@given(
    carrier=st.sampled_from(["smartswitch", "conceptomovil", "vibes", "ip2sms", "nope"]),
    body=receipt_bodies,
    query=st.one_of(
        st.just(""),
        st.just("token=vibes-secret"),
        st.just("_login=smartswitch&_password=smartswitch-secret&message_id=1&message_state=x"),
        nasty_text.map(lambda s: f"message_id={quote(s, errors='surrogatepass')}&message_state=x"),
        nasty_text,
    ),
    data=st.data(),
)
def test_receipts(stack: Stack, carrier: str, body: bytes, query: str, data: st.DataObject) -> None:
    valid = CARRIER_AUTH.get(carrier, "Basic eDp4")
    headers = data.draw(headers_with(auth_choice(valid)))
    if carrier == "smartswitch" and data.draw(st.booleans()):
        query = "_login=smartswitch&_password=smartswitch-secret&" + query
    handler = stack.handler_once("dlr_webhook")
    event = dlr_event(carrier, query=query, body=body, headers=headers)
    check_receipt(carrier, stack.invoke(handler, event))


SEARCH_PARAMETERS = ["to", "since", "until", "status", "carrier", "type", "limit", "cursor", "x"]
search_values = st.one_of(
    nasty_text,
    st.sampled_from(
        [
            "+380671234501",
            "0671234501",
            "2026-12-01T00:00:00Z",
            "2026-12-01",
            "9999-12-31T23:59:59",
            "0001-01-01",
            "delivered",
            "ip2sms",
            "2FA",
            "100",
            "1e3",
            "eyJ2IjoiZGVtbyJ9.AAAA",
        ]
    ),
)


@FUZZ
@given(
    pairs=st.lists(st.tuples(st.sampled_from(SEARCH_PARAMETERS), search_values), max_size=5).map(
        lambda pairs: [("to", "+380671234501"), *pairs]
    )
    | st.lists(st.tuples(st.sampled_from(SEARCH_PARAMETERS), search_values), max_size=5),
    raw=st.one_of(st.just(""), nasty_text),
    headers=headers_with(
        st.one_of(auth_choice("Bearer demo-token"), st.just("Bearer support-token"))
    ),
)
def test_search(
    stack: Stack, pairs: list[tuple[str, str]], raw: str, headers: dict[str, str]
) -> None:
    query = "&".join(f"{k}={quote(v, safe='', errors='surrogatepass')}" for k, v in pairs)
    handler = stack.handler_once("search")
    event = http_event("GET", "/v1/messages", query=query or raw, headers=headers)
    check_json("GET /v1/messages", stack.invoke(handler, event))


@FUZZ
@given(
    client=st.one_of(st.sampled_from(["demo", "partner", "%2F", "%FF"]), nasty_text),
    segment=st.one_of(
        nasty_text.map(lambda s: quote(s, safe="", errors="surrogatepass")),
        st.sampled_from(["%", "%ZZ", "%FF%FE", "%00", "%2F", "a%2Fb", "x" * 80]),
    ),
    token=st.sampled_from(["Bearer support-token", "Bearer demo-token", "Bearer nope"]),
)
def test_support_message_paths(stack: Stack, client: str, segment: str, token: str) -> None:
    handler = stack.handler_once("search")
    event = http_event(
        "GET",
        f"/v1/messages/{quote(client, safe='%', errors='surrogatepass')}/{segment}",
        route="/v1/messages/{client}/{message_id}",
        headers={"authorization": token},
    )
    check_json("GET /v1/messages/{client}/{id}", stack.invoke(handler, event))
