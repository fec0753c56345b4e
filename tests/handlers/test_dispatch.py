"""dispatch against moto and the simulator: claim before calling, retries, permanent failures."""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ReadTimeoutError

from local.api import http_event
from local.drivers import sqs_event
from local.runtime import LambdaContext
from smsbridge.models import StatusReport
from smsbridge.repository import MessageRepository
from smsbridge.statuses import Status
from tests.handlers.conftest import Stack
from tests.support import bearer


def accept(stack: Stack, to: str, message_id: str) -> str:
    answer = stack.invoke(
        stack.handler("send_message"),
        http_event(
            "POST",
            "/v1/messages",
            body=json.dumps({"to": to, "text": "hello", "message_id": message_id}),
            headers=bearer(),
        ),
    )
    external_id: str = json.loads(answer["body"])["external_id"]
    return external_id


def submissions(stack: Stack, reference: str) -> list[dict[str, Any]]:
    return [s for s in stack.simulator.submissions() if s["reference"] == reference]


def test_a_queued_message_is_submitted_with_the_carrier_id(stack: Stack) -> None:
    message_id = accept(stack, "+380671234501", "d-1")
    result = stack.drain_dispatch(stack.handler("dispatch"))
    assert result["batchItemFailures"] == []
    record = stack.item(message_id)
    assert record is not None
    assert record["status"] == "submitted"
    taken = submissions(stack, message_id)
    assert len(taken) == 1
    assert record["gateway_id"] == taken[0]["gateway_id"]
    assert record["attempts"] == 1
    assert record["submitted_at"]


def test_the_same_record_delivered_twice_submits_once(stack: Stack) -> None:
    message_id = accept(stack, "+4915112345601", "d-2")
    (message,) = stack.receive()
    dispatch = stack.handler("dispatch")
    event = sqs_event([message] * 2, stack.resources.queue_arn("DispatchQueue"))
    stack.invoke(dispatch, event)
    stack.invoke(dispatch, event)
    assert len(submissions(stack, message_id)) == 1
    assert stack.item(message_id)["status"] == "submitted"  # type: ignore[index]


def test_a_permanent_reject_fails_at_once(stack: Stack) -> None:
    message_id = accept(stack, "+4915112345612", "d-3")
    result = stack.drain_dispatch(stack.handler("dispatch"))
    assert result["batchItemFailures"] == []
    record = stack.item(message_id)
    assert record is not None
    assert record["status"] == "failed"
    assert record["description"]
    assert stack.receive() == []


def test_503_twice_is_retried_and_submitted_on_the_third_try(stack: Stack) -> None:
    message_id = accept(stack, "+4915112345613", "d-4")
    dispatch = stack.handler("dispatch")
    outcomes = []
    for _ in range(3):
        outcomes.append(len(stack.drain_dispatch(dispatch)["batchItemFailures"]))
    assert outcomes == [1, 1, 0]
    record = stack.item(message_id)
    assert record is not None
    assert record["status"] == "submitted"
    assert record["attempts"] == 3
    assert {s["reference"] for s in submissions(stack, message_id)} == {message_id}


def test_late_answers_are_retried_with_the_same_reference_and_send_one_sms(stack: Stack) -> None:
    message_id = accept(stack, "+4915112345617", "d-5")
    dispatch = stack.handler("dispatch")
    outcomes = [len(stack.drain_dispatch(dispatch)["batchItemFailures"]) for _ in range(3)]
    assert outcomes == [1, 1, 0]
    tries = submissions(stack, message_id)
    assert len(tries) == 3
    assert [t["taken"] for t in tries] == [True, False, False]
    record = stack.item(message_id)
    assert record is not None
    assert record["status"] == "submitted"
    assert record["gateway_id"] == tries[0]["gateway_id"]


