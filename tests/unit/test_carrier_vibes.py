"""Vibes: mtMessage XML submission, mtMessageResponse receipts (Basic or ?token=), empty 200."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from smsbridge import safexml
from smsbridge.carriers import get_format, vibes
from smsbridge.carriers.base import (
    MalformedReceipt,
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
    SUBMIT_PASSWORD,
    SUBMIT_USERNAME,
    FakeCarrier,
    carrier_config,
    hostile_documents,
    http_request,
    new_session,
    refused_url,
)

CARRIER = carrier_config("vibes")
CREDENTIALS = ("vibes", "vibes-secret")

# The seed's two callbacks, as written there.
SEED_ORIGINAL = """<?xml version="1.0" encoding="UTF-8"?>
<mtMessageResponse messageId="865cd3d1-bea6-4a6f-8bac-bae483248a27" 
	submitterMessageId="239487234987234" 
    fwdToMessageId="734cd3d1-bea6-4a6f-8bac-bae985345a27"
	receiptDate="2011-04-19T15:10:08.320-05:00"> 
	<type>Carrier</type>
	<status isError="true">
		<description>Description of status</description>
		<errorCode>100</errorCode>
		<internalErrorCode>255</internalErrorCode>
	</status>
</mtMessageResponse>
"""  # noqa: W291

SEED_ALTERNATE = """<?xml version="1.0" encoding="UTF-8"?>
<mtMessageResponse messageId="734cd3d1-bea6-4a6f-8bac-bae985345a27" 
	submitterMessageId="239487234987234" 
	fwdFromMessageId="865cd3d1-bea6-4a6f-8bac-bae483248a27"
    receiptDate="2011-04-19T15:10:08.320-05:00"> 
	<type>Carrier</type>
	<status isError="false">
		<description>Success</description>
	</status>
</mtMessageResponse>
"""  # noqa: W291


# The seed's request example, as written there.
SEED_MT_MESSAGE = """<?xml version="1.0" encoding="UTF-8"?>
<mtMessage submitterMessageId="239487234987234" alternateDelivery="true">
	<destination carrier="102" address="+18475551212" type="MDN" />
	<source address="98765" type="SC" />
	<text>123857AB12</text>
	<receiptOption callbackUrl="http://www.client.com/callback" >ERROR</receiptOption>
	<transaction id="6439376297230"/>
</mtMessage>
"""


def receipt_xml(
    *,
    type_word: str = "Handset",
    is_error: str = "false",
    codes: str = "",
    message_id: str = "865cd3d1-bea6-4a6f-8bac-bae483248a27",
    extra_attributes: str = "",
) -> str:
    return (
        f'<mtMessageResponse messageId="{message_id}" {extra_attributes}>'
        f"<type>{type_word}</type>"
        f'<status isError="{is_error}"><description>d</description>{codes}</status>'
        "</mtMessageResponse>"
    )


def dlr(
    body: str | bytes,
    *,
    query: str = "",
    auth: tuple[str, str] | None = CREDENTIALS,
    content_type: str | None = "application/xml",
) -> list[Receipt]:
    request = http_request(f"/dlr/vibes?{query}", body=body, auth=auth, content_type=content_type)
    return vibes.read_receipts(request, CARRIER)


def refused(body: str | bytes, **kwargs: Any) -> ReceiptError:
    with pytest.raises(ReceiptError) as caught:
        dlr(body, **kwargs)
    return caught.value


def test_is_the_vibes_format() -> None:
    assert get_format("vibes") is vibes


# --- submission: the seed's example ----------------------------------------------------------


def _fields(root: ET.Element) -> dict[str, str]:
    """Every attribute and text of a document, by path: `destination@address`, `text`."""
    found: dict[str, str] = {f"{root.tag}@{k}": v for k, v in root.attrib.items()}
    for child in root:
        found |= {f"{child.tag}@{k}": v for k, v in child.attrib.items()}
        if (child.text or "").strip():
            found[child.tag] = (child.text or "").strip()
    return found


def test_the_mt_message_sent_for_the_seeds_example_matches_it() -> None:
    """Build the request for the seed's own values and compare it field by field: everything
    smsbridge sends stands in the seed's example with the same value, but for two choices of
    ours (all receipts, not only errors; the DLR token on the callback URL), and what smsbridge
    leaves out is the seed's optional carrier hint and transaction id."""
    seed = _fields(safexml.parse(SEED_MT_MESSAGE.encode()))
    submission = Submission(
        reference="239487234987234",
        to="+18475551212",
        text="123857AB12",
        sender="98765",
        receipt_url="http://www.client.com/callback",
        alternate_delivery=True,
    )
    sent = _fields(safexml.parse(vibes.build_mt_message(CARRIER, submission)))

    assert sent.pop("receiptOption") == "ALL"
    assert (
        sent.pop("receiptOption@callbackUrl") == "http://www.client.com/callback?token=vibes-secret"
    )
    assert seed.pop("receiptOption") == "ERROR"
    assert seed.pop("receiptOption@callbackUrl") == "http://www.client.com/callback"
    assert {key: seed[key] for key in sent} == sent
    assert set(seed) - set(sent) == {"destination@carrier", "transaction@id"}


