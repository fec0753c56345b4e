"""Hostile bodies, headers and paths against every HTTP route, through the real handlers.

Each answer must be a 2xx-4xx (SOAP 1.1 faults travel with HTTP 500: those must be `Client`
faults), carry no traceback, and refuse in the route's own format. `make test` runs a few
hundred cases; `make fuzz` (FUZZ_EXAMPLES=2000) runs over 10,000 and prints the count per route.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.api import http_event
from tests.handlers.conftest import Stack, dlr_event
from tests.support import basic, bearer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTS: Counter[str] = Counter()
#: Cases of the calendar-edge and size generators, per field (also counted per route).
FIELD_COUNTS: Counter[str] = Counter()
RECEIPT_IDS = itertools.count(1)

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
        print("of which calendar-edge and size cases per field:")
        for name, count in sorted(FIELD_COUNTS.items()):
            print(f"  {name:40} {count:6}")


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


# --- calendar edges on every date field -------------------------------------------------------
# Years 1 and 9999 at their first and last hours, every UTC offset from -23:59 to +23:59, leap
# days (real and not), second 60. A date out of range in UTC must be refused as a bad field,
# never answered 5xx.

MAX_OFFSET_MINUTES = 23 * 60 + 59
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class Moment:
    """Calendar fields as written, which need not make a real date (30 February, second 60)."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    offset: int

    def offset_text(self, colon: bool = True) -> str:
        sign = "-" if self.offset < 0 else "+"
        hours, minutes = divmod(abs(self.offset), 60)
        return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"

    def gmt(self) -> str:
        """OFSC's GMT form, no offset."""
        return (
            f"{self.year:04d}-{self.month:02d}-{self.day:02d} "
            f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}"
        )

    def iso(self, separator: str = "T") -> str:
        zone = "Z" if self.offset == 0 else self.offset_text()
        return self.gmt().replace(" ", separator) + zone

    def rfc2822(self) -> str:
        return (
            f"Mon, {self.day:02d} {MONTHS[self.month - 1]} {self.year:04d} "
            f"{self.hour:02d}:{self.minute:02d}:{self.second:02d} {self.offset_text(colon=False)}"
        )


@st.composite
def calendar_edge(draw: st.DrawFn) -> Moment:
    kind = draw(st.sampled_from(["first", "last", "leap", "any"]))
    hour = draw(st.integers(0, 23))
    offset = draw(st.integers(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES))
    if kind == "first":
        # Mostly an offset that moves the first hours of year 1 before it, in UTC.
        year, month, day, hour = 1, 1, 1, draw(st.sampled_from([0, 0, 1, hour]))
        offset = draw(st.sampled_from([abs(offset) or 1, offset]))
    elif kind == "last":
        year, month, day, hour = 9999, 12, 31, draw(st.sampled_from([23, 23, 22, hour]))
        offset = draw(st.sampled_from([-abs(offset) or -1, offset]))
    elif kind == "leap":
        year, month, day = draw(st.sampled_from([4, 1900, 2000, 2024, 2100, 9996, 9999])), 2, 29
    else:
        year = draw(st.sampled_from([1, 9999]) | st.integers(1, 9999))
        month, day = draw(st.integers(1, 12)), draw(st.integers(1, 31))
    minute = draw(st.integers(0, 59))
    second = draw(st.sampled_from([0, 59, 60]) | st.integers(0, 60))
    return Moment(year, month, day, hour, minute, second, offset)


