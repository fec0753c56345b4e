"""OFSC Outbound API: requests from OFSC, answers to it, the user block and callbacks."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element

import pytest

from smsbridge import ofsc, safexml
from smsbridge.statuses import Status

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
URN = "urn:toatech:agent"
NOW = datetime(2011, 7, 7, 9, 30, 58, tzinfo=UTC)
NOW_TEXT = "2011-07-07T09:30:58+00:00"


def _messages_xml(prefix: str) -> str:
    """Ten messages as OFSC sends them; `prefix` is '' or 'urn:' / 'ns1:'."""
    p = prefix
    items = []
    for number in range(10):
        items.append(
            f"<{p}message>"
            f"<{p}app_host>ofsc.example.com</{p}app_host>"
            f"<{p}app_port>443</{p}app_port>"
            f"<{p}app_url>/soap/outbound/</{p}app_url>"
            f"<{p}message_id>{1000 + number}</{p}message_id>"
            f"<{p}company_id>acme</{p}company_id>"
            f"<{p}address>+52 55 1234 56{number:02d}</{p}address>"
            f"<{p}send_to>2011-07-07 18:00:00</{p}send_to>"
            f"<{p}subject>Appointment</{p}subject>"
            f"<{p}body>Your technician arrives at 10:{number:02d}</{p}body>"
            f"<{p}activity_id>{5000 + number}</{p}activity_id>"
            f"</{p}message>"
        )
    return "".join(items)


def _user_xml(prefix: str) -> str:
    p = prefix
    return (
        f"<{p}user><{p}now>{NOW_TEXT}</{p}now><{p}login>ofsc</{p}login>"
        f"<{p}company>acme</{p}company><{p}auth_string>abc123</{p}auth_string></{p}user>"
    )


def _default_namespace() -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body>'
        f'<send_message xmlns="{URN}">{_user_xml("")}<messages>{_messages_xml("")}</messages>'
        "</send_message></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _urn_prefix() -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:urn="{URN}"><soapenv:Header/>'
        f"<soapenv:Body><urn:send_message>{_user_xml('urn:')}"
        f"<urn:messages>{_messages_xml('urn:')}</urn:messages>"
        "</urn:send_message></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _ns1_prefix() -> bytes:
    """Other prefixes for both namespaces, and the children in a default namespace."""
    return (
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP}" xmlns:ns1="{URN}">\n'
        f'  <SOAP-ENV:Body>\n    <ns1:send_message xmlns="{URN}">\n'
        f"      {_user_xml('')}\n      <ns1:messages>{_messages_xml('ns1:')}</ns1:messages>\n"
        "    </ns1:send_message>\n  </SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n"
    ).encode()


def _envelope(operation: str, inner: str = "") -> bytes:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:urn="{URN}"><soapenv:Body>'
        f"<urn:{operation}>{inner}</urn:{operation}></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _ids(*message_ids: str) -> str:
    items = "".join(
        f"<urn:message><urn:message_id>{item}</urn:message_id></urn:message>"
        for item in message_ids
    )
    return f"<urn:messages>{items}</urn:messages>"


def _find(parent: Element, *path: str) -> Element:
    """Follow qualified `urn:` children; fail the test when one is missing."""
    element = parent
    for name in path:
        found = element.find(f"{{{URN}}}{name}")
        assert found is not None, f"missing <{name}>"
        element = found
    return element


def _body_child(document: str) -> Element:
    root = safexml.parse(document.encode())
    assert root.tag == f"{{{SOAP}}}Envelope"
    body = root.find(f"{{{SOAP}}}Body")
    assert body is not None
    return body[0]


def _send(message_id: str, address: str = "", body: str = "") -> ofsc.OfscMessage:
    return ofsc.OfscMessage(message_id=message_id, address=address, body=body)


# ---------------------------------------------------------------------------------------------
# Requests from OFSC


@pytest.mark.parametrize("document", [_default_namespace(), _urn_prefix(), _ns1_prefix()])
def test_send_message_with_ten_messages_reads_the_same_whatever_the_prefixes(document: bytes):
    request = ofsc.parse_request(document)

    assert request.operation == "send_message"
    assert request.user == ofsc.OfscUser(
        now=NOW_TEXT, company="acme", login="ofsc", auth_string="abc123"
    )
    assert [message.message_id for message in request.messages] == [
        str(1000 + number) for number in range(10)
    ]
    first = request.messages[0]
    assert first.address == "+52 55 1234 5600"
    assert first.body == "Your technician arrives at 10:00"
    assert first.subject == "Appointment"
    assert first.send_to == "2011-07-07 18:00:00"
    assert (first.app_host, first.app_port, first.app_url) == (
        "ofsc.example.com",
        "443",
        "/soap/outbound/",
    )
    assert first.company_id == "acme"
    assert first.fields == {"activity_id": "5000"}


def test_a_single_message_is_still_a_list():
    request = ofsc.parse_request(_envelope("send_message", _ids("42")))
    assert request.messages == [ofsc.OfscMessage(message_id="42")]
    assert request.user is None


def test_get_message_status_and_drop_message_are_dispatched_on_the_body_element():
    status = ofsc.parse_request(_envelope("get_message_status", _ids("2006", "2007")))
    drop = ofsc.parse_request(_envelope("drop_message", _user_xml("urn:") + _ids("2006")))

    assert status.operation == "get_message_status"
    assert [message.message_id for message in status.messages] == ["2006", "2007"]
    assert drop.operation == "drop_message"
    assert drop.user is not None and drop.user.login == "ofsc"
    assert [message.message_id for message in drop.messages] == ["2006"]


def test_body_markup_sent_unescaped_is_kept_as_text_for_the_recipient():
    document = _envelope(
        "send_message",
        "<urn:messages><urn:message><urn:message_id>7</urn:message_id>"
        "<urn:body><sms><to>+15551234567</to><text>Hello</text></sms></urn:body>"
        "</urn:message></urn:messages>",
    )
    message = ofsc.parse_request(document).messages[0]
    assert ofsc.recipient_of(message) == ofsc.Recipient(to="+15551234567", text="Hello")


def _assert_client_fault(body: bytes, reason: str) -> ofsc.OfscFault:
    with pytest.raises(ofsc.OfscFault) as caught:
        ofsc.parse_request(body)
    error = caught.value
    assert error.faultcode == "Client"
    assert error.http_status == 500
    assert reason in error.faultstring
    answer = _body_child(error.envelope)
    assert answer.tag == f"{{{SOAP}}}Fault"
    assert answer.findtext("faultcode") == "soapenv:Client"
    assert answer.findtext("faultstring") == error.faultstring
    return error


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not well-formed XML"),
        (b"message_id=1&body=hello", "not well-formed XML"),
        (b'{"message_id": 1}', "not well-formed XML"),
        (b"<Envelope><Body><send_message/></Body></Envelope>", "not a SOAP 1.1 envelope"),
        (f'<urn:send_message xmlns:urn="{URN}"/>'.encode(), "not a SOAP 1.1 envelope"),
        (
            b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope">'
            b"<e:Body><send_message/></e:Body></e:Envelope>",
            "not a SOAP 1.1 envelope",
        ),
        (f'<s:Envelope xmlns:s="{SOAP}"><s:Header/></s:Envelope>'.encode(), "with a Body"),
        (f'<s:Envelope xmlns:s="{SOAP}"><s:Body/></s:Envelope>'.encode(), "Body is empty"),
        (_envelope("set_message_status", _ids("1")), "unknown operation: set_message_status"),
        (_envelope("send_messages", _ids("1")), "unknown operation: send_messages"),
    ],
)
def test_unusable_requests_get_a_client_fault(body: bytes, reason: str):
    _assert_client_fault(body, reason)


def test_a_message_without_message_id_faults_the_call():
    document = _envelope(
        "send_message",
        "<urn:messages><urn:message><urn:message_id>1</urn:message_id></urn:message>"
        "<urn:message><urn:message_id> </urn:message_id><urn:body>x</urn:body></urn:message>"
        "</urn:messages>",
    )
    _assert_client_fault(document, "message 2 has no message_id")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
<soapenv:Body><send_message xmlns="urn:toatech:agent"><messages><message>
<message_id>1</message_id><body>&lol3;</body></message></messages></send_message>
</soapenv:Body></soapenv:Envelope>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
<soapenv:Body><send_message xmlns="urn:toatech:agent"><messages><message>
<message_id>1</message_id><body>&xxe;</body></message></messages></send_message>
</soapenv:Body></soapenv:Envelope>"""