# --- receipts: seed examples ------------------------------------------------------------------


def test_seed_callback_for_the_original_message() -> None:
    [receipt] = dlr(SEED_ORIGINAL)

    assert receipt.gateway_id == "865cd3d1-bea6-4a6f-8bac-bae483248a27"
    # Vibes created an alternate for the failed original (status `Forwarded`): not its end.
    assert receipt.status == Status.ENROUTE
    assert receipt.gateway_status == "Forwarded"
    assert receipt.gateway_error == "100/255"
    assert receipt.description == (
        "Description of status; forwarded by the carrier to 734cd3d1-bea6-4a6f-8bac-bae985345a27"
    )
    assert receipt.forwarded_to == "734cd3d1-bea6-4a6f-8bac-bae985345a27"
    assert receipt.forwarded_from == ""
    assert receipt.at == datetime(2011, 4, 19, 20, 10, 8, 320000, tzinfo=UTC)
    assert receipt.extra["submitter_message_id"] == "239487234987234"

    answer = vibes.answer_receipts([receipt])
    assert answer.status == 200
    assert answer.body == ""


def test_seed_callback_for_the_alternate_message() -> None:
    [receipt] = dlr(SEED_ALTERNATE)

    assert receipt.gateway_id == "734cd3d1-bea6-4a6f-8bac-bae985345a27"
    # The seed's example of the call "when the message succeeds" (SPEC 2.2): delivered.
    assert receipt.status == Status.DELIVERED
    assert receipt.gateway_status == "Carrier"
    assert receipt.gateway_error == ""
    assert receipt.description == "Success"
    assert receipt.forwarded_from == "865cd3d1-bea6-4a6f-8bac-bae483248a27"
    assert receipt.forwarded_to == ""


@pytest.mark.parametrize(
    ("attribute_name", "field"),
    [
        ("fwdToMessageId", "forwarded_to"),
        ("forwardedMessageId", "forwarded_to"),
        ("fwdFromMessageId", "forwarded_from"),
        ("originalMessageId", "forwarded_from"),
    ],
)
def test_every_spelling_the_seed_uses_for_the_forward_ids(attribute_name: str, field: str) -> None:
    [receipt] = dlr(receipt_xml(extra_attributes=f'{attribute_name}="ABC-1"'))
    assert getattr(receipt, field) == "abc-1"


@pytest.mark.parametrize("is_error", ["true", "false"])
def test_a_forward_is_not_the_end_of_the_message(is_error: str) -> None:
    [receipt] = dlr(
        receipt_xml(
            type_word="Carrier", is_error=is_error, extra_attributes='fwdToMessageId="new-id"'
        )
    )
    assert receipt.status == Status.ENROUTE
    assert receipt.gateway_status == "Forwarded"
    assert receipt.description == "d; forwarded by the carrier to new-id"


def test_the_forwarded_status_word_is_read() -> None:
    [receipt] = dlr(receipt_xml(type_word="Forwarded"))
    assert (receipt.status, receipt.gateway_status) == (Status.ENROUTE, "Forwarded")


def test_the_alternates_receipts_keep_their_own_status() -> None:
    [receipt] = dlr(receipt_xml(type_word="Handset", extra_attributes='fwdFromMessageId="o-1"'))
    assert (receipt.status, receipt.forwarded_from) == (Status.DELIVERED, "o-1")


