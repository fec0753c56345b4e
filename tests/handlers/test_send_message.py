"""send_message against moto: intake, idempotency, validation, auth, cancel."""

from __future__ import annotations

import json

from local.api import http_event
from tests.handlers.conftest import Stack
from tests.support import bearer


def post(stack: Stack, body: object, headers: dict[str, str] | None = None) -> dict[str, object]:
    handler = stack.handler("send_message")
    text = body if isinstance(body, str) else json.dumps(body)
    return stack.invoke(
        handler, http_event("POST", "/v1/messages", body=text, headers=headers or bearer())
    )


def test_health_answers_200_with_the_version(stack: Stack) -> None:
    answer = stack.invoke(stack.handler("send_message"), http_event("GET", "/health"))
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["version"]


def test_a_message_is_stored_queued_and_answered_sending(stack: Stack) -> None:
    answer = post(stack, {"to": "+380671234501", "text": "hello", "message_id": "m-1"})
    assert answer["statusCode"] == 202
    body = json.loads(str(answer["body"]))
    assert body["status"] == "sending"
    assert body["message_id"] == "m-1"
    record = stack.item(body["external_id"])
    assert record is not None
    assert record["status"] == "queued"
    assert record["phone_number"] == "+380671234501"
    assert record["carrier"] == "ip2sms"
    assert record["encoding"] == "GSM-7"
    assert record["segments"] == 1
    assert len(stack.receive()) == 1


def test_a_repeated_request_stores_and_queues_nothing_new(stack: Stack) -> None:
    message = {"to": "+4915112345678", "text": "hello", "message_id": "dup-1"}
    first = json.loads(str(post(stack, message)["body"]))
    second = json.loads(str(post(stack, message)["body"]))
    assert first == second
    assert len(stack.receive()) == 1


def test_a_batch_answers_in_order(stack: Stack) -> None:
    batch = {"messages": [{"to": f"+49151123456{i:02d}", "text": "x"} for i in range(12)]}
    answer = post(stack, batch)
    assert answer["statusCode"] == 202
    messages = json.loads(str(answer["body"]))["messages"]
    assert [m["status"] for m in messages] == ["sending"] * 12
    assert len({m["message_id"] for m in messages}) == 12


def test_invalid_json_is_422_and_stores_nothing(stack: Stack) -> None:
    answer = post(stack, "{not json")
    assert answer["statusCode"] == 422
    assert stack.receive() == []
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0


def test_a_missing_field_is_422_naming_it(stack: Stack) -> None:
    answer = post(stack, {"text": "hello"})
    assert answer["statusCode"] == 422
    assert "to" in str(answer["body"])
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0


def test_more_than_100_messages_is_422(stack: Stack) -> None:
    batch = {"messages": [{"to": "+4915112345678", "text": "x"}] * 101}
    assert post(stack, batch)["statusCode"] == 422


def test_a_bad_number_is_stored_failed_with_a_description(stack: Stack) -> None:
    answer = post(stack, {"to": "12", "text": "hello", "message_id": "bad-number"})
    assert answer["statusCode"] == 202
    body = json.loads(str(answer["body"]))
    assert body["status"] == "failed"
    assert "phone number" in body["description"]
    assert body["stop_further_attempts"] == 1
    assert stack.item(body["external_id"])["status"] == "failed"  # type: ignore[index]
    assert stack.receive() == []


def test_empty_text_unknown_sender_and_too_many_segments_fail(stack: Stack) -> None:
    cases = [
        ({"to": "+4915112345678", "text": "   "}, "empty text"),
        ({"to": "+4915112345678", "text": "x", "sender": "NOPE"}, "unknown sender"),
        ({"to": "+4915112345678", "text": "x" * 1600}, "too many segments"),
    ]
    for message, reason in cases:
        body = json.loads(str(post(stack, message)["body"]))
        assert body["status"] == "failed"
        assert reason in body["description"]
    assert stack.receive() == []


def test_otp_digits_are_masked_in_the_log_but_sent_in_full(stack: Stack) -> None:
    body = json.loads(
        str(post(stack, {"to": "+4915112345678", "text": "code 123456", "type": "2FA"})["body"])
    )
    record = stack.item(body["external_id"])
    assert record is not None
    assert "123456" not in record["body"]