PLAIN_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Envelope SYSTEM "http://attacker.example/soap.dtd">
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
<soapenv:Body><get_message_status xmlns="urn:toatech:agent"/></soapenv:Body>
</soapenv:Envelope>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, PLAIN_DTD])
def test_hostile_xml_is_refused_with_a_client_fault(body: bytes):
    error = _assert_client_fault(body, "DTDs and entities are not allowed")
    assert "root:" not in error.envelope
    assert "Traceback" not in error.envelope
    assert "lollol" not in error.envelope


# ---------------------------------------------------------------------------------------------
# Answers to OFSC


def test_send_message_response_emits_only_fields_with_a_value():
    document = ofsc.send_message_response(
        [
            ofsc.MessageResponse(message_id="1000", status="sending"),
            ofsc.MessageResponse(
                message_id="1001",
                status="failed",
                description="invalid phone number",
                data="",
                external_id=None,
                sent="",
                stop_further_attempts=True,
            ),
            ofsc.MessageResponse(
                message_id="1002",
                status="sent",
                description="  ",
                external_id="sms-1002",
                duration=14,
                sent="2011-11-29T12:54:22+00:00",
                fault_attempt=0,
            ),
        ]
    )
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    answer = _body_child(document)
    assert answer.tag == f"{{{URN}}}send_message_response"
    items = answer.findall(f"{{{URN}}}message_response")
    assert len(items) == 3

    def children(item: Element) -> dict[str, str | None]:
        return {safexml.local_name(child): child.text for child in item}

    assert children(items[0]) == {"message_id": "1000", "status": "sending"}
    assert children(items[1]) == {
        "message_id": "1001",
        "status": "failed",
        "description": "invalid phone number",
        "stop_further_attempts": "1",
    }
    assert children(items[2]) == {
        "message_id": "1002",
        "status": "sent",
        "external_id": "sms-1002",
        "duration": "14",
        "sent": "2011-11-29T12:54:22+00:00",
        "fault_attempt": "0",
    }
    assert [safexml.local_name(child) for child in items[0]] == ["message_id", "status"]
    assert "<urn:description />" not in document
    assert "/>" not in document.split("<soapenv:Body>", 1)[1]