# --- receipts: mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_word", "is_error", "codes", "status"),
    [
        ("Handset", "false", "", Status.DELIVERED),
        ("Carrier", "false", "", Status.DELIVERED),
        ("carrier", "false", "", Status.DELIVERED),
        ("System", "false", "", Status.ENROUTE),
        ("System", "true", "<internalErrorCode>255</internalErrorCode>", Status.UNDELIVERABLE),
        ("Handset", "true", "<internalErrorCode>7</internalErrorCode>", Status.REJECTED),
        ("handset", "FALSE", "", Status.DELIVERED),
        ("Handset", "true", "<errorCode>100</errorCode>", Status.UNDELIVERABLE),
        ("Carrier", "true", "<internalErrorCode>255</internalErrorCode>", Status.UNDELIVERABLE),
        ("Carrier", "true", "<internalErrorCode>7</internalErrorCode>", Status.REJECTED),
        ("Carrier", "true", "<internalErrorCode>9</internalErrorCode>", Status.REJECTED),
        ("System", "true", "<internalErrorCode>12</internalErrorCode>", Status.REJECTED),
        ("Carrier", "true", "<errorCode>7</errorCode>", Status.UNDELIVERABLE),
        ("Whatever", "true", "", Status.UNDELIVERABLE),
    ],
)
def test_mapping_per_spec(type_word: str, is_error: str, codes: str, status: Status) -> None:
    [receipt] = dlr(receipt_xml(type_word=type_word, is_error=is_error, codes=codes))
    assert receipt.status == status
    assert receipt.gateway_status == type_word


@pytest.mark.parametrize(
    ("codes", "gateway_error"),
    [
        ("<errorCode>100</errorCode><internalErrorCode>255</internalErrorCode>", "100/255"),
        ("<errorCode>100</errorCode>", "100"),
        ("<internalErrorCode>9</internalErrorCode>", "9"),
        ("", ""),
    ],
)
def test_gateway_error_joins_the_codes_present(codes: str, gateway_error: str) -> None:
    [receipt] = dlr(receipt_xml(is_error="true", codes=codes))
    assert receipt.gateway_error == gateway_error


def test_ids_are_lower_cased_and_trimmed() -> None:
    [receipt] = dlr(
        receipt_xml(
            message_id=" 865CD3D1-BEA6-4A6F-8BAC-BAE483248A27 ",
            extra_attributes='fwdToMessageId="734CD3D1-BEA6-4A6F-8BAC-BAE985345A27"',
        )
    )
    assert receipt.gateway_id == "865cd3d1-bea6-4a6f-8bac-bae483248a27"
    assert receipt.forwarded_to == "734cd3d1-bea6-4a6f-8bac-bae985345a27"
    assert vibes.normalise_id("\tABC-def\n") == "abc-def"


def test_receipt_date_in_utc_and_optional() -> None:
    [dated] = dlr(receipt_xml(extra_attributes='receiptDate="2024-01-02T03:04:05Z"'))
    assert dated.at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    [undated] = dlr(receipt_xml())
    assert undated.at is None


def test_unreadable_receipt_date_does_not_lose_the_receipt() -> None:
    [receipt] = dlr(receipt_xml(extra_attributes='receiptDate="last tuesday"'))
    assert receipt.status == Status.DELIVERED
    assert receipt.at is None
    assert receipt.extra["receipt_date"] == "last tuesday"


def test_namespaced_document_is_read() -> None:
    body = (
        '<v:mtMessageResponse xmlns:v="urn:vibes" messageId="ABC">'
        '<v:type>Handset</v:type><v:status isError="false"/></v:mtMessageResponse>'
    )
    [receipt] = dlr(body)
    assert (receipt.gateway_id, receipt.status) == ("abc", Status.DELIVERED)


# --- receipts: authentication and media type --------------------------------------------------


def test_token_query_parameter_instead_of_basic() -> None:
    [receipt] = dlr(SEED_ALTERNATE, query="token=vibes-secret", auth=None)
    assert receipt.status == Status.DELIVERED


def test_token_wins_over_wrong_basic() -> None:
    assert dlr(SEED_ALTERNATE, query="token=vibes-secret", auth=("vibes", "wrong"))


