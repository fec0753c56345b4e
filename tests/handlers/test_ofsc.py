"""POST /ofsc through send_message: OFSC's send_message, get_message_status, drop_message."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from local.api import http_event
from smsbridge import ofsc
from tests.handlers.conftest import Stack
from tests.support import basic

ENVELOPE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:urn="urn:toatech:agent"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"""


def user_block(login: str = "ofsc", secret: str = "ofsc-secret") -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    auth_string = ofsc.auth_string_sha256(now, login, secret)
    return (
        f"<urn:user><urn:now>{now}</urn:now><urn:login>{login}</urn:login>"
        f"<urn:company>acme</urn:company><urn:auth_string>{auth_string}</urn:auth_string></urn:user>"
    )


def send_message(ids: list[str], numbers: list[str], user: str = "") -> str:
    messages = "".join(
        f"<urn:message><urn:app_host>ofsc.example</urn:app_host><urn:app_port>443</urn:app_port>"
        f"<urn:app_url>/outbound/</urn:app_url><urn:message_id>{mid}</urn:message_id>"
        f"<urn:address>{number}</urn:address><urn:subject>Visit</urn:subject>"
        f"<urn:body>Your technician arrives at 10:00</urn:body></urn:message>"
        for mid, number in zip(ids, numbers, strict=True)
    )
    return ENVELOPE.format(
        body=f"<urn:send_message>{user}<urn:messages>{messages}</urn:messages></urn:send_message>"
    )


def by_id(operation: str, ids: list[str]) -> str:
    messages = "".join(
        f"<urn:message><urn:message_id>{m}</urn:message_id></urn:message>" for m in ids
    )
    return ENVELOPE.format(
        body=f"<urn:{operation}><urn:messages>{messages}</urn:messages></urn:{operation}>"
    )


def call(stack: Stack, body: str, auth: str | None = None) -> tuple[int, ET.Element]:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if auth is not None:
        headers["Authorization"] = auth
    answer = stack.invoke(
        stack.handler("send_message"), http_event("POST", "/ofsc", body=body, headers=headers)
    )
    return answer["statusCode"], ET.fromstring(answer["body"])


def texts(root: ET.Element, name: str) -> list[str]:
    return [e.text or "" for e in root.iter() if e.tag.rsplit("}", 1)[-1] == name]


OK = basic("ofsc", "ofsc-secret")


def test_ten_messages_get_ten_sending_answers_and_a_repeat_sends_nothing(stack: Stack) -> None:
    ids = [f"ofsc-{i}" for i in range(10)]
    numbers = [f"+49151123456{i:02d}" for i in range(10)]
    status, root = call(stack, send_message(ids, numbers), OK)
    assert status == 200
    assert texts(root, "message_id") == ids
    assert texts(root, "status") == ["sending"] * 10
    assert len(stack.receive(10)) == 10
    status, root = call(stack, send_message(ids, numbers), OK)
    assert texts(root, "status") == ["sending"] * 10
    assert stack.receive(10) == []


def test_the_user_block_authenticates(stack: Stack) -> None:
    status, root = call(stack, send_message(["u-1"], ["+4915112345601"], user_block()))
    assert status == 200
    assert texts(root, "status") == ["sending"]


def test_bad_credentials_are_401_with_a_client_fault(stack: Stack) -> None:
    for auth, user in (
        (basic("ofsc", "wrong"), ""),
        (None, user_block(secret="wrong")),
        (None, ""),
    ):
        status, root = call(stack, send_message(["x"], ["+4915112345601"], user), auth)
        assert status == 401
        assert any("Client" in t for t in texts(root, "faultcode"))
    assert stack.receive() == []


def test_an_invalid_number_fails_with_stop_further_attempts(stack: Stack) -> None:
    _, root = call(stack, send_message(["bad"], ["12"]), OK)
    assert texts(root, "status") == ["failed"]
    assert texts(root, "stop_further_attempts") == ["1"]
    assert texts(root, "description")


def test_status_and_drop_follow_the_message(stack: Stack) -> None:
    call(stack, send_message(["s-1", "s-2"], ["+4915112345601", "+4915112345602"]), OK)
    _, root = call(stack, by_id("get_message_status", ["s-1", "nope"]), OK)
    assert texts(root, "code") == ["OK", "NOT FOUND"]
    assert texts(root, "desc")[0] == "WAITING"
    _, root = call(stack, by_id("drop_message", ["s-1", "nope"]), OK)
    assert texts(root, "code") == ["OK", "NOT FOUND"]
    stack.drain_dispatch(stack.handler("dispatch"))
    _, root = call(stack, by_id("drop_message", ["s-2"]), OK)
    assert texts(root, "code") == ["ERROR"]
    assert "under processing" in texts(root, "desc")[0]
    _, root = call(stack, by_id("get_message_status", ["s-1", "s-2"]), OK)
    assert texts(root, "desc") == ["FAILED", "SENDING"]


def test_hostile_or_malformed_bodies_get_a_soap_fault(stack: Stack) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    )
    for body in ("not xml at all", "<a/>", bomb, by_id("unknown_operation", ["x"])):
        status, root = call(stack, body, OK)
        assert status == 500
        assert texts(root, "faultcode")
        assert "Traceback" not in ET.tostring(root, encoding="unicode")


def ofsc_client_without_callback_url(stack: Stack) -> None:
    """An OFSC client as in production: status calls go to each message's app_host."""
    import json

    import boto3
    from aws_lambda_powertools.utilities import parameters

    ssm = boto3.client("ssm", region_name="eu-west-1")
    name = stack.resources.config_parameter
    config = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    config["clients"]["ofsc"].pop("callback_url", None)
    config["clients"]["ofsc"].pop("callback_hosts_allowed", None)
    ssm.put_parameter(Name=name, Value=json.dumps(config), Type="String", Overwrite=True)
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def test_a_forbidden_callback_target_is_answered_failed_at_intake(stack: Stack) -> None:
    ofsc_client_without_callback_url(stack)
    hosts = ["127.0.0.1", "169.254.169.254", "[64:ff9b::a9fe:a9fe]", "user@93.184.216.34"]
    messages = "".join(
        f"<urn:message><urn:app_host>{host}</urn:app_host><urn:app_port>443</urn:app_port>"
        f"<urn:app_url>/outbound/</urn:app_url><urn:message_id>target-{i}</urn:message_id>"
        f"<urn:address>+4915112345601</urn:address><urn:body>Hello</urn:body></urn:message>"
        for i, host in enumerate(hosts)
    )
    body = ENVELOPE.format(
        body=f"<urn:send_message><urn:messages>{messages}</urn:messages></urn:send_message>"
    )
    status, root = call(stack, body, OK)
    assert status == 200
    assert texts(root, "status") == ["failed"] * len(hosts)
    descriptions = texts(root, "description")
    assert "127.0.0.0/8" in descriptions[0]
    assert "169.254.169.254/32" in descriptions[1]
    assert "64:ff9b::/96" in descriptions[2]
    assert "credentials" in descriptions[3]
    assert all(d.startswith("callback target") for d in descriptions)
    assert texts(root, "stop_further_attempts") == ["1"] * len(hosts)
    assert stack.receive(10) == []  # nothing queued: nothing is sent


def test_a_public_callback_target_is_accepted(stack: Stack) -> None:
    ofsc_client_without_callback_url(stack)
    status, root = call(stack, send_message(["target-ok"], ["+4915112345601"]), OK)
    assert status == 200
    assert texts(root, "status") == ["sending"]
