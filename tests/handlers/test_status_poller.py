"""status_poller against moto: polling, time-outs, re-queues and expiries through the index."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
import requests

from local.api import http_event
from smsbridge.models import iso
from smsbridge.repository import MessageRepository, message_to_item, open_shard_of
from tests.handlers.conftest import Stack
from tests.support import basic, bearer


def accept(stack: Stack, to: str, message_id: str, **extra: Any) -> str:
    answer = stack.invoke(
        stack.handler("send_message"),
        http_event(
            "POST",
            "/v1/messages",
            body=json.dumps({"to": to, "text": "hello", "message_id": message_id, **extra}),
            headers=bearer(),
        ),
    )
    external_id: str = json.loads(answer["body"])["external_id"]
    return external_id


def poller_at(stack: Stack, seconds_ahead: float) -> ModuleType:
    """The poller handler with its clock moved forward."""
    handler = stack.handler("status_poller")
    handler.runtime.clock = lambda: datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    return handler


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def carrier_state(stack: Stack, to: str) -> str:
    """What the simulated IP2SMS status API says now of the message sent to `to`."""
    [submission] = [s for s in stack.simulator.submissions() if s["to"] == to and s["taken"]]
    gateway_id = submission["gateway_id"]
    answer = requests.post(
        f"{stack.simulator.url}/ip2sms/status",
        data=f'<request id="{gateway_id}">status</request>'.encode(),
        auth=("smsbridge", "sim-submit-secret"),
        timeout=5,
    )
    return ET.fromstring(answer.content).findtext("state") or ""


def run_poller(stack: Stack, seconds_ahead: float) -> dict[str, Any]:
    return stack.invoke(poller_at(stack, seconds_ahead), {"source": "aws.scheduler"})


def status(stack: Stack, message_id: str) -> str:
    record = stack.item(message_id)
    assert record is not None
    return str(record["status"])


@pytest.mark.sim_delay_ms(1000)
def test_an_ip2sms_message_is_followed_to_delivered_by_polling_alone(stack: Stack) -> None:
    message_id = accept(stack, "+380671234501", "p-1")
    poller = poller_at(stack, 61)
    stack.drain_dispatch(stack.handler("dispatch"))
    assert status(stack, message_id) == "submitted"
    wait_until(lambda: carrier_state(stack, "+380671234501") == "Enroute")
    stack.invoke(poller, {})
    assert status(stack, message_id) == "enroute"
    wait_until(lambda: carrier_state(stack, "+380671234501") == "Delivered")
    poller.runtime.clock = lambda: datetime.now(UTC) + timedelta(seconds=61 + 120)
    stack.invoke(poller, {})
    assert status(stack, message_id) == "delivered"
    sources = [h.get("source") for h in stack.item(message_id)["history"]]  # type: ignore[index]
    assert sources.count("poll:ip2sms") == 2


@pytest.mark.sim_delay_ms(20)
def test_ip2sms_failures_end_undeliverable_and_expired(stack: Stack) -> None:
    undeliverable = accept(stack, "+380671234511", "p-2")
    expired = accept(stack, "+380671234516", "p-3")
    stack.drain_dispatch(stack.handler("dispatch"))
    wait_until(lambda: carrier_state(stack, "+380671234511") == "Undeliverable")
    wait_until(lambda: carrier_state(stack, "+380671234516") == "Expired")
    run_poller(stack, 61)
    assert status(stack, undeliverable) == "undeliverable"
    assert status(stack, expired) == "expired"


def test_a_message_without_a_final_status_is_terminated_after_the_time_out(stack: Stack) -> None:
    message_id = accept(stack, "+380671234514", "p-4")
    stack.drain_dispatch(stack.handler("dispatch"))
    run_poller(stack, 61)
    assert status(stack, message_id) in ("submitted", "enroute")
    summary = run_poller(stack, 3601)
    assert summary["terminated"] == 1
    record = stack.item(message_id)
    assert record is not None
    assert record["status"] == "terminated"
    assert "3600" in record["description"]


def test_a_lost_enqueue_is_requeued_and_delivered_once(stack: Stack) -> None:
    intake = stack.handler("send_message")

    def lost(**_: Any) -> dict[str, Any]:
        raise ConnectionError("queue unreachable")

    intake.runtime.sqs.send_message_batch = lost
    answer = stack.invoke(
        intake,
        http_event(
            "POST",
            "/v1/messages",
            body=json.dumps({"to": "+4915112345601", "text": "x", "message_id": "lost-1"}),
            headers=bearer(),
        ),
    )
    assert answer["statusCode"] == 202
    message_id = json.loads(answer["body"])["external_id"]
    assert stack.receive() == []
    assert run_poller(stack, 10)["requeued"] == 0
    assert run_poller(stack, 121)["requeued"] == 1
    dispatch = stack.handler("dispatch")
    stack.drain_dispatch(dispatch)
    assert run_poller(stack, 121)["requeued"] == 0
    stack.drain_dispatch(dispatch)
    assert status(stack, message_id) == "submitted"
    assert len([s for s in stack.simulator.submissions() if s["reference"] == message_id]) == 1


def test_a_message_left_waiting_in_the_queue_is_queued_again_ever_less_often(
    stack: Stack,
) -> None:
    """A long dispatch backlog must not be doubled by re-queued copies every few minutes."""
    message_id = accept(stack, "+4915112345602", "backlog-1")
    assert len(stack.receive()) == 1  # still in the queue (not yet dispatched), say
    # REQUEUE_AFTER_SECONDS is 120: re-queued at 121 s, then 240 s later, then 480 s later.
    runs = {121: 1, 300: 0, 362: 1, 800: 0, 843: 1, 1500: 0}
    requeued = {at: run_poller(stack, at)["requeued"] for at in runs}
    assert requeued == runs
    assert status(stack, message_id) == "queued"


def test_a_queued_message_past_its_send_to_expires_and_is_never_submitted(stack: Stack) -> None:
    send_to = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M:%S")
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:toatech:agent"><soapenv:Body><urn:send_message><urn:messages>'
        "<urn:message><urn:message_id>late-1</urn:message_id>"
        "<urn:address>+4915112345601</urn:address><urn:body>hi</urn:body>"
        f"<urn:send_to>{send_to}</urn:send_to></urn:message>"
        "</urn:messages></urn:send_message></soapenv:Body></soapenv:Envelope>"
    )
    stack.invoke(
        stack.handler("send_message"),
        http_event(
            "POST", "/ofsc", body=envelope, headers={"Authorization": basic("ofsc", "ofsc-secret")}
        ),
    )
    summary = run_poller(stack, 31)
    assert summary["expired"] == 1
    stack.drain_dispatch(stack.handler("dispatch"))
    (row,) = stack.dynamodb.scan(TableName=stack.table)["Items"]
    assert status(stack, row["id"]["S"]) == "expired"
    assert stack.simulator.submissions() == []


def test_with_5000_open_messages_a_run_reads_only_the_due_ones_through_the_index(
    stack: Stack,
) -> None:
    repository = MessageRepository(stack.dynamodb, stack.table)
    template_id = accept(stack, "+380671234501", "template")
    template = repository.get(template_id)
    assert template is not None
    now = int(time.time())
    items = []
    for i in range(5000):
        message = template
        message.id = f"{i:032x}"
        message.message_id = f"open-{i}"
        item = message_to_item(message)
        item["open_shard"] = {"S": open_shard_of(message.id)}
        due = i < 10
        item["next_check_at"] = {"N": str(now - 5 if due else now + 86_400)}
        item["inserted_at"] = {"S": iso(datetime.now(UTC) - timedelta(minutes=10))}
        items.append(item)
    for start in range(0, len(items), 25):
        stack.dynamodb.batch_write_item(
            RequestItems={
                stack.table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
            }
        )
    handler = poller_at(stack, 0)
    calls: Counter[str] = Counter()
    handler.runtime.dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )
    handler.runtime.sqs.meta.events.register(
        "before-call.sqs", lambda model, **_: calls.update([model.name])
    )
    summary = stack.invoke(handler, {})
    # The template message itself is not due yet; the 10 due ones are re-queued.
    assert summary["due"] == 10
    assert summary["requeued"] == 10
    assert calls["Scan"] == 0
    assert calls["Query"] == 16
    assert calls["BatchGetItem"] == 1
    assert calls["UpdateItem"] == 10
    assert calls["SendMessageBatch"] == 1
    print(f"poller run over 5000 open messages, 10 due: {dict(calls)}")


def test_two_overlapping_runs_requeue_each_message_once(stack: Stack) -> None:
    """No reserved concurrency keeps runs apart (SPEC 6.1): two runs at the same time act once on
    each message, because each change is a conditional write that one run wins."""
    from concurrent.futures import ThreadPoolExecutor

    intake = stack.handler("send_message")

    def lost(**_: Any) -> dict[str, Any]:
        raise ConnectionError("queue unreachable")

    intake.runtime.sqs.send_message_batch = lost
    for n in range(5):
        body = {"to": f"+49151123456{n:02d}", "text": "x", "message_id": f"overlap-{n}"}
        answer = stack.invoke(
            intake, http_event("POST", "/v1/messages", body=json.dumps(body), headers=bearer())
        )
        assert answer["statusCode"] == 202
    assert stack.receive() == []
    runs = [poller_at(stack, 121), poller_at(stack, 121)]
    with ThreadPoolExecutor(2) as pool:
        summaries = list(
            pool.map(lambda handler: stack.invoke(handler, {"source": "aws.scheduler"}), runs)
        )
    assert sum(s["requeued"] for s in summaries) == 5, summaries
    queued = []
    while batch := stack.receive():
        queued += batch
        for message in batch:
            stack.sqs.delete_message(
                QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
    assert len(queued) == 5


def test_a_run_that_reads_after_another_run_moved_the_check_does_not_requeue_again(
    stack: Stack,
) -> None:
    """The interleaving that once queued a message twice: run A finds the message due, run B
    finds and re-queues it, then A reads it. A sees the moved check and leaves it alone."""
    intake = stack.handler("send_message")

    def lost(**_: Any) -> dict[str, Any]:
        raise ConnectionError("queue unreachable")

    intake.runtime.sqs.send_message_batch = lost
    body = {"to": "+4915112345699", "text": "x", "message_id": "interleaved"}
    answer = stack.invoke(
        intake, http_event("POST", "/v1/messages", body=json.dumps(body), headers=bearer())
    )
    assert answer["statusCode"] == 202
    first, second = poller_at(stack, 121), poller_at(stack, 121)
    read = first.runtime.dynamodb.batch_get_item
    summaries: list[dict[str, Any]] = []

    def other_run_first(**kwargs: Any) -> Any:
        summaries.append(stack.invoke(second, {"source": "aws.scheduler"}))
        return read(**kwargs)

    first.runtime.dynamodb.batch_get_item = other_run_first
    summaries.append(stack.invoke(first, {"source": "aws.scheduler"}))
    assert [s["requeued"] for s in summaries] == [1, 0]
    assert len(stack.receive()) == 1