@pytest.mark.parametrize(
    ("query", "auth"),
    [
        ("", None),
        ("token=wrong", None),
        ("token=", None),
        ("token=vibes", None),
        ("", ("vibes", "wrong")),
        ("", ("other", "vibes-secret")),
        ("token=wrong", ("vibes", "wrong")),
    ],
)
def test_bad_credentials_are_401(query: str, auth: tuple[str, str] | None) -> None:
    error = refused(SEED_ALTERNATE, query=query, auth=auth)
    assert isinstance(error, ReceiptAuthError)
    answer = vibes.answer_error(error)
    assert answer.status == 401
    assert "vibes-secret" not in answer.body


def test_carrier_without_dlr_password_accepts_no_empty_token() -> None:
    carrier = carrier_config("vibes", dlr_login="", dlr_password="")
    request = http_request("/dlr/vibes?token=", body=SEED_ALTERNATE, content_type="text/xml")
    with pytest.raises(ReceiptAuthError):
        vibes.read_receipts(request, carrier)


@pytest.mark.parametrize(
    "content_type", ["application/xml", "text/xml", "text/xml; charset=UTF-8", None]
)
def test_xml_or_missing_content_type_is_accepted(content_type: str | None) -> None:
    assert dlr(SEED_ALTERNATE, content_type=content_type)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_other_content_types_are_415(content_type: str) -> None:
    error = refused(SEED_ALTERNATE, content_type=content_type)
    assert isinstance(error, UnsupportedMediaType)
    assert vibes.answer_error(error).status == 415


# --- receipts: malformed and hostile ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "empty"),
        ("not xml", "malformed XML"),
        ("<mtMessageResponse messageId='x'>", "malformed XML"),
        ("<mtMessageRsp messageId='x'/>", "expected mtMessageResponse"),
        (receipt_xml(message_id=""), "messageId is required"),
        (receipt_xml(type_word=""), "type is required"),
        (
            "<mtMessageResponse messageId='x'><type>Handset</type></mtMessageResponse>",
            "status is required",
        ),
        (receipt_xml(is_error="maybe"), "isError must be true or false"),
        (receipt_xml(type_word="Satellite"), "type 'Satellite' is not one of Handset"),
    ],
)
def test_malformed_receipts_are_400_in_plain_text(body: str, reason: str) -> None:
    error = refused(body)
    assert isinstance(error, MalformedReceipt)
    assert reason in error.detail
    answer = vibes.answer_error(error)
    assert answer.status == 400
    assert reason in answer.body
    assert "\n" not in answer.body


@pytest.mark.parametrize("kind", ["dtd", "billion_laughs", "external_entity"])
def test_hostile_xml_is_400_and_never_expanded(kind: str) -> None:
    body = hostile_documents("mtMessageResponse")[kind]
    error = refused(body)
    assert isinstance(error, MalformedReceipt)
    answer = vibes.answer_error(error)
    assert answer.status == 400
    assert "root:" not in answer.body
    assert len(answer.body) < 200


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
    reference="msg-1-0001",
    to="+18475551212",
    text='Your code is 1234 <b> & "quoted"',
    sender="98765",
    receipt_url="https://api.example.com/dlr/vibes",
    client_message_id="client-42",
)
ACCEPTED = '<mtMessageRsp messageId="865CD3D1-BEA6-4A6F-8BAC-BAE483248A27"/>'


def carrier_at(server: FakeCarrier, **overrides: Any) -> Any:
    return carrier_config("vibes", server.url, **{"sender": "11111", **overrides})


def test_submit_sends_the_documented_xml(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, ACCEPTED, content_type="application/xml")

    result = vibes.submit(session, carrier_at(server), SUBMISSION)

    assert result.gateway_id == "865cd3d1-bea6-4a6f-8bac-bae483248a27"
    assert result.gateway_status == "accepted"
    assert result.status == Status.SUBMITTED
    [received] = server.received
    assert received.path == "/vibes/send"
    assert received.headers["content-type"] == "application/xml"
    assert received.basic_auth() == (SUBMIT_USERNAME, SUBMIT_PASSWORD)
    assert received.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = received.xml()
    assert root.tag == "mtMessage"
    assert root.attrib == {"submitterMessageId": "msg-1-0001", "alternateDelivery": "false"}
    assert [child.tag for child in root] == ["destination", "source", "text", "receiptOption"]
    assert root.find("destination").attrib == {"address": "+18475551212", "type": "MDN"}  # type: ignore[union-attr]
    assert root.find("source").attrib == {"address": "98765", "type": "SC"}  # type: ignore[union-attr]
    assert root.findtext("text") == 'Your code is 1234 <b> & "quoted"'
    option = root.find("receiptOption")
    assert option is not None
    assert option.text == "ALL"
    assert option.get("callbackUrl") == "https://api.example.com/dlr/vibes?token=vibes-secret"