def test_duration_must_be_an_integer():
    with pytest.raises(ValueError, match="duration"):
        ofsc.send_message_response(
            [ofsc.MessageResponse(message_id="1", status="sent", duration="14")]  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="duration"):
        ofsc.send_message_response(
            [ofsc.MessageResponse(message_id="1", status="sent", duration=True)]
        )


def test_response_text_is_escaped_and_stripped_of_characters_xml_cannot_carry():
    document = ofsc.send_message_response(
        [ofsc.MessageResponse("1", "failed", description="bad <to> & \x00\x1b number")]
    )
    description = _find(_body_child(document), "message_response", "description")
    assert description.text == "bad <to> &  number"


def test_get_message_status_response_maps_each_status():
    results = [
        ofsc.status_result("1", Status.QUEUED),
        ofsc.status_result("2", Status.ENROUTE),
        ofsc.status_result("3", Status.DELIVERED),
        ofsc.status_result("4", Status.UNDELIVERABLE),
        ofsc.status_result("5", None),
    ]
    answer = _body_child(ofsc.get_message_status_response(results))
    assert answer.tag == f"{{{URN}}}get_message_status_response"
    seen = [
        (
            _find(item, "message_id").text,
            _find(item, "result", "code").text,
            item.findtext(f"{{{URN}}}result/{{{URN}}}desc"),
        )
        for item in answer.findall(f"{{{URN}}}message_response")
    ]
    assert seen == [
        ("1", "OK", "WAITING"),
        ("2", "OK", "SENDING"),
        ("3", "OK", "DELIVERED"),
        ("4", "OK", "FAILED"),
        ("5", "NOT FOUND", None),
    ]


