"""Smartswitch: JSON submission, receipts as query/form parameters, JSON:API answers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from smsbridge.carriers import get_format, smartswitch
from smsbridge.carriers.base import (
    MalformedReceipt,
    PayloadTooLarge,
    PermanentSubmitError,
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
    http_request,
    new_session,
    refused_url,
)

CARRIER = carrier_config("smartswitch")
LOGIN, PASSWORD = "smartswitch", "smartswitch-secret"
JSON_API = "application/vnd.api+json"
FORM = "application/x-www-form-urlencoded"

# The seed's three examples, word for word, with the local stack's DLR credentials.
SEED_ONE = (
    "https://your.server.name/api/dlr?message_id=1561370632513&message_state=delivered"
    "&request_id=1&_login=LOGIN&_password=PASSWORD"
)
SEED_TWO = (
    "https://your.server.name/api/dlr?message_id=1561370632513&message_state=delivered"
    "&request_id=1&message_id=1561370632522&message_state=delivered&request_id=2"
    "&_login=LOGIN&_password=PASSWORD"
)
SEED_ERROR_ANSWER = {
    "errors": [
        {
            "code": "authentication",
            "detail": "Please check your login and password",
            "title": "Authentication error",
        }
    ]
}


def with_credentials(url: str, login: str = LOGIN, password: str = PASSWORD) -> str:
    return url.replace("_login=LOGIN", f"_login={login}").replace(
        "_password=PASSWORD", f"_password={password}"
    )


def dlr(query: str = "", **kwargs: Any) -> list[Any]:
    """Read receipts posted to /dlr/smartswitch?<query>."""
    return smartswitch.read_receipts(http_request(f"/dlr/smartswitch?{query}", **kwargs), CARRIER)


def refused(query: str = "", **kwargs: Any) -> ReceiptError:
    with pytest.raises(ReceiptError) as caught:
        dlr(query, **kwargs)
    return caught.value


def answer_json(answer: Any) -> Any:
    assert answer.content_type == JSON_API
    return json.loads(answer.body)


CREDS = f"_login={LOGIN}&_password={PASSWORD}"


# --- seed examples ----------------------------------------------------------------------------


def test_seed_report_of_one_message() -> None:
    request = http_request(with_credentials(SEED_ONE))
    receipts = smartswitch.read_receipts(request, CARRIER)

    assert len(receipts) == 1
    receipt = receipts[0]
    assert receipt.gateway_id == "1561370632513"
    assert receipt.status == Status.DELIVERED
    assert receipt.gateway_status == "delivered"
    assert receipt.request_id == "1"

    answer = smartswitch.answer_receipts(receipts)
    assert answer.status == 200
    document = answer_json(answer)
    assert set(document) == {"data"}
    data = document["data"]
    assert isinstance(data, dict)
    assert isinstance(data["id"], str)
    assert data["id"]
    assert data == {
        "attributes": {"status": "ok"},
        "id": data["id"],
        "meta": {"request_id": "1"},
        "type": "dlr",
    }


def test_seed_report_of_two_messages_answers_a_list_in_request_order() -> None:
    receipts = smartswitch.read_receipts(http_request(with_credentials(SEED_TWO)), CARRIER)

    assert [(r.gateway_id, r.status, r.request_id) for r in receipts] == [
        ("1561370632513", Status.DELIVERED, "1"),
        ("1561370632522", Status.DELIVERED, "2"),
    ]
    data = answer_json(smartswitch.answer_receipts(receipts))["data"]
    assert isinstance(data, list)
    assert [item["meta"] for item in data] == [{"request_id": "1"}, {"request_id": "2"}]
    assert all(item["type"] == "dlr" and item["attributes"] == {"status": "ok"} for item in data)
    assert len({item["id"] for item in data}) == 2


def test_seed_error_example_wrong_credentials() -> None:
    request = http_request(with_credentials(SEED_ONE, password="not-the-password"))
    with pytest.raises(ReceiptAuthError) as caught:
        smartswitch.read_receipts(request, CARRIER)

    answer = smartswitch.answer_error(caught.value)
    assert answer.status == 401
    assert answer_json(answer) == SEED_ERROR_ANSWER


def test_seed_placeholder_credentials_are_refused() -> None:
    with pytest.raises(ReceiptAuthError):
        smartswitch.read_receipts(http_request(SEED_ONE), CARRIER)


def test_server_ids_are_unique_across_answers() -> None:
    receipts = dlr(f"message_id=1&message_state=delivered&{CREDS}")
    first = answer_json(smartswitch.answer_receipts(receipts))["data"]["id"]
    second = answer_json(smartswitch.answer_receipts(receipts))["data"]["id"]
    assert first != second


# --- authentication ---------------------------------------------------------------------------


def test_basic_auth_instead_of_parameters() -> None:
    receipts = dlr("message_id=7&message_state=enroute", auth=(LOGIN, PASSWORD))
    assert [(r.gateway_id, r.status) for r in receipts] == [("7", Status.ENROUTE)]


@pytest.mark.parametrize(
    ("query", "auth"),
    [
        ("message_id=7&message_state=enroute", None),
        (f"message_id=7&message_state=enroute&_login={LOGIN}", None),
        (f"message_id=7&message_state=enroute&_login={LOGIN}&_password=wrong", None),
        (f"message_id=7&message_state=enroute&_login=other&_password={PASSWORD}", None),
        ("message_id=7&message_state=enroute", (LOGIN, "wrong")),
        ("message_id=7&message_state=enroute", ("other", PASSWORD)),
        (f"message_id=7&message_state=enroute&_login={LOGIN}&_password=", None),
    ],
)
def test_bad_or_missing_credentials_are_401(query: str, auth: tuple[str, str] | None) -> None:
    error = refused(query, auth=auth)
    assert isinstance(error, ReceiptAuthError)
    answer = smartswitch.answer_error(error)
    assert answer.status == 401
    assert answer_json(answer) == SEED_ERROR_ANSWER


def test_carrier_without_dlr_credentials_accepts_nobody() -> None:
    carrier = carrier_config("smartswitch", dlr_login="", dlr_password="")
    request = http_request(
        "/dlr/smartswitch?message_id=1&message_state=delivered&_login=&_password="
    )
    with pytest.raises(ReceiptAuthError):
        smartswitch.read_receipts(request, carrier)


def test_authentication_comes_before_the_media_type_check() -> None:
    error = refused("_login=x&_password=y", body='{"a": 1}', content_type="application/json")
    assert isinstance(error, ReceiptAuthError)


# --- form bodies ------------------------------------------------------------------------------


def test_form_body_with_credentials_in_the_body() -> None:
    receipts = dlr(
        body=f"message_id=42&message_state=undeliverable&request_id=a&{CREDS}",
        content_type=FORM,
    )
    assert [(r.gateway_id, r.status, r.request_id) for r in receipts] == [
        ("42", Status.UNDELIVERABLE, "a")
    ]


def test_query_groups_come_before_body_groups() -> None:
    receipts = dlr(
        f"message_id=1&message_state=enroute&{CREDS}",
        body="message_id=2&message_state=delivered&message_id=3&message_state=expired",
        content_type=f"{FORM}; charset=UTF-8",
    )
    assert [(r.gateway_id, r.status) for r in receipts] == [
        ("1", Status.ENROUTE),
        ("2", Status.DELIVERED),
        ("3", Status.EXPIRED),
    ]


def test_body_without_content_type_is_read_as_a_form() -> None:
    receipts = dlr(CREDS, body="message_id=5&message_state=rejected")
    assert [(r.gateway_id, r.status) for r in receipts] == [("5", Status.REJECTED)]


def test_other_content_type_with_a_body_is_415() -> None:
    error = refused(
        CREDS,
        body='{"message_id": "1", "message_state": "delivered"}',
        content_type="application/json",
    )
    assert isinstance(error, UnsupportedMediaType)
    answer = smartswitch.answer_error(error)
    assert answer.status == 415
    document = answer_json(answer)
    assert set(document) == {"errors"}
    assert document["errors"][0]["code"] == "unsupported_media_type"


def test_empty_body_with_any_content_type_is_fine() -> None:
    receipts = dlr(f"message_id=1&message_state=delivered&{CREDS}", content_type="application/json")
    assert len(receipts) == 1


# --- vocabulary and ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("accepted", Status.SUBMITTED),
        ("enroute", Status.ENROUTE),
        ("delivered", Status.DELIVERED),
        ("expired", Status.EXPIRED),
        ("undeliverable", Status.UNDELIVERABLE),
        ("rejected", Status.REJECTED),
        ("unknown", Status.UNKNOWN),
    ],
)
def test_every_message_state_maps_per_spec(state: str, status: Status) -> None:
    [receipt] = dlr(f"message_id=9&message_state={state}&{CREDS}")
    assert receipt.status == status
    assert receipt.gateway_status == state


def test_state_is_matched_without_regard_to_case_and_kept_as_sent() -> None:
    [receipt] = dlr(f"message_id=9&message_state=Delivered&{CREDS}")
    assert receipt.status == Status.DELIVERED
    assert receipt.gateway_status == "Delivered"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("000123", "123"),
        (" 42 ", "42"),
        ("0", "0"),
        ("000", "0"),
        ("1561370632513", "1561370632513"),
    ],
)
def test_normalise_id(raw: str, normalised: str) -> None:
    assert smartswitch.normalise_id(raw) == normalised


def test_receipt_ids_are_normalised() -> None:
    [receipt] = dlr(f"message_id=%20000042%20&message_state=delivered&{CREDS}")
    assert receipt.gateway_id == "42"


def test_without_request_id_there_is_no_meta() -> None:
    receipts = dlr(
        f"message_id=1&message_state=delivered&message_id=2&message_state=enroute"
        f"&request_id=r2&{CREDS}"
    )
    assert [r.request_id for r in receipts] == [None, "r2"]
    data = answer_json(smartswitch.answer_receipts(receipts))["data"]
    assert "meta" not in data[0]
    assert data[1]["meta"] == {"request_id": "r2"}


# --- malformed requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        (
            "message_id=1&message_state=delivered&message_id=2&message_state=foo",
            "group 2: message_state 'foo' is not one of ",
        ),
        ("message_id=1&message_state=delivered&message_id=2", "group 2: message_state is missing"),
        ("message_id=1&message_id=2&message_state=delivered", "group 1: message_state is missing"),
        ("message_id=&message_state=delivered", "group 1: message_id is empty"),
        ("message_state=delivered", "group 1: message_state comes before any message_id"),
        (
            "message_id=1&message_state=delivered&message_state=expired",
            "group 1: message_state is given twice",
        ),
        ("", "message_id is required"),
    ],
)
def test_malformed_groups_are_400_naming_the_group(query: str, detail: str) -> None:
    error = refused(f"{query}&{CREDS}")
    assert isinstance(error, MalformedReceipt)
    assert error.detail.startswith(detail)
    answer = smartswitch.answer_error(error)
    assert answer.status == 400
    document = answer_json(answer)
    assert set(document) == {"errors"}
    assert document["errors"] == [
        {"code": "invalid_parameter", "title": "Invalid parameter", "detail": error.detail}
    ]


def test_unknown_state_detail_lists_the_vocabulary() -> None:
    error = refused(f"message_id=1&message_state=foo&{CREDS}")
    for state in ("enroute", "delivered", "expired", "undeliverable", "accepted", "unknown"):
        assert state in error.detail


def test_one_malformed_group_applies_none() -> None:
    with pytest.raises(MalformedReceipt):
        dlr(f"message_id=1&message_state=delivered&message_id=2&message_state=bogus&{CREDS}")


def test_payload_too_large_answer() -> None:
    answer = smartswitch.answer_error(PayloadTooLarge("the body is larger than 262144 bytes"))
    assert answer.status == 413
    assert answer_json(answer)["errors"][0]["code"] == "payload_too_large"


# --- get_format -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["smartswitch", "conceptomovil", "vibes", "ip2sms"])
def test_get_format_returns_the_module_with_the_whole_interface(name: str) -> None:
    module = get_format(name)
    assert module.__name__ == f"smsbridge.carriers.{name}"  # type: ignore[attr-defined]
    for function in ("submit", "normalise_id", "read_receipts", "answer_receipts", "answer_error"):
        assert callable(getattr(module, function))


def test_get_format_unknown_is_key_error() -> None:
    with pytest.raises(KeyError):
        get_format("smpp")
    with pytest.raises(KeyError):
        get_format("base")


def test_format_modules_load_only_when_asked_for() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared"
    code = (
        "import sys\n"
        "from smsbridge.carriers import get_format\n"
        "before = [m for m in sys.modules if m.startswith('smsbridge.carriers.')]\n"
        "get_format('vibes')\n"
        "after = sorted(m for m in sys.modules if m.startswith('smsbridge.carriers.'))\n"
        "print(before, after)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=shared, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ("[] ['smsbridge.carriers.base', 'smsbridge.carriers.vibes']")


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
    reference="msg-0001", to="+380671234501", text="Код: 1234 & <ok>", sender="DEMO"
)


def carrier_at(server: FakeCarrier, **overrides: Any) -> Any:
    return carrier_config("smartswitch", server.url, **overrides)


def test_submit_sends_the_documented_json(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, '{"message_id": "0001561370632513", "status": "accepted"}')

    result = smartswitch.submit(session, carrier_at(server), SUBMISSION)

    assert result.gateway_id == "1561370632513"
    assert result.gateway_status == "accepted"
    assert result.status == Status.SUBMITTED
    [received] = server.received
    assert received.method == "POST"
    assert received.path == "/smartswitch/send"
    assert received.headers["content-type"] == "application/json"
    assert received.basic_auth() == (SUBMIT_USERNAME, SUBMIT_PASSWORD)
    assert received.json() == {
        "to": "+380671234501",
        "from": "DEMO",
        "text": "Код: 1234 & <ok>",
        "message_id": "msg-0001",
    }


def test_submit_uses_the_carrier_sender_when_the_message_has_none(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(201, '{"message_id": 77, "status": "accepted"}')
    submission = Submission(reference="r", to="+380671234501", text="hi", sender="")

    result = smartswitch.submit(session, carrier_at(server), submission)

    assert result.gateway_id == "77"
    assert server.received[0].json()["from"] == "SMSBRIDGE"


def test_submit_retry_reuses_the_reference(server: FakeCarrier, session: requests.Session) -> None:
    server.script(Scripted(503, "busy"), Scripted(202, '{"message_id": "5"}'))
    carrier = carrier_at(server)

    with pytest.raises(TransientSubmitError):
        smartswitch.submit(session, carrier, SUBMISSION)
    result = smartswitch.submit(session, carrier, SUBMISSION)

    assert result.gateway_id == "5"
    assert result.gateway_status == "accepted"
    assert [r.json()["message_id"] for r in server.received] == ["msg-0001", "msg-0001"]


def test_submit_4xx_is_permanent_with_the_first_error(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(
        400,
        json.dumps(
            {
                "errors": [
                    {"code": "invalid_number", "title": "Bad number", "detail": "to is invalid"},
                    {"code": "other", "title": "x", "detail": "y"},
                ]
            }
        ),
    )
    with pytest.raises(PermanentSubmitError) as caught:
        smartswitch.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == "invalid_number"
    assert caught.value.description == "to is invalid"
    assert caught.value.gateway_status == "HTTP 400"
    assert caught.value.status == Status.FAILED


def test_submit_4xx_without_json_is_permanent(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(403, "<html>Forbidden</html>", content_type="text/html")
    with pytest.raises(PermanentSubmitError) as caught:
        smartswitch.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == "403"


def test_submit_error_state_in_a_2xx_is_permanent(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, '{"message_id": "9", "status": "rejected"}')
    with pytest.raises(PermanentSubmitError) as caught:
        smartswitch.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.status == Status.REJECTED
    assert caught.value.gateway_status == "rejected"


def test_submit_errors_in_a_2xx_are_permanent(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, '{"errors": [{"code": "no_credit", "title": "t", "detail": "No credit"}]}')
    with pytest.raises(PermanentSubmitError) as caught:
        smartswitch.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == "no_credit"


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_submit_5xx_and_429_are_transient(
    status: int, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(status, '{"errors": []}')
    with pytest.raises(TransientSubmitError) as caught:
        smartswitch.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == str(status)


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        "[]",
        '{"status": "accepted"}',
        '{"message_id": ""}',
        '{"message_id": true}',
    ],
)
def test_submit_unreadable_2xx_is_transient(
    body: str, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, body)
    with pytest.raises(TransientSubmitError):
        smartswitch.submit(session, carrier_at(server), SUBMISSION)


def test_submit_time_out_is_transient(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, '{"message_id": "1"}', delay=1.0)
    with pytest.raises(TransientSubmitError) as caught:
        smartswitch.submit(session, carrier_at(server, read_timeout=0.2), SUBMISSION)
    assert "timed out" in caught.value.description


def test_submit_connection_refused_is_transient_and_names_no_secret(
    session: requests.Session,
) -> None:
    carrier = carrier_config("smartswitch", submit_url=refused_url() + "?key=url-secret")
    with pytest.raises(TransientSubmitError) as caught:
        smartswitch.submit(session, carrier, SUBMISSION)
    text = str(caught.value) + caught.value.description
    assert "url-secret" not in text
    assert SUBMIT_PASSWORD not in text


def test_submit_bad_url_is_permanent(session: requests.Session) -> None:
    carrier = carrier_config("smartswitch", submit_url="not a url")
    with pytest.raises(PermanentSubmitError):
        smartswitch.submit(session, carrier, SUBMISSION)
