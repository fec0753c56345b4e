"""Concepto Móvil: JSON submission with a raw token, JSON receipts, plain-text answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from smsbridge.carriers import conceptomovil, get_format
from smsbridge.carriers.base import (
    MalformedReceipt,
    PayloadTooLarge,
    PermanentSubmitError,
    Receipt,
    ReceiptAuthError,
    ReceiptError,
    Submission,
    TransientSubmitError,
    UnsupportedMediaType,
)
from smsbridge.statuses import Status
from tests.unit.carrier_fakes import (
    FakeCarrier,
    carrier_config,
    http_request,
    new_session,
    refused_url,
)

CARRIER = carrier_config("conceptomovil")
CREDENTIALS = ("conceptomovil", "conceptomovil-secret")

# The seed's example body.
SEED_BODY = {
    "messageId": 12345678,
    "statusDelivery": "DELIVERED",
    "sendDate": 1588694204000,
    "doneDate": 1588694204000,
    "carrier": "CLARO",
}


def dlr(
    body: Any,
    *,
    auth: tuple[str, str] | None = CREDENTIALS,
    content_type: str | None = "application/json",
) -> list[Receipt]:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    request = http_request("/dlr/conceptomovil", body=raw, auth=auth, content_type=content_type)
    return conceptomovil.read_receipts(request, CARRIER)


def refused(body: Any, **kwargs: Any) -> ReceiptError:
    with pytest.raises(ReceiptError) as caught:
        dlr(body, **kwargs)
    return caught.value


def test_is_the_conceptomovil_format() -> None:
    assert get_format("conceptomovil") is conceptomovil


# --- receipts ---------------------------------------------------------------------------------


def test_seed_example() -> None:
    [receipt] = dlr(SEED_BODY)

    assert receipt.gateway_id == "12345678"
    assert receipt.status == Status.DELIVERED
    assert receipt.gateway_status == "DELIVERED"
    assert receipt.at == datetime(2020, 5, 5, 15, 56, 44, tzinfo=UTC)
    assert receipt.at is not None
    assert receipt.at.utcoffset() is not None
    assert receipt.extra["carrier"] == "CLARO"
    assert receipt.extra["send_date"] == "2020-05-05T15:56:44+00:00"

    answer = conceptomovil.answer_receipts([receipt])
    assert answer.status == 200
    assert answer.body == "OK"
    assert answer.content_type.startswith("text/plain")


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [
        (12345678, "12345678"),
        ("12345678", "12345678"),
        ("0012345678", "12345678"),
        (" 77 ", "77"),
        (0, "0"),
    ],
)
def test_message_id_as_number_or_string(message_id: Any, expected: str) -> None:
    [receipt] = dlr({**SEED_BODY, "messageId": message_id})
    assert receipt.gateway_id == expected


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("DELIVERED", Status.DELIVERED),
        ("REJECTED", Status.REJECTED),
        ("UNDELIVERABLE", Status.UNDELIVERABLE),
        ("UNKNOWN", Status.REJECTED),
    ],
)
def test_every_status_delivery_maps_per_spec(word: str, status: Status) -> None:
    [receipt] = dlr({**SEED_BODY, "statusDelivery": word})
    assert receipt.status == status
    assert receipt.gateway_status == word


def test_unknown_is_a_final_rejection_without_an_error_code() -> None:
    # The seed: "UNKNOWN: envío rechazado por el operador, se desconoce el código de error".
    [receipt] = dlr({**SEED_BODY, "statusDelivery": "UNKNOWN"})
    assert receipt.status == Status.REJECTED
    assert receipt.status.is_final
    assert receipt.gateway_status == "UNKNOWN"
    assert receipt.gateway_error == ""
    assert "no error code" in receipt.description


def test_a_list_of_receipts_keeps_its_order() -> None:
    receipts = dlr(
        [
            {**SEED_BODY, "messageId": 1, "statusDelivery": "UNKNOWN"},
            {**SEED_BODY, "messageId": "2", "statusDelivery": "REJECTED"},
        ]
    )
    assert [(r.gateway_id, r.status) for r in receipts] == [
        ("1", Status.REJECTED),
        ("2", Status.REJECTED),
    ]


def test_done_date_and_carrier_are_optional() -> None:
    [receipt] = dlr({"messageId": 5, "statusDelivery": "DELIVERED", "sendDate": 1588694204000})
    assert receipt.at is None
    assert "carrier" not in receipt.extra
    # The seed requires `carrier`: its absence is reported, the receipt still counts.
    assert receipt.missing_fields == ("carrier",)
    assert receipt.status == Status.DELIVERED


def test_the_operator_is_read_and_nothing_is_missing() -> None:
    [receipt] = dlr({**SEED_BODY, "carrier": " TELCEL "})
    assert receipt.extra["carrier"] == "TELCEL"
    assert receipt.missing_fields == ()


def test_charset_parameter_is_accepted() -> None:
    assert dlr(SEED_BODY, content_type="application/json; charset=utf-8")


@pytest.mark.parametrize(
    "auth", [None, ("conceptomovil", "wrong"), ("someone", "conceptomovil-secret")]
)
def test_bad_credentials_are_401_in_one_line(auth: tuple[str, str] | None) -> None:
    error = refused(SEED_BODY, auth=auth)
    assert isinstance(error, ReceiptAuthError)
    answer = conceptomovil.answer_error(error)
    assert answer.status == 401
    assert answer.body
    assert "\n" not in answer.body
    assert answer.content_type.startswith("text/plain")


def test_bad_credentials_win_over_a_bad_content_type() -> None:
    assert isinstance(refused(SEED_BODY, auth=None, content_type="text/plain"), ReceiptAuthError)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_other_content_types_are_415(content_type: str | None) -> None:
    error = refused(SEED_BODY, content_type=content_type)
    assert isinstance(error, UnsupportedMediaType)
    assert conceptomovil.answer_error(error).status == 415


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ("42", "object or a list"),
        ([], "no receipts"),
        ({**SEED_BODY, "messageId": None}, "messageId is required"),
        ({"statusDelivery": "DELIVERED", "sendDate": 1}, "messageId is required"),
        ({**SEED_BODY, "messageId": True}, "messageId is required"),
        ({**SEED_BODY, "messageId": ""}, "messageId is required"),
        ({**SEED_BODY, "statusDelivery": None}, "statusDelivery is required"),
        ({**SEED_BODY, "statusDelivery": "SENT"}, "statusDelivery 'SENT' is not one of"),
        ({"messageId": 1, "statusDelivery": "DELIVERED"}, "sendDate is required"),
        ({**SEED_BODY, "sendDate": "yesterday"}, "sendDate is required"),
        ({**SEED_BODY, "doneDate": "later"}, "doneDate must be epoch milliseconds"),
        ({**SEED_BODY, "doneDate": 10**20}, "doneDate must be epoch milliseconds"),
        ([SEED_BODY, {**SEED_BODY, "statusDelivery": "NOPE"}], "item 2: statusDelivery"),
        ([SEED_BODY, "x"], "item 2: a receipt must be a JSON object"),
    ],
)
def test_malformed_bodies_are_400_with_a_one_line_reason(body: Any, reason: str) -> None:
    error = refused(body)
    assert isinstance(error, MalformedReceipt)
    assert reason in error.detail
    answer = conceptomovil.answer_error(error)
    assert answer.status == 400
    assert reason in answer.body
    assert "\n" not in answer.body


def test_payload_too_large_answer() -> None:
    answer = conceptomovil.answer_error(PayloadTooLarge("the body is larger than 262144 bytes"))
    assert answer.status == 413
    assert "\n" not in answer.body


@pytest.mark.parametrize(
    ("raw", "normalised"), [("000123", "123"), ("  9 ", "9"), ("0", "0"), ("00", "0")]
)
def test_normalise_id(raw: str, normalised: str) -> None:
    assert conceptomovil.normalise_id(raw) == normalised


# --- submission -------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeCarrier]:
    with FakeCarrier() as fake:
        yield fake


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with new_session() as s:
        yield s


SUBMISSION = Submission(
    reference="msg-52-1",
    to="+525512345678",
    text="Su cita es mañana a las 10:00",
    sender="SMSBRIDGE",
    country="MX",
)


def carrier_at(server: FakeCarrier, **overrides: Any) -> Any:
    return carrier_config("conceptomovil", server.url, **overrides)


def test_submit_sends_the_documented_json(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, '{"id": 12345678, "status": "ok"}')

    result = conceptomovil.submit(session, carrier_at(server), SUBMISSION)

    assert result.gateway_id == "12345678"
    assert result.gateway_status == "ok"
    assert result.status == Status.SUBMITTED
    [received] = server.received
    assert received.path == "/conceptomovil/send"
    assert received.headers["authorization"] == "sim-submit-token"
    assert received.headers["content-type"] == "application/json"
    assert received.json() == {
        "apiKey": "sim-api-key",
        "country": "MX",
        "message": "Su cita es mañana a las 10:00",
        "msisdns": ["525512345678"],
        "tag": "msg-52-1",
        "dlr": True,
    }


def test_submit_id_as_a_string_is_normalised(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(201, '{"id": " 0099 ", "status": "ok"}')
    assert conceptomovil.submit(session, carrier_at(server), SUBMISSION).gateway_id == "99"


def test_submit_4xx_is_permanent_with_the_message(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(401, '{"status": "error", "message": "Invalid apiKey"}')
    with pytest.raises(PermanentSubmitError) as caught:
        conceptomovil.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.description == "Invalid apiKey"
    assert caught.value.gateway_status == "error"
    assert caught.value.gateway_error == "401"


def test_submit_error_status_in_a_2xx_is_permanent(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, '{"status": "error", "message": "Saldo insuficiente"}')
    with pytest.raises(PermanentSubmitError) as caught:
        conceptomovil.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.description == "Saldo insuficiente"


def test_submit_4xx_with_any_body_is_permanent(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(404, "Not Found", content_type="text/plain")
    with pytest.raises(PermanentSubmitError) as caught:
        conceptomovil.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == "404"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_submit_5xx_and_429_are_transient(
    status: int, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(status, '{"status": "error", "message": "try later"}')
    with pytest.raises(TransientSubmitError):
        conceptomovil.submit(session, carrier_at(server), SUBMISSION)


@pytest.mark.parametrize("body", ["<html>oops</html>", '"ok"', '{"status": "ok"}', '{"id": null}'])
def test_submit_unreadable_2xx_is_transient(
    body: str, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, body)
    with pytest.raises(TransientSubmitError):
        conceptomovil.submit(session, carrier_at(server), SUBMISSION)


def test_submit_time_out_is_transient(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, '{"id": 1, "status": "ok"}', delay=1.0)
    with pytest.raises(TransientSubmitError):
        conceptomovil.submit(session, carrier_at(server, read_timeout=0.2), SUBMISSION)


def test_submit_connection_refused_is_transient(session: requests.Session) -> None:
    carrier = carrier_config("conceptomovil", submit_url=refused_url())
    with pytest.raises(TransientSubmitError) as caught:
        conceptomovil.submit(session, carrier, SUBMISSION)
    assert "sim-submit-token" not in caught.value.description