def test_ofsc_result_covers_every_status_per_the_contract():
    assert set(ofsc.OFSC_RESULT) == set(Status)
    assert ofsc.OFSC_RESULT[Status.QUEUED] == ("OK", "WAITING")
    for status in (Status.SUBMITTED, Status.ENROUTE, Status.UNKNOWN, Status.FORWARDED):
        assert ofsc.OFSC_RESULT[status] == ("OK", "SENDING")
    assert ofsc.OFSC_RESULT[Status.DELIVERED] == ("OK", "DELIVERED")
    assert ofsc.OFSC_RESULT[Status.TERMINATED] == ("OK", "SENT")
    for status in (Status.EXPIRED, Status.REJECTED, Status.FAILED, Status.CANCELLED):
        assert ofsc.OFSC_RESULT[status] == ("OK", "FAILED")


def test_drop_message_response():
    results = [
        ofsc.drop_result("2006", Status.CANCELLED),
        ofsc.drop_result("2007", Status.SUBMITTED),
        ofsc.drop_result("2008", Status.DELIVERED),
        ofsc.drop_result("2009", None),
    ]
    answer = _body_child(ofsc.drop_message_response(results))
    assert answer.tag == f"{{{URN}}}drop_message_response"
    items = answer.findall(f"{{{URN}}}message_response")
    codes = [_find(item, "result", "code").text for item in items]
    descs = [item.findtext(f"{{{URN}}}result/{{{URN}}}desc") for item in items]
    assert codes == ["OK", "ERROR", "ERROR", "NOT FOUND"]
    busy = "the message is under processing"
    assert descs == [None, busy, busy, None]
    assert [_find(item, "message_id").text for item in items] == ["2006", "2007", "2008", "2009"]


def test_fault_envelope():
    document = ofsc.fault("Server", "temporarily unavailable " + "x" * 500)
    answer = _body_child(document)
    assert answer.tag == f"{{{SOAP}}}Fault"
    assert answer.findtext("faultcode") == "soapenv:Server"
    faultstring = answer.findtext("faultstring")
    assert faultstring is not None and faultstring.startswith("temporarily unavailable")
    assert len(faultstring) <= 200
    with pytest.raises(ValueError):
        ofsc.fault("Receiver", "SOAP 1.2 code")


def test_authentication_failure_is_a_401_client_fault():
    error = ofsc.authentication_failed()
    assert (error.faultcode, error.http_status) == ("Client", 401)
    assert _body_child(error.envelope).findtext("faultcode") == "soapenv:Client"


# ---------------------------------------------------------------------------------------------
# The user block


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - OFSC's legacy scheme


def test_auth_string_formulas():
    expected = _sha256(NOW_TEXT + _sha256("ofsc-secret" + _sha256("ofsc")))
    assert ofsc.auth_string_sha256(NOW_TEXT, "ofsc", "ofsc-secret") == expected
    assert ofsc.auth_string_md5(NOW_TEXT, "ofsc-secret") == _md5(NOW_TEXT + _md5("ofsc-secret"))