def test_submit_long_code_sender_and_alternate_delivery(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(202, ACCEPTED, content_type="text/xml")
    submission = Submission(
        reference="r2", to="+18475551212", text="hi", sender="", alternate_delivery=True
    )
    carrier = carrier_at(server, sender="+18475550100", sender_type="LC")

    vibes.submit(session, carrier, submission)

    root = server.received[0].xml()
    assert root.get("alternateDelivery") == "true"
    assert root.find("source").attrib == {"address": "+18475550100", "type": "LC"}  # type: ignore[union-attr]
    # No receipt URL: no receiptOption, so Vibes posts no callbacks.
    assert root.find("receiptOption") is None


@pytest.mark.parametrize(
    ("receipt_url", "expected"),
    [
        ("https://h/dlr/vibes?token=already", "https://h/dlr/vibes?token=already"),
        ("https://h/dlr/vibes?x=1", "https://h/dlr/vibes?x=1&token=vibes-secret"),
        ("https://h/dlr/vibes", "https://h/dlr/vibes?token=vibes-secret"),
    ],
)
def test_callback_url_carries_the_token_once(receipt_url: str, expected: str) -> None:
    assert vibes.callback_url(receipt_url, CARRIER) == expected


def test_submit_4xx_is_permanent_with_the_carrier_error(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(
        400, '<error code="1004" description="Invalid destination"/>', content_type="text/xml"
    )
    with pytest.raises(PermanentSubmitError) as caught:
        vibes.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == "1004"
    assert caught.value.description == "Invalid destination"


def test_submit_4xx_with_any_body_is_permanent(
    server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(401, "<html>no</html", content_type="text/html")
    with pytest.raises(PermanentSubmitError) as caught:
        vibes.submit(session, carrier_at(server), SUBMISSION)
    assert caught.value.gateway_error == "401"


def test_submit_error_in_a_2xx_is_permanent(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, '<mtMessageRsp><error code="21" description="Blocked"/></mtMessageRsp>')
    with pytest.raises(PermanentSubmitError) as caught:
        vibes.submit(session, carrier_at(server), SUBMISSION)
    assert (caught.value.gateway_error, caught.value.description) == ("21", "Blocked")


@pytest.mark.parametrize("status", [500, 503, 429])
def test_submit_5xx_and_429_are_transient(
    status: int, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(status, "<error code='x'/>")
    with pytest.raises(TransientSubmitError):
        vibes.submit(session, carrier_at(server), SUBMISSION)


@pytest.mark.parametrize(
    "body",
    [
        "garbage",
        "",
        "<mtMessageRsp/>",
        '<other messageId="1"/>',
        hostile_documents("mtMessageRsp")["billion_laughs"].decode(),
        hostile_documents("mtMessageRsp")["external_entity"].decode(),
    ],
)
def test_submit_unreadable_2xx_is_transient(
    body: str, server: FakeCarrier, session: requests.Session
) -> None:
    server.answer(200, body, content_type="application/xml")
    with pytest.raises(TransientSubmitError):
        vibes.submit(session, carrier_at(server), SUBMISSION)


def test_submit_time_out_is_transient(server: FakeCarrier, session: requests.Session) -> None:
    server.answer(200, ACCEPTED, delay=1.0)
    with pytest.raises(TransientSubmitError):
        vibes.submit(session, carrier_at(server, read_timeout=0.2), SUBMISSION)


def test_submit_connection_refused_is_transient(session: requests.Session) -> None:
    carrier = carrier_config("vibes", submit_url=refused_url())
    with pytest.raises(TransientSubmitError) as caught:
        vibes.submit(session, carrier, SUBMISSION)
    assert SUBMIT_PASSWORD not in caught.value.description