iso_dates = st.builds(Moment.iso, calendar_edge(), st.sampled_from(["T", " "]))
ofsc_dates = st.one_of(iso_dates, calendar_edge().map(Moment.gmt))
rfc2822_dates = st.one_of(calendar_edge().map(Moment.rfc2822), iso_dates)
MAX_EPOCH_MS = 253_402_300_799_999
epoch_ms = st.one_of(
    st.sampled_from([0, 1, -1, MAX_EPOCH_MS, MAX_EPOCH_MS + 1, 2**53, 2**63, -(2**63)]),
    st.integers(MAX_EPOCH_MS - 86_400_000, MAX_EPOCH_MS + 86_400_000),
    st.integers(-86_400_000, 86_400_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers().map(str),
)


def ofsc_send(send_to: str, user: str = "", message_id: str = "d-1", body: str = "Hi") -> bytes:
    message = (
        f"<urn:message><urn:message_id>{_xml_escape(message_id)}</urn:message_id>"
        f"<urn:address>+4915112345678</urn:address><urn:body>{_xml_escape(body)}</urn:body>"
        f"<urn:send_to>{_xml_escape(send_to)}</urn:send_to></urn:message>"
    )
    return utf8(
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}" '
        f'xmlns:urn="{URN}"><soapenv:Body><urn:send_message>{user}<urn:messages>{message}'
        "</urn:messages></urn:send_message></soapenv:Body></soapenv:Envelope>"
    )


def user_block(now: str) -> str:
    from smsbridge import ofsc

    auth_string = ofsc.auth_string_sha256(now, "ofsc", "ofsc-secret")
    return (
        f"<urn:user><urn:now>{_xml_escape(now)}</urn:now><urn:login>ofsc</urn:login>"
        f"<urn:company>acme</urn:company><urn:auth_string>{auth_string}</urn:auth_string>"
        "</urn:user>"
    )


SOAP_HEADERS = {"content-type": "text/xml; charset=utf-8"}


@FUZZ
@given(send_to=ofsc_dates)
def test_ofsc_send_to_calendar_edges(stack: Stack, send_to: str) -> None:
    FIELD_COUNTS["date: ofsc send_to"] += 1
    handler = stack.handler_once("send_message")
    headers = {**SOAP_HEADERS, "authorization": basic("ofsc", "ofsc-secret")}
    answer = stack.invoke(
        handler, http_event("POST", "/ofsc", body=ofsc_send(send_to), headers=headers)
    )
    check_soap(answer)
    assert answer["statusCode"] == 200, answer["body"]


@FUZZ
@given(now=ofsc_dates)
def test_ofsc_user_now_calendar_edges(stack: Stack, now: str) -> None:
    FIELD_COUNTS["date: ofsc user/now"] += 1
    handler = stack.handler_once("send_message")
    body = ofsc_send("", user=user_block(now))
    answer = stack.invoke(handler, http_event("POST", "/ofsc", body=body, headers=SOAP_HEADERS))
    check_soap(answer)
    assert answer["statusCode"] == 401, answer["body"]  # never within 30 minutes of now


@FUZZ
@given(receipt_date=iso_dates)
def test_vibes_receipt_date_calendar_edges(stack: Stack, receipt_date: str) -> None:
    FIELD_COUNTS["date: vibes receiptDate"] += 1
    body = (
        f'<mtMessageResponse messageId="v-edge" receiptDate="{receipt_date}"><type>Handset</type>'
        '<status isError="false"><description>d</description></status></mtMessageResponse>'
    )
    event = dlr_event(
        "vibes", query="token=vibes-secret", body=body, headers={"content-type": "application/xml"}
    )
    answer = stack.invoke(stack.handler_once("dlr_webhook"), event)
    check_receipt("vibes", answer)
    assert answer["statusCode"] == 200, answer["body"]


@FUZZ
@given(send_date=epoch_ms, done_date=epoch_ms | st.none())
def test_conceptomovil_epoch_calendar_edges(stack: Stack, send_date: Any, done_date: Any) -> None:
    FIELD_COUNTS["date: conceptomovil sendDate/doneDate"] += 1
    receipt = {"messageId": 7, "statusDelivery": "DELIVERED", "sendDate": send_date}
    if done_date is not None:
        receipt["doneDate"] = done_date
    event = dlr_event(
        "conceptomovil",
        body=json.dumps(receipt),
        headers={
            "content-type": "application/json",
            "authorization": CARRIER_AUTH["conceptomovil"],
        },
    )
    check_receipt("conceptomovil", stack.invoke(stack.handler_once("dlr_webhook"), event))