def _user(
    *, now: str = NOW_TEXT, login: str = "ofsc", key: str = "ofsc-secret", md5: bool = False
) -> ofsc.OfscUser:
    """A block as OFSC builds it, with `key` standing for the secret (or legacy password)."""
    digest = _md5(now + _md5(key)) if md5 else _sha256(now + _sha256(key + _sha256(login)))
    return ofsc.OfscUser(now=now, company="acme", login=login, auth_string=digest)


def _verify(user: ofsc.OfscUser, *, server_now: datetime = NOW, hash_kind: str = "sha256") -> bool:
    return ofsc.verify_user(
        user, login="ofsc", secret="ofsc-secret", hash_kind=hash_kind, now=server_now
    )


def test_verify_user_accepts_the_right_block():
    assert _verify(_user())
    upper = _user()
    assert _verify(ofsc.OfscUser(upper.now, upper.company, upper.login, upper.auth_string.upper()))
    zulu = "2011-07-07T09:30:58Z"
    assert _verify(_user(now=zulu))
    assert _verify(_user(now="2011-07-07T11:30:58+02:00"))


@pytest.mark.parametrize("minutes", [-29, 29, 30, -30])
def test_verify_user_allows_clock_skew_up_to_thirty_minutes(minutes: int):
    assert _verify(_user(), server_now=NOW + timedelta(minutes=minutes))


@pytest.mark.parametrize("minutes", [-31, 31, 24 * 60])
def test_verify_user_refuses_a_stale_or_future_now(minutes: int):
    assert not _verify(_user(), server_now=NOW + timedelta(minutes=minutes))


def test_verify_user_refuses_wrong_login_wrong_secret_and_bad_now():
    assert not _verify(_user(login="intruder"))
    assert not _verify(_user(key="guess"))
    wrong_login_right_hash = _user()
    assert not _verify(ofsc.OfscUser(NOW_TEXT, "acme", "other", wrong_login_right_hash.auth_string))
    assert not _verify(_user(now="yesterday"))
    assert not _verify(_user(now=""))
    assert not _verify(ofsc.OfscUser(NOW_TEXT, "acme", "ofsc", ""))


def test_verify_user_md5_legacy_only_where_configured():
    legacy = _user(md5=True)
    assert _verify(legacy, hash_kind="md5")
    assert not _verify(legacy, hash_kind="sha256")
    assert not _verify(_user(), hash_kind="md5")
    assert not _verify(_user(md5=True, login="intruder"), hash_kind="md5")
    with pytest.raises(ValueError):
        _verify(legacy, hash_kind="sha1")


def test_make_user_builds_a_block_that_verifies():
    user = ofsc.make_user("smsbridge", "acme", "callback-secret", NOW)
    assert user.now == NOW_TEXT
    assert user.company == "acme"
    assert user.auth_string == ofsc.auth_string_sha256(NOW_TEXT, "smsbridge", "callback-secret")
    assert ofsc.verify_user(
        user, login="smsbridge", secret="callback-secret", hash_kind="sha256", now=NOW
    )
    legacy = ofsc.make_user("smsbridge", "acme", "pw", NOW, hash_kind="md5")
    assert legacy.auth_string == _md5(NOW_TEXT + _md5("pw"))


# ---------------------------------------------------------------------------------------------
# Recipient and text


@pytest.mark.parametrize(
    "address", ["+5215512345678", "5512345678", "+52 (55) 1234-5678", "  +1 555 123 4567 "]
)
def test_address_phone_number_and_plain_body(address: str):
    recipient = ofsc.recipient_of(_send("1", address, "  Your technician arrives at 10:00\n"))
    assert recipient == ofsc.Recipient(to=address.strip(), text="Your technician arrives at 10:00")


def test_json_body_carries_number_text_and_options_when_address_is_not_a_number():
    body = json.dumps(
        {
            "to": "+5215512345678",
            "text": "Código 123456",
            "type": "2FA",
            "sender": "ACME",
            "alternate_delivery": True,
        }
    )
    recipient = ofsc.recipient_of(_send("1", "customer@example.com", body))
    assert recipient == ofsc.Recipient(
        to="+5215512345678",
        text="Código 123456",
        type="2FA",
        sender="ACME",
        alternate_delivery=True,
    )