def test_transient_failures_end_failed_after_the_attempt_limit(
    stack: Stack, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SUBMIT_MAX_ATTEMPTS", "2")
    message_id = accept(stack, "+4915112345613", "d-6")
    dispatch = stack.handler("dispatch")
    stack.drain_dispatch(dispatch)
    stack.drain_dispatch(dispatch)
    record = stack.item(message_id)
    assert record is not None
    assert record["status"] == "failed"
    assert "after 2 attempts" in record["description"]


def test_a_record_that_is_not_a_dispatch_record_is_dropped(stack: Stack) -> None:
    record = {"MessageId": "m-1", "ReceiptHandle": "h", "Body": "not json"}
    event = sqs_event([record], stack.resources.queue_arn("DispatchQueue"))
    assert stack.invoke(stack.handler("dispatch"), event) == {"batchItemFailures": []}


def test_receipts_that_came_before_the_answer_survive_a_link_whose_answer_was_lost(
    stack: Stack, monkeypatch: Any
) -> None:
    """A receipt kept for a carrier id before dispatch links it, then the link goes through but
    its answer never comes back (a time-out): the record's next try still applies the receipt."""
    monkeypatch.setenv("SUBMIT_LEASE_SECONDS", "1")
    message_id = accept(stack, "+4915112345601", "d-7")
    (record,) = stack.receive()
    event = sqs_event([record], stack.resources.queue_arn("DispatchQueue"))
    dispatch = stack.handler("dispatch")
    repository = MessageRepository(stack.dynamodb, stack.table)
    answers_lost: list[str] = []

    def receipt_first(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        key: str = json.loads(params["body"])["Key"]["id"]["S"]
        if key.startswith("gw#smartswitch#") and not answers_lost:
            context["link"] = key
            delivered = StatusReport(Status.DELIVERED, source="receipt:smartswitch")
            repository.store_orphan(
                "smartswitch", key.rpartition("#")[2], delivered, expires_at=2**31
            )

    def answer_lost(context: dict[str, Any], **_: Any) -> None:
        if "link" in context:
            answers_lost.append(context["link"])
            raise ReadTimeoutError(endpoint_url="http://dynamodb.local")

    events = dispatch.runtime.dynamodb.meta.events
    events.register("before-call.dynamodb.UpdateItem", receipt_first)
    events.register("after-call.dynamodb.UpdateItem", answer_lost)

    assert len(stack.invoke(dispatch, event)["batchItemFailures"]) == 1
    time.sleep(2.1)  # the submission lease runs out; SQS delivers the record again
    assert stack.invoke(dispatch, event) == {"batchItemFailures": []}

    final = stack.item(message_id)
    assert final is not None
    assert answers_lost and final["status"] == "delivered", final
    assert [s["taken"] for s in submissions(stack, message_id)] == [True, False]


def test_dispatch_stops_taking_records_when_the_time_left_cannot_cover_a_submission(
    stack: Stack,
) -> None:
    """A slow carrier (numbers ending 17 answer after the 1.5 s read time-out) and a short
    function time-out: dispatch starts a submission only while the time left covers the slowest
    connect + read time-outs and a margin, finishes before its time-out, and hands back the
    records it never touched as batch failures (not claimed, not tried)."""
    ids = [accept(stack, f"+491511230{n}017", f"slow-{n}") for n in range(8)]
    records = stack.receive()
    assert len(records) == len(ids)
    dispatch = stack.handler("dispatch")
    timeout = 10.0  # local config: 3.05 s connect + 1.5 s read + 3 s margin = 7.55 s a try
    context = LambdaContext(function_name="test", timeout_seconds=timeout)
    event = sqs_event(records, stack.resources.queue_arn("DispatchQueue"))
    result = dispatch.lambda_handler(event, context)

    assert context.get_remaining_time_in_millis() > 0, "dispatch ran past its time-out"
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert len(failed) == len(records)  # the tried ones back off, the others were never started
    tried = [i for i in ids if submissions(stack, i)]
    assert 1 <= len(tried) <= 3
    untouched = [i for i in ids if i not in tried]
    for message_id in untouched:
        item = stack.item(message_id)
        assert item is not None
        assert (item["status"], item["attempts"]) == ("queued", 0), item
    # Handed back at once: visible again for the next invocation, not after 6 minutes.
    again = {m["MessageId"] for m in stack.receive()}
    assert len(again) >= len(untouched)