@FUZZ
@given(date=rfc2822_dates)
def test_ip2sms_status_answer_calendar_edges(date: str) -> None:
    """The `<status date>` of IP2SMS submission and poll answers (no HTTP route reads it)."""
    from smsbridge import safexml
    from smsbridge.carriers import ip2sms

    COUNTS["ip2sms status answers"] += 1
    FIELD_COUNTS["date: ip2sms status date"] += 1
    root = safexml.parse(f'<status id="5" date="{date}"><state>Delivered</state></status>')
    receipt = ip2sms.parse_status(root)
    if receipt.at is not None:
        assert receipt.at.utcoffset() == timedelta(0)
    else:
        assert receipt.extra["receipt_date"] == date  # kept as received, in the history


@FUZZ
@given(
    validity=st.sampled_from([0, 1, 10_080, 10_081, -1, 2**31, 2**63, 10**400])
    | st.floats()
    | st.integers()
    | nasty_text
)
def test_json_validity_edges(stack: Stack, validity: Any) -> None:
    FIELD_COUNTS["date: json validity_minutes"] += 1
    message = {"to": "+4915112345678", "text": "x", "validity_minutes": validity}
    handler = stack.handler_once("send_message")
    body = utf8(json.dumps(message, allow_nan=True))
    answer = stack.invoke(handler, http_event("POST", "/v1/messages", body=body, headers=bearer()))
    check_json("POST /v1/messages", answer)


# --- field sizes, in multi-byte text -----------------------------------------------------------

#: One, two, three and four UTF-8 bytes; a combining mark.
WIDE_CHARS = ["a", "é", "中", "😀", "\u0301"]


@st.composite
def sized_text(draw: st.DrawFn, most: int = 90_000) -> str:
    """Text of one-to-four-byte characters, around the bounds and up to the body limit."""
    count = draw(
        st.sampled_from([16, 17, 32, 33, 64, 65, 100, 101, 300, 500, 501, 4_000, 4_001])
        | st.integers(0, 600)
        | st.integers(0, most)
    )
    chars = draw(st.lists(st.sampled_from(WIDE_CHARS), min_size=1, max_size=3))
    return "".join(chars[i % len(chars)] for i in range(count))


@st.composite
def sized_ofsc_body(draw: st.DrawFn) -> tuple[str, str]:
    """(address, body) in the three body forms, one field of them sized."""
    field_name = draw(st.sampled_from(["to", "text", "type", "sender"]))
    value = draw(sized_text())
    fields = {"to": "+4915112345678", "text": "Hi", field_name: value}
    form = draw(st.sampled_from(["json", "xml", "plain"]))
    if form == "json":
        return "", json.dumps(fields, ensure_ascii=draw(st.booleans()))
    if form == "xml":
        inner = "".join(f"<{k}>{_xml_escape(v)}</{k}>" for k, v in fields.items())
        return "", f"<sms>{inner}</sms>"
    return (fields["to"], fields["text"])


def stored_fits(stack: Stack, sms_id: str) -> None:
    from smsbridge import bounds

    record = stack.item(sms_id)
    if record is None:
        return
    for name, bound in (
        ("sender", bounds.SENDER),
        ("phone_number", bounds.TO),
        ("type", bounds.TYPE),
        ("description", bounds.DESCRIPTION),
        ("body", bounds.TEXT),
    ):
        assert bound.problem(str(record.get(name, ""))) is None, (name, len(record[name]))


@FUZZ
@given(form=sized_ofsc_body(), message_id=sized_text(most=300))
def test_ofsc_field_sizes(stack: Stack, form: tuple[str, str], message_id: str) -> None:
    FIELD_COUNTS["size: ofsc message fields"] += 1
    from smsbridge.models import sms_id_for

    address, body = form
    message_id = message_id.strip() or "x"
    message = (
        f"<urn:message><urn:message_id>{_xml_escape(message_id)}</urn:message_id>"
        f"<urn:address>{_xml_escape(address)}</urn:address>"
        f"<urn:body>{_xml_escape(body)}</urn:body></urn:message>"
    )
    document = utf8(
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}" '
        f'xmlns:urn="{URN}"><soapenv:Body><urn:send_message><urn:messages>{message}'
        "</urn:messages></urn:send_message></soapenv:Body></soapenv:Envelope>"
    )
    headers = {**SOAP_HEADERS, "authorization": basic("ofsc", "ofsc-secret")}
    answer = stack.invoke(
        stack.handler_once("send_message"),
        http_event("POST", "/ofsc", body=document, headers=headers),
    )
    check_soap(answer)
    assert answer["statusCode"] in (200, 413), answer["body"][:300]
    stored_fits(stack, sms_id_for("ofsc", message_id))