def test_missing_or_wrong_credentials_are_401(stack: Stack) -> None:
    message = {"to": "+4915112345678", "text": "x"}
    assert post(stack, message, headers={"Content-Type": "application/json"})["statusCode"] == 401
    assert post(stack, message, headers=bearer("wrong"))["statusCode"] == 401
    # Credentials are checked before the body: no hint about its validity without them.
    assert post(stack, "{not json", headers=bearer("wrong"))["statusCode"] == 401
    assert stack.receive() == []


def test_an_oversized_body_is_413(stack: Stack) -> None:
    answer = post(stack, {"to": "+4915112345678", "text": "x" * (300 * 1024)})
    assert answer["statusCode"] == 413


def test_get_shows_the_record_and_404_for_unknown(stack: Stack) -> None:
    post(stack, {"to": "+4915112345678", "text": "x", "message_id": "g-1"})
    handler = stack.handler("send_message")
    found = stack.invoke(
        handler,
        http_event(
            "GET",
            "/v1/messages/g-1",
            route="/v1/messages/{message_id}",
            headers=bearer(),
            path_parameters={"message_id": "g-1"},
        ),
    )
    assert found["statusCode"] == 200
    record = json.loads(found["body"])
    assert record["message_id"] == "g-1"
    assert record["history"][0]["status"] == "queued"
    missing = stack.invoke(
        handler,
        http_event(
            "GET",
            "/v1/messages/nope",
            route="/v1/messages/{message_id}",
            headers=bearer(),
            path_parameters={"message_id": "nope"},
        ),
    )
    assert missing["statusCode"] == 404


def test_delete_cancels_a_queued_message(stack: Stack) -> None:
    post(stack, {"to": "+4915112345678", "text": "x", "message_id": "c-1"})
    handler = stack.handler("send_message")

    def delete(message_id: str) -> dict[str, object]:
        return stack.invoke(
            handler,
            http_event(
                "DELETE",
                f"/v1/messages/{message_id}",
                route="/v1/messages/{message_id}",
                headers=bearer(),
                path_parameters={"message_id": message_id},
            ),
        )

    answer = delete("c-1")
    assert answer["statusCode"] == 200
    assert json.loads(str(answer["body"]))["status"] == "cancelled"
    assert delete("nope")["statusCode"] == 404


def test_a_forwarded_message_is_answered_as_its_alternate_goes_like_ofsc_does(
    stack: Stack,
) -> None:
    """One view for the originator: the JSON answer follows the alternate, as OFSC's does."""
    from smsbridge.models import StatusReport
    from smsbridge.runtime import Runtime
    from smsbridge.statuses import Status

    message = {"to": "+18475551218", "text": "x", "message_id": "fw-1", "alternate_delivery": True}
    first = json.loads(str(post(stack, message)["body"]))
    tracker = Runtime.from_env().tracker()
    tracker.report(first["external_id"], StatusReport(Status.UNDELIVERABLE, source="test"))
    assert stack.item(first["external_id"])["status"] == "forwarded"  # type: ignore[index]
    again = json.loads(str(post(stack, message)["body"]))
    assert again == {"message_id": "fw-1", "status": "sending", "external_id": first["external_id"]}


def test_a_callback_url_inside_the_network_is_422_and_stores_nothing(stack: Stack) -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/x",
        "http://[::1]:22/",
    ):
        batch = {
            "messages": [
                {"to": "+4915112345601", "text": "x", "callback_url": "https://93.184.216.34/x"},
                {"to": "+4915112345602", "text": "x", "callback_url": url},
            ]
        }
        answer = post(stack, batch)
        assert answer["statusCode"] == 422, url
        assert '"callback_url"' in str(answer["body"]) and "1" in str(answer["body"])
    assert stack.dynamodb.scan(TableName=stack.table)["Count"] == 0
    assert stack.receive() == []


def test_a_cold_lookup_reads_the_configuration_once_and_makes_no_sqs_client(stack: Stack) -> None:
    """A new environment that only looks messages up never pays for the SQS client, and every
    client it makes comes from one session (one botocore loader for the process)."""
    handler = stack.handler("send_message")
    event = http_event(
        "GET",
        "/v1/messages/nope",
        route="/v1/messages/{message_id}",
        headers=bearer(),
        path_parameters={"message_id": "nope"},
    )

    assert stack.invoke(handler, event)["statusCode"] == 404
    assert stack.invoke(handler, event)["statusCode"] == 404

    runtime = handler.runtime
    assert runtime.sqs_client is None
    loaders = {
        id(client._loader) for client in (runtime.dynamodb, runtime.ssm, runtime.secretsmanager)
    }
    assert len(loaders) == 1