def test_json_body_number_may_be_a_json_number():
    body = '{"to": 5215512345678, "text": "hi"}'
    assert ofsc.recipient_of(_send("1", "", body)).to == "5215512345678"


def test_xml_body_carries_number_text_and_options():
    body = (
        "<sms><to>+380441234567</to><text>Visit at 10:00 &amp; bring ID</text>"
        "<type>text</type><sender>ACME</sender><alternate_delivery>1</alternate_delivery></sms>"
    )
    recipient = ofsc.recipient_of(_send("1", "", body))
    assert recipient == ofsc.Recipient(
        to="+380441234567",
        text="Visit at 10:00 & bring ID",
        type="text",
        sender="ACME",
        alternate_delivery=True,
    )


def test_address_number_wins_and_text_comes_from_a_structured_body():
    json_body = '{"to": "+15550000000", "text": "from json", "alternate_delivery": "false"}'
    from_json = ofsc.recipient_of(_send("1", "+15551234567", json_body))
    assert from_json == ofsc.Recipient(
        to="+15551234567", text="from json", alternate_delivery=False
    )
    from_xml = ofsc.recipient_of(
        _send("2", "+15551234567", "<sms><text>from xml</text><alternate_delivery/></sms>")
    )
    assert from_xml == ofsc.Recipient(to="+15551234567", text="from xml")


def test_plain_body_with_an_address_that_is_not_a_number_keeps_the_address():
    recipient = ofsc.recipient_of(_send("1", "12345", "hello"))
    assert recipient == ofsc.Recipient(to="12345", text="hello")


def test_text_that_merely_starts_with_a_brace_or_bracket_is_plain_text():
    for text in ("{Reminder} visit at 10:00", "<3 see you at 10:00", "[ACME] visit at 10"):
        assert ofsc.recipient_of(_send("1", "+15551234567", text)).text == text


@pytest.mark.parametrize(
    ("address", "body", "reason"),
    [
        ("", "hello", "no recipient"),
        ("customer@example.com", '{"text": "hello"}', "no recipient"),
        ("+15551234567", "", "no text"),
        ("+15551234567", '{"to": "+15551234567"}', "no text"),
        ("", '{"to": "+15551234567", "text": "x",}', "not valid JSON"),
        ("", '{"to": ["+15551234567"], "text": "x"}', "'to' must be a string"),
        ("", '{"to": "+15551234567", "text": "x", "alternate_delivery": 2}', "true or false"),
        ("", '{"to": "+15551234567", "text": "x", "alternate_delivery": "maybe"}', "true or"),
        ("", '{"hello": "world"}', "neither 'to' nor 'text'"),
        ("", "<sms><to>+15551234567</to><text>x</sms>", "not well-formed"),
        ("", "<message><to>+15551234567</to><text>x</text></message>", "<sms>"),
        (
            "",
            '<!DOCTYPE sms [<!ENTITY x SYSTEM "file:///etc/passwd">]><sms><to>+1555</to>'
            "<text>&x;</text></sms>",
            "DTDs and entities are not allowed",
        ),
    ],
)
def test_unreadable_or_incomplete_messages_fail_validation(address: str, body: str, reason: str):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        ofsc.recipient_of(_send("1", address, body))


def test_phone_number_shapes():
    assert ofsc.is_phone_number("+52 (55) 1234-5678")
    assert ofsc.is_phone_number("123456")
    assert not ofsc.is_phone_number("12345")
    assert not ofsc.is_phone_number("+12345678901234567")
    assert not ofsc.is_phone_number("55+1234567")
    assert not ofsc.is_phone_number("customer@example.com")
    assert not ofsc.is_phone_number("")


