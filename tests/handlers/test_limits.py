"""Sending limits at intake (SPEC 3.5), through send_message in both API formats: counting limits
refuse without storing anything, destination limits store the message `failed`."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

import boto3
import pytest

from local.api import http_event
from tests.handlers.conftest import REGION, Stack
from tests.handlers.test_ofsc import OK, call, texts
from tests.support import bearer, local_documents


def configure(stack: Stack, **clients: dict[str, Any]) -> None:
    """The local configuration with `clients`' settings merged in, as the stored document."""
    config, _ = local_documents(stack.simulator.url)
    for name, extra in clients.items():
        config["clients"][name].update(extra)
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=stack.resources.config_parameter,
        Value=json.dumps(config),
        Type="String",
        Overwrite=True,
    )
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]


def post(stack: Stack, body: object) -> tuple[int, dict[str, str], Any]:
    answer = stack.invoke(
        stack.handler("send_message"),
        http_event("POST", "/v1/messages", body=json.dumps(body), headers=bearer()),
    )
    return answer["statusCode"], answer.get("headers") or {}, json.loads(answer["body"])


def ofsc_send(ids: list[str], numbers: list[str], kind: str = "text") -> str:
    """OFSC send_message whose bodies are JSON (`type` set), one message per id."""
    messages = "".join(
        f"<urn:message><urn:message_id>{mid}</urn:message_id><urn:address></urn:address>"
        f"<urn:body>{json.dumps({'to': number, 'text': 'Code 123456', 'type': kind})}"
        f"</urn:body></urn:message>"
        for mid, number in zip(ids, numbers, strict=True)
    )
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:toatech:agent"><soapenv:Body><urn:send_message><urn:messages>'
        f"{messages}</urn:messages></urn:send_message></soapenv:Body></soapenv:Envelope>"
    )


def responses(root: ET.Element) -> list[dict[str, str]]:
    """Each `message_response` as {field: text}."""
    found = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "message_response":
            found.append({child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element})
    return found


def stored(stack: Stack, client: str, message_id: str) -> dict[str, Any] | None:
    from smsbridge.models import sms_id_for

    return stack.item(sms_id_for(client, message_id))


# --- JSON -----------------------------------------------------------------------------------


def test_json_verification_over_the_hourly_limit_is_429_and_stores_nothing(stack: Stack) -> None:
    configure(stack, demo={"verification_per_number_per_hour": 2})
    message = {"to": "+4915112345601", "text": "Code 123456", "type": "verification"}
    for n in range(2):
        status, _, body = post(stack, {**message, "message_id": f"otp-{n}"})
        assert (status, body["status"]) == (202, "sending")
    status, headers, body = post(stack, {**message, "type": "2FA", "message_id": "otp-2"})
    assert status == 429
    assert body["error"] == "limit_exceeded"
    assert body["limit"] == "verification_per_number_per_hour"
    assert 0 < body["retry_after"] <= 3600
    assert headers["Retry-After"] == str(body["retry_after"])
    assert body["message"] == "limit exceeded: verification_per_number_per_hour"
    assert stored(stack, "demo", "otp-2") is None
    # A repeat of an accepted message answers as before and counts nothing.
    status, _, again = post(stack, {**message, "message_id": "otp-1"})
    assert (status, again["status"], again["message_id"]) == (202, "sending", "otp-1")
    # Text messages and other numbers are not counted against it.
    assert post(stack, {**message, "type": "text", "message_id": "t-1"})[0] == 202
    assert post(stack, {**message, "to": "+4915112345602", "message_id": "o-1"})[0] == 202