@FUZZ
@given(
    field_name=st.sampled_from(["to", "text", "sender", "message_id", "country"]),
    value=sized_text(),
)
def test_json_field_sizes(stack: Stack, field_name: str, value: str) -> None:
    FIELD_COUNTS["size: json message fields"] += 1
    message = {"to": "+4915112345678", "text": "x", field_name: value}
    body = utf8(json.dumps(message, ensure_ascii=False))
    handler = stack.handler_once("send_message")
    answer = stack.invoke(handler, http_event("POST", "/v1/messages", body=body, headers=bearer()))
    check_json("POST /v1/messages", answer)


@FUZZ
@given(
    carrier=st.sampled_from(["conceptomovil", "vibes", "smartswitch"]),
    value=sized_text(most=60_000),
    data=st.data(),
)
def test_receipt_field_sizes(stack: Stack, carrier: str, value: str, data: st.DataObject) -> None:
    """The carrier's operator, status word, error codes and description, at every size."""
    FIELD_COUNTS[f"size: {carrier} receipt fields"] += 1
    gateway_id = f"size-{next(RECEIPT_IDS)}"
    if carrier == "conceptomovil":
        receipt = {
            "messageId": gateway_id,
            "statusDelivery": "DELIVERED",
            "sendDate": 1,
            "carrier": value,
        }
        body, query = utf8(json.dumps(receipt, ensure_ascii=data.draw(st.booleans()))), ""
        headers = {"content-type": "application/json", "authorization": CARRIER_AUTH[carrier]}
    elif carrier == "vibes":
        where = data.draw(st.sampled_from(["description", "errorCode", "internalErrorCode"]))
        body = utf8(
            f'<mtMessageResponse messageId="{gateway_id}"><type>Carrier</type>'
            '<status isError="true">'
            f"<{where}>{_xml_escape(value)}</{where}></status></mtMessageResponse>"
        )
        query, headers = "token=vibes-secret", {"content-type": "application/xml"}
    else:
        params = {
            "_login": "smartswitch",
            "_password": "smartswitch-secret",
            "message_id": gateway_id,
            "message_state": value,
        }
        from urllib.parse import urlencode

        body = utf8(urlencode(params))
        query, headers = "", {"content-type": "application/x-www-form-urlencoded"}
    event = dlr_event(carrier, query=query, body=body, headers=headers)
    answer = stack.invoke(stack.handler_once("dlr_webhook"), event)
    check_receipt(carrier, answer)
    if answer["statusCode"] == 200:
        orphan_fits(stack, carrier, gateway_id)


def orphan_fits(stack: Stack, carrier: str, gateway_id: str) -> None:
    """The receipt kept for an unknown id holds each carrier field within its bound."""
    from smsbridge import bounds

    key = {"id": {"S": f"gw#{carrier}#{gateway_id}"}}
    item = stack.dynamodb.get_item(TableName=stack.table, Key=key).get("Item", {})
    for orphan in item.get("orphans", {}).get("L", []):
        fields = {name: value.get("S", "") for name, value in orphan["M"].items()}
        for name, bound in (
            ("operator", bounds.OPERATOR),
            ("gateway_status", bounds.GATEWAY_STATUS),
            ("gateway_error", bounds.GATEWAY_ERROR),
            ("description", bounds.DESCRIPTION),
        ):
            assert bound.problem(fields.get(name, "")) is None, (name, len(fields[name]))