def test_parse_send_to():
    assert ofsc.parse_send_to("2011-07-07 18:00:00") == datetime(2011, 7, 7, 18, 0, tzinfo=UTC)
    assert ofsc.parse_send_to("") is None
    assert ofsc.parse_send_to("   ") is None
    with pytest.raises(ValueError, match="send_to"):
        ofsc.parse_send_to("tomorrow at noon")
    with pytest.raises(ValueError, match="send_to"):
        ofsc.parse_send_to("2011-13-07 18:00:00")


# ---------------------------------------------------------------------------------------------
# Callbacks to OFSC: set_message_status


def test_set_message_status_request_round_trip():
    user = ofsc.make_user("smsbridge", "acme", "callback-secret", NOW)
    document = ofsc.set_message_status_request(
        user,
        [
            ofsc.StatusUpdate(
                "2006", "delivered", description="DELIVERED", sent="2011-07-07T09:31:20+00:00"
            ),
            ofsc.StatusUpdate("2007", "failed", description="undeliverable", data=""),
            ofsc.StatusUpdate("2008", "sending"),
        ],
    )
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    call = _body_child(document)
    assert call.tag == f"{{{URN}}}set_message_status"

    block = _find(call, "user")
    read = {safexml.local_name(child): child.text for child in block}
    assert read == {
        "now": NOW_TEXT,
        "login": "smsbridge",
        "company": "acme",
        "auth_string": ofsc.auth_string_sha256(NOW_TEXT, "smsbridge", "callback-secret"),
    }

    messages = _find(call, "messages").findall(f"{{{URN}}}message")
    seen = [{safexml.local_name(child): child.text for child in item} for item in messages]
    assert seen == [
        {
            "message_id": "2006",
            "status": "delivered",
            "description": "DELIVERED",
            "sent": "2011-07-07T09:31:20+00:00",
        },
        {"message_id": "2007", "status": "failed", "description": "undeliverable"},
        {"message_id": "2008", "status": "sending"},
    ]


def test_set_message_status_request_carries_at_most_one_hundred_updates():
    user = ofsc.make_user("smsbridge", "acme", "secret", NOW)
    updates = [ofsc.StatusUpdate(str(number), "delivered") for number in range(101)]
    document = ofsc.set_message_status_request(user, updates[:100])
    assert len(_find(_body_child(document), "messages")) == 100
    with pytest.raises(ValueError, match="100"):
        ofsc.set_message_status_request(user, updates)
    with pytest.raises(ValueError):
        ofsc.set_message_status_request(user, [])


def test_parse_set_message_status_response():
    answer = b"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:ns1="urn:toatech:agent">
  <soapenv:Header/>
  <soapenv:Body>
    <ns1:set_message_status_response>
      <message_response><message_id>2006</message_id><result><code>OK</code></result>
      </message_response>
      <ns1:message_response><ns1:message_id>2007</ns1:message_id>
        <ns1:result><ns1:code>NOT FOUND</ns1:code><ns1:desc>unknown</ns1:desc></ns1:result>
      </ns1:message_response>
    </ns1:set_message_status_response>
  </soapenv:Body>
</soapenv:Envelope>"""
    assert ofsc.parse_set_message_status_response(answer) == {"2006": "OK", "2007": "NOT FOUND"}


def test_parse_set_message_status_response_fault_and_garbage():
    with pytest.raises(ofsc.OfscFault) as caught:
        ofsc.parse_set_message_status_response(
            ofsc.fault("Client", "authentication failed").encode()
        )
    assert (caught.value.faultcode, caught.value.faultstring) == (
        "Client",
        "authentication failed",
    )
    with pytest.raises(ValueError):
        ofsc.parse_set_message_status_response(b"<html>502 Bad Gateway</html>")
    with pytest.raises(ValueError):
        ofsc.parse_set_message_status_response(b"Bad Gateway")
    with pytest.raises(ValueError):
        ofsc.parse_set_message_status_response(
            ofsc.get_message_status_response([ofsc.Result("1", "OK")]).encode()
        )