def test_json_daily_limit_judges_a_batch_message_by_message(stack: Stack) -> None:
    configure(stack, demo={"daily_message_limit": 3})
    batch = {
        "messages": [
            {"to": f"+49151123456{n:02d}", "text": "hi", "message_id": f"d-{n}"} for n in range(5)
        ]
    }
    status, _, body = post(stack, batch)
    assert status == 202
    answers = body["messages"]
    assert [a["message_id"] for a in answers] == [f"d-{n}" for n in range(5)]
    refused = [a for a in answers if a.get("error") == "limit_exceeded"]
    assert len(refused) == 2
    for answer in refused:
        assert answer["limit"] == "daily_message_limit"
        assert answer["status"] == "failed"
        assert answer["description"] == "limit exceeded: daily_message_limit"
        assert "stop_further_attempts" not in answer
        assert stored(stack, "demo", answer["message_id"]) is None
    assert sum(a["status"] == "sending" for a in answers) == 3
    status, headers, single = post(stack, {"to": "+4915112345690", "text": "hi"})
    assert (status, single["limit"]) == (429, "daily_message_limit")
    assert int(headers["Retry-After"]) <= 86_400


def test_json_destinations_outside_the_allowed_countries_or_blocked_are_stored_failed(
    stack: Stack,
) -> None:
    configure(stack, demo={"allowed_countries": ["GB", "DE"], "blocked_prefixes": ["+49900"]})
    cases = {
        "c-fr": ("+33612345601", "country not allowed: FR"),
        "c-sat": ("+8821612345601", "destination blocked"),  # the document's global list
        "c-prem": ("+499001234567", "destination blocked"),  # the client's own list
    }
    for message_id, (number, description) in cases.items():
        status, _, body = post(stack, {"to": number, "text": "hi", "message_id": message_id})
        assert status == 202
        assert body["status"] == "failed"
        assert body["description"] == description
        assert body["stop_further_attempts"] == 1
        record = stored(stack, "demo", message_id)
        assert record is not None
        assert (record["status"], record["description"]) == ("failed", description)
    status, _, body = post(stack, {"to": "+447700123401", "text": "hi", "message_id": "c-gb"})
    assert (status, body["status"]) == (202, "sending")
    assert len(stack.receive()) == 1


# --- OFSC -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "kind", "limit"),
    [
        (
            {"verification_per_number_per_hour": 1},
            "verification",
            "verification_per_number_per_hour",
        ),
        ({"daily_message_limit": 1}, "text", "daily_message_limit"),
    ],
)
def test_ofsc_over_a_counting_limit_is_failed_without_stop_further_attempts(
    stack: Stack, settings: dict[str, Any], kind: str, limit: str
) -> None:
    configure(stack, ofsc=settings)
    status, root = call(
        stack, ofsc_send(["o-1", "o-2"], ["+4915112345601", "+4915112345601"], kind), OK
    )
    assert status == 200
    first, second = responses(root)
    assert (first["message_id"], first["status"]) == ("o-1", "sending")
    assert second == {
        "message_id": "o-2",
        "status": "failed",
        "description": f"limit exceeded: {limit}",
    }
    assert stored(stack, "ofsc", "o-2") is None
    # OFSC may try again later: the refused message was not stored, so its id is free.
    status, root = call(stack, ofsc_send(["o-1"], ["+4915112345601"], kind), OK)
    assert texts(root, "status") == ["sending"]


def test_ofsc_refused_destinations_are_failed_with_stop_further_attempts(stack: Stack) -> None:
    configure(stack, ofsc={"allowed_countries": ["UA"]})
    status, root = call(
        stack,
        ofsc_send(["o-de", "o-sat", "o-ua"], ["+4915112345601", "+8821612345601", "+380671234501"]),
        OK,
    )
    assert status == 200
    de, sat, ua = responses(root)
    assert de == {
        "message_id": "o-de",
        "status": "failed",
        "description": "country not allowed: DE",
        "stop_further_attempts": "1",
    }
    assert sat["description"] == "destination blocked"
    assert sat["stop_further_attempts"] == "1"
    assert ua["status"] == "sending"
    record = stored(stack, "ofsc", "o-de")
    assert record is not None
    assert record["status"] == "failed"
