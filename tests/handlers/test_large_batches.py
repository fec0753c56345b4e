"""Large OFSC batches: written concurrently and queued in few calls, so that a request as large as
the body limit allows answers well within the function's time-out."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
from botocore.client import BaseClient

from local.drivers import sqs_event
from smsbridge.models import Message
from smsbridge.repository import MessageRepository
from tests.handlers.conftest import Stack
from tests.handlers.test_ofsc import ENVELOPE, OK, call, texts

#: A stand-in for DynamoDB's round trip, so that sequential writes show.
PUT_LATENCY = 0.02


def batch(count: int) -> str:
    messages = "".join(
        f"<message><message_id>b{i}</message_id><address>+4915112{i:06d}</address>"
        "<body>At 10:00</body></message>"
        for i in range(count)
    )
    return ENVELOPE.format(
        body=f"<urn:send_message><urn:messages>{messages}</urn:messages></urn:send_message>"
    )


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counted(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls[operation] += 1
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    return calls


def test_a_large_batch_is_written_concurrently_and_queued_in_few_calls(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, aws_calls: Counter[str]
) -> None:
    create = MessageRepository.create
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    def slow_create(self: MessageRepository, message: Message, **kwargs: Any) -> Any:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        time.sleep(PUT_LATENCY)
        try:
            return create(self, message, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(MessageRepository, "create", slow_create)
    count = 500
    status, root = call(stack, batch(count), OK)
    assert status == 200
    assert texts(root, "status") == ["sending"] * count
    # Bounded concurrency: more than one write at a time, never more than the pool.
    assert 8 <= in_flight[1] <= 16, in_flight
    assert aws_calls["SendMessageBatch"] <= 5
    queued: list[str] = []
    while records := stack.receive():
        for record in records:
            queued += json.loads(record["Body"])["ids"]
            stack.sqs.delete_message(
                QueueUrl=stack.queue_url, ReceiptHandle=record["ReceiptHandle"]
            )
    stored = stack.dynamodb.scan(TableName=stack.table, ProjectionExpression="id")["Items"]
    assert sorted(queued) == sorted(item["id"]["S"] for item in stored)


def test_dispatch_fans_a_packed_record_out_into_one_record_per_message(stack: Stack) -> None:
    ids = [f"{i:032x}" for i in range(10)]
    event = sqs_event(
        [{"MessageId": "m-1", "ReceiptHandle": "handle-1", "Body": json.dumps({"ids": ids})}],
        stack.resources.queue_arn("DispatchQueue"),
    )
    result = stack.invoke(stack.handler("dispatch"), event)
    assert result["batchItemFailures"] == []
    bodies = [json.loads(record["Body"]) for record in stack.receive()]
    assert sorted(body["id"] for body in bodies) == ids


def test_a_small_batch_is_queued_one_record_per_message(stack: Stack) -> None:
    status, _ = call(stack, batch(12), OK)
    assert status == 200
    records = stack.receive() + stack.receive()
    assert len(records) == 12
    assert all("id" in json.loads(record["Body"]) for record in records)
