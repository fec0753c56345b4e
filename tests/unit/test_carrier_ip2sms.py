"""IP2SMS: XML submission, status polling, and the `<status>` document as a receipt."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from smsbridge.carriers import get_format, ip2sms
from smsbridge.carriers.base import (
    MalformedReceipt,
    PermanentSubmitError,
    PollError,
    ReceiptAuthError,
    ReceiptError,
    Submission,
    TransientSubmitError,
    UnsupportedMediaType,
)
from smsbridge.statuses import Status
from tests.unit.carrier_fakes import (
    SUBMIT_PASSWORD,
    SUBMIT_USERNAME,
    FakeCarrier,
    Scripted,
    carrier_config,
    hostile_documents,
    http_request,
    new_session,
    refused_url,
)

XML = "application/xml"
CREDENTIALS = ("ip2sms", "ip2sms-secret")

#: SPEC 2.2, written out here so that a change to the module's table is noticed.
VOCABULARY = [
    ("Accepted", Status.SUBMITTED),
    ("Pending", Status.SUBMITTED),
    ("Enroute", Status.ENROUTE),
    ("Unknown", Status.UNKNOWN),
    ("Delivered", Status.DELIVERED),
    ("Expired", Status.EXPIRED),
    ("Deleted", Status.DELETED),
    ("Undeliverable", Status.UNDELIVERABLE),
    ("Rejected", Status.REJECTED),
    ("Unaccepted", Status.UNACCEPTED),
    ("Terminated", Status.TERMINATED),
]


def status_xml(state: str, *, id_: str = "000123", error: str = "", date: str = "") -> str:
    date_attribute = f' date="{date}"' if date else ""
    return (
        f'<status id="{id_}"{date_attribute} ext_id="msg-1">'
        f'<state error="{error}">{state}</state></status>'
    )


@pytest.fixture
def server() -> Iterator[FakeCarrier]:
    with FakeCarrier() as fake:
        yield fake


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with new_session() as s:
        yield s


def carrier_at(server: FakeCarrier, **overrides: Any) -> Any:
    return carrier_config("ip2sms", server.url, **overrides)


def test_is_the_ip2sms_format() -> None:
    assert get_format("ip2sms") is ip2sms
    assert callable(get_format("ip2sms").poll)  # type: ignore[attr-defined]


def test_vocabulary_is_complete() -> None:
    assert dict(VOCABULARY) == ip2sms.STATES


@pytest.mark.parametrize(
    ("raw", "normalised"), [("000123", "123"), (" 123 ", "123"), ("0", "0"), ("0000", "0")]
)
def test_normalise_id(raw: str, normalised: str) -> None:
    assert ip2sms.normalise_id(raw) == normalised


# --- submission -------------------------------------------------------------------------------

SUBMISSION = Submission(
    reference="msg-380-1",
    to="+380671234501",
    text="Ваш код: 1234 <не&повідомляйте>",
    sender="SMSBRIDGE",
    validity_minutes=60,
)


def test_submit_sends_the_documented_xml(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(
        200,
        status_xml("Accepted", date="Tue, 19 Apr 2011 15:10:08 +0300"),
        content_type=XML,
    )

    result = ip2sms.submit(session, carrier_at(server), SUBMISSION)

    assert result.gateway_id == "123"
    assert result.gateway_status == "Accepted"
    assert result.status == Status.SUBMITTED
    # The answer's date is the first status change (SPEC 2.2).
    assert result.at == datetime(2011, 4, 19, 12, 10, 8, tzinfo=UTC)
    [received] = server.received
    assert received.path == "/ip2sms/send"
    assert received.headers["content-type"] == XML
    assert received.basic_auth() == (SUBMIT_USERNAME, SUBMIT_PASSWORD)
    root = received.xml()
    assert root.tag == "message"
    assert [child.tag for child in root] == ["service", "to", "body"]
    assert root.find("service").attrib == {  # type: ignore[union-attr]
        "id": "single",
        "source": "SMSBRIDGE",
        "validity": "+60 min",
        "uniq_key": "msg-380-1",
    }
    to = root.find("to")
    assert to is not None
    assert to.attrib == {"ext_id": "msg-380-1"}
    assert to.text == "+380671234501"
    body = root.find("body")
    assert body is not None
    assert body.attrib == {"content-type": "text/plain", "encoding": "plain"}
    assert body.text == "Ваш код: 1234 <не&повідомляйте>"


def test_submit_without_validity_leaves_it_out(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, status_xml("Pending"), content_type=XML)
    submission = Submission(reference="r", to="+380671234501", text="hi", sender="")

    result = ip2sms.submit(session, carrier_at(server), submission)

    assert (result.gateway_status, result.status) == ("Pending", Status.SUBMITTED)
    service = server.received[0].xml().find("service")
    assert service is not None
    assert "validity" not in service.attrib
    assert service.get("source") == "SMSBRIDGE"


def test_submit_retry_reuses_the_reference_keys(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.script(Scripted(503, "busy"), Scripted(200, status_xml("Accepted"), XML))
    carrier = carrier_at(server)

    with pytest.raises(TransientSubmitError):
        ip2sms.submit(session, carrier, SUBMISSION)
    ip2sms.submit(session, carrier, SUBMISSION)

    keys = [
        (r.xml().find("service").get("uniq_key"), r.xml().find("to").get("ext_id"))  # type: ignore[union-attr]
        for r in server.received
    ]
    assert keys == [("msg-380-1", "msg-380-1")] * 2


@pytest.mark.parametrize(
    ("state", "error", "status"),
    [
        ("Rejected", "Invalid number", Status.REJECTED),
        ("Unaccepted", "No route", Status.UNACCEPTED),
        ("Rejected", "", Status.REJECTED),
        ("Undeliverable", "", Status.UNDELIVERABLE),
        ("Accepted", "Insufficient funds", Status.FAILED),
    ],
)
def test_submit_error_state_is_permanent_with_the_mapped_status(
    state: str, error: str, status: Status, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, status_xml(state, error=error), content_type=XML)
    with pytest.raises(PermanentSubmitError) as caught:
        ip2sms.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.status == status
    assert caught.value.gateway_status == state
    assert caught.value.gateway_error == error
    assert caught.value.description
    if error:
        assert caught.value.description == error


def test_submit_4xx_is_permanent(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(401, "Unauthorized", content_type="text/plain")
    with pytest.raises(PermanentSubmitError) as caught:
        ip2sms.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == "401"
    assert caught.value.status == Status.FAILED


def test_submit_4xx_with_a_status_document_keeps_its_error(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(400, status_xml("Unaccepted", error="Bad source"), content_type=XML)
    with pytest.raises(PermanentSubmitError) as caught:
        ip2sms.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.status == Status.UNACCEPTED
    assert caught.value.gateway_error == "Bad source"


@pytest.mark.parametrize("status", [500, 502, 429])
def test_submit_5xx_and_429_are_transient(
    status: int, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(status, status_xml("Rejected", error="x"), content_type=XML)
    with pytest.raises(TransientSubmitError):
        ip2sms.submit(session, carrier_at(server), SUBMISSION)


@pytest.mark.parametrize(
    "body",
    [
        "garbage",
        "",
        '<status id="1"><state error="">Sent</state></status>',
        '<status id="1"/>',
        '<status><state error="">Accepted</state></status>',
        '<answer id="1"><state>Accepted</state></answer>',
        hostile_documents("status")["billion_laughs"].decode(),
    ],
)
def test_submit_unreadable_2xx_is_transient(
    body: str, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, body, content_type=XML)
    with pytest.raises(TransientSubmitError):
        ip2sms.submit(session, carrier_at(server), SUBMISSION)


def test_submit_time_out_is_transient(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, status_xml("Accepted"), delay=1.0)
    with pytest.raises(TransientSubmitError):
        ip2sms.submit(session, carrier_at(server, read_timeout=0.2), SUBMISSION)


def test_submit_connection_refused_is_transient(session: requests.Session) -> None:
    carrier = carrier_config("ip2sms", submit_url=refused_url())
    with pytest.raises(TransientSubmitError) as caught:
        ip2sms.submit(session, carrier, SUBMISSION)
    assert SUBMIT_PASSWORD not in caught.value.description


# --- polling ----------------------------------------------------------------------------------


def test_poll_sends_the_status_request_and_reads_the_answer(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(
        200,
        status_xml("Delivered", id_="123", date="Tue, 19 Apr 2011 15:10:08 +0300"),
        content_type=XML,
    )

    receipt = ip2sms.poll(session, carrier_at(server), "123")

    assert receipt.gateway_id == "123"
    assert receipt.gateway_status == "Delivered"
    assert receipt.status == Status.DELIVERED
    assert receipt.at == datetime(2011, 4, 19, 12, 10, 8, tzinfo=UTC)
    assert receipt.gateway_error == ""
    [received] = server.received
    assert received.path == "/ip2sms/status"
    assert received.basic_auth() == (SUBMIT_USERNAME, SUBMIT_PASSWORD)
    root = received.xml()
    assert (root.tag, root.attrib, root.text) == ("request", {"id": "123"}, "status")


@pytest.mark.parametrize(("state", "status"), VOCABULARY)
def test_poll_maps_every_state(
    state: str, status: Status, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, status_xml(state, id_="0042"), content_type=XML)
    receipt = ip2sms.poll(session, carrier_at(server), "42")
    assert (receipt.gateway_id, receipt.gateway_status, receipt.status) == ("42", state, status)


def test_poll_keeps_the_error_text(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, status_xml("Undeliverable", id_="7", error="Absent subscriber"))
    receipt = ip2sms.poll(session, carrier_at(server), "7")
    assert receipt.gateway_error == "Absent subscriber"
    assert receipt.description == "Absent subscriber"


def test_poll_answer_without_id_is_about_the_asked_message(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, '<status date="bad date"><state error="">Enroute</state></status>')
    receipt = ip2sms.poll(session, carrier_at(server), "9")
    assert (receipt.gateway_id, receipt.status, receipt.at) == ("9", Status.ENROUTE, None)


@pytest.mark.parametrize(
    "scripted",
    [
        Scripted(500, status_xml("Delivered", id_="123")),
        Scripted(503, ""),
        Scripted(404, "not found"),
        Scripted(200, "garbage"),
        Scripted(200, '<status id="123"><state error="">Sent</state></status>'),
        Scripted(200, '<status id="123"/>'),
        Scripted(200, status_xml("Delivered", id_="999")),
        Scripted(200, hostile_documents("status")["dtd"]),
        Scripted(200, hostile_documents("status")["billion_laughs"]),
        Scripted(200, hostile_documents("status")["external_entity"]),
        Scripted(200, status_xml("Delivered", id_="123"), delay=1.0),
    ],
    ids=[
        "500",
        "503",
        "404",
        "garbage",
        "unknown-state",
        "no-state",
        "other-id",
        "dtd",
        "billion-laughs",
        "external-entity",
        "time-out",
    ],
)
def test_poll_failures_are_poll_errors(
    scripted: Scripted, server: FakeCarrier, session: requests.Session
) -> None:
    server.script(scripted)
    with pytest.raises(PollError):
        ip2sms.poll(session, carrier_at(server, read_timeout=0.2), "123")


def test_poll_connection_refused_is_a_poll_error(session: requests.Session) -> None:
    carrier = carrier_config("ip2sms", status_url=refused_url())
    with pytest.raises(PollError) as caught:
        ip2sms.poll(session, carrier, "1")
    assert SUBMIT_PASSWORD not in str(caught.value)


# --- receipts (the same <status> document, posted) --------------------------------------------

CARRIER = carrier_config("ip2sms")


def dlr(
    body: str | bytes,
    *,
    auth: tuple[str, str] | None = CREDENTIALS,
    content_type: str | None = XML,
) -> Any:
    request = http_request("/dlr/ip2sms", body=body, auth=auth, content_type=content_type)
    return ip2sms.read_receipts(request, CARRIER)


def refused(body: str | bytes, **kwargs: Any) -> ReceiptError:
    with pytest.raises(ReceiptError) as caught:
        dlr(body, **kwargs)
    return caught.value


def test_receipt_is_read_and_answered_in_plain_text() -> None:
    [receipt] = dlr(status_xml("Expired", id_="00555", date="Tue, 19 Apr 2011 15:10:08 GMT"))
    assert (receipt.gateway_id, receipt.status) == ("555", Status.EXPIRED)
    assert receipt.at == datetime(2011, 4, 19, 15, 10, 8, tzinfo=UTC)
    answer = ip2sms.answer_receipts([receipt])
    assert (answer.status, answer.body) == (200, "OK")
    assert answer.content_type.startswith("text/plain")


@pytest.mark.parametrize("auth", [None, ("ip2sms", "wrong"), ("x", "ip2sms-secret")])
def test_receipt_bad_credentials_are_401(auth: tuple[str, str] | None) -> None:
    error = refused(status_xml("Delivered"), auth=auth)
    assert isinstance(error, ReceiptAuthError)
    assert ip2sms.answer_error(error).status == 401


def test_receipts_are_refused_when_no_dlr_credentials_are_configured() -> None:
    carrier = carrier_config("ip2sms", dlr_login="", dlr_password="")
    request = http_request("/dlr/ip2sms", body=status_xml("Delivered"), auth=("", ""))
    with pytest.raises(ReceiptAuthError):
        ip2sms.read_receipts(request, carrier)


def test_receipt_other_content_type_is_415() -> None:
    error = refused(status_xml("Delivered"), content_type="application/json")
    assert isinstance(error, UnsupportedMediaType)
    assert ip2sms.answer_error(error).status == 415


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "empty"),
        ("<status", "malformed XML"),
        (status_xml("Sent"), "state 'Sent' is not one of"),
        ('<status><state error="">Delivered</state></status>', "status id is required"),
        ('<status id="1"/>', "state is required"),
    ],
)
def test_malformed_receipts_are_400(body: str, reason: str) -> None:
    error = refused(body)
    assert isinstance(error, MalformedReceipt)
    answer = ip2sms.answer_error(error)
    assert answer.status == 400
    assert reason in answer.body
    assert "\n" not in answer.body


@pytest.mark.parametrize("kind", ["dtd", "billion_laughs", "external_entity"])
def test_hostile_receipts_are_400(kind: str) -> None:
    error = refused(hostile_documents("status")[kind])
    assert isinstance(error, MalformedReceipt)
    answer = ip2sms.answer_error(error)
    assert answer.status == 400
    assert "root:" not in answer.body
