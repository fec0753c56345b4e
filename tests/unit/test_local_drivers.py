"""The event-source drivers against moto (in-process): SQS, DynamoDB stream, schedule; filters."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cloudformation import (
    LocalStackResources,
    ScheduleTrigger,
    SqsTrigger,
    StreamTrigger,
    deploy,
)
from local.drivers import (
    PatternError,
    ScheduleDriver,
    SqsDriver,
    StreamDriver,
    check_pattern,
    failed_items,
    matches,
    schedule_event,
    schedule_period,
    sqs_record,
    stream_record,
)

REGION = "eu-west-1"

TEMPLATE = """
    Transform: AWS::Serverless-2016-10-31
    Resources:
      Jobs:
        Type: AWS::SQS::Queue
        Properties: {VisibilityTimeout: 1}
      Items:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          KeySchema: [{AttributeName: id, KeyType: HASH}]
          AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
          StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
"""


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


class Recorder:
    """A handler stand-in: records events, answers with `answer(event)`."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer = answer
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> Any:
        with self.lock:
            self.events.append(event)
        return self.answer(event) if self.answer else None

    @property
    def records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for e in self.events for r in e["Records"]]


@pytest.fixture
def aws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, LocalStackResources]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    (tmp_path / "template.yaml").write_text(textwrap.dedent(TEMPLATE))
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        yield session, deploy(session, tmp_path / "template.yaml")


# ------------------------------------------------------------------------------------ SQS


def test_sqs_driver_deletes_successes_and_redelivers_failures(
    aws: tuple[Any, LocalStackResources],
) -> None:
    session, resources = aws
    sqs = session.client("sqs")
    queue = resources.queues["Jobs"]
    failed_once: set[str] = set()

    def answer(event: dict[str, Any]) -> Any:
        failures = []
        for record in event["Records"]:
            if record["body"] == "flaky" and record["messageId"] not in failed_once:
                failed_once.add(record["messageId"])
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    handler = Recorder(answer)
    trigger = SqsTrigger(event="Jobs", queue="Jobs", report_batch_item_failures=True)
    driver = SqsDriver(invoke=handler, trigger=trigger, queue=queue, sqs=sqs, region=REGION)
    for body in ("one", "flaky", "two"):
        sqs.send_message(
            QueueUrl=queue.url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )
    driver.start()
    try:
        wait_until(lambda: sum(r["body"] == "flaky" for r in handler.records) == 2)
    finally:
        driver.stop()

    bodies = [r["body"] for r in handler.records]
    assert sorted(bodies) == ["flaky", "flaky", "one", "two"]
    flaky = [r for r in handler.records if r["body"] == "flaky"]
    assert flaky[0]["messageId"] == flaky[1]["messageId"]
    assert flaky[1]["attributes"]["ApproximateReceiveCount"] == "2"
    record = handler.records[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == REGION
    assert record["md5OfBody"]
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId"} <= set(record["attributes"])
    assert "ApproximateFirstReceiveTimestamp" in record["attributes"]
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "test",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_sqs_driver_keeps_the_batch_when_the_handler_raises(
    aws: tuple[Any, LocalStackResources], caplog: pytest.LogCaptureFixture
) -> None:
    session, resources = aws
    sqs = session.client("sqs")
    queue = resources.queues["Jobs"]
    calls: list[int] = []

    def answer(event: dict[str, Any]) -> Any:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        return None

    handler = Recorder(answer)
    trigger = SqsTrigger(event="Jobs", queue="Jobs", report_batch_item_failures=False)
    driver = SqsDriver(invoke=handler, trigger=trigger, queue=queue, sqs=sqs, region=REGION)
    sqs.send_message(QueueUrl=queue.url, MessageBody="again")
    driver.start()
    try:
        wait_until(lambda: len(calls) >= 2)
    finally:
        driver.stop()
    assert [r["body"] for r in handler.records] == ["again", "again"]
    assert "first call fails" in caplog.text
    assert "Traceback" not in caplog.text
    answer_now = sqs.receive_message(QueueUrl=queue.url, WaitTimeSeconds=0)
    assert "Messages" not in answer_now


def test_sqs_driver_filters_and_deletes_unmatched(aws: tuple[Any, LocalStackResources]) -> None:
    session, resources = aws
    sqs = session.client("sqs")
    queue = resources.queues["Jobs"]
    handler = Recorder()
    trigger = SqsTrigger(event="Jobs", queue="Jobs", filters=({"body": {"kind": ["wanted"]}},))
    driver = SqsDriver(invoke=handler, trigger=trigger, queue=queue, sqs=sqs, region=REGION)
    sqs.send_message(QueueUrl=queue.url, MessageBody='{"kind": "other"}')
    sqs.send_message(QueueUrl=queue.url, MessageBody="not json")
    sqs.send_message(QueueUrl=queue.url, MessageBody='{"kind": "wanted"}')
    driver.start()
    try:
        wait_until(lambda: len(handler.records) == 1)
        wait_until(
            lambda: (
                sqs.get_queue_attributes(
                    QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]["ApproximateNumberOfMessages"]
                == "0"
            )
        )
    finally:
        driver.stop()
    assert handler.records[0]["body"] == '{"kind": "wanted"}'


def test_failed_items_rules() -> None:
    ids = ["a", "b"]
    assert failed_items(None, ids) == set()
    assert failed_items({"batchItemFailures": []}, ids) == set()
    assert failed_items({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    assert failed_items({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None
    assert failed_items({"batchItemFailures": [{"itemIdentifier": "zz"}]}, ids) is None


def test_sqs_record_binary_attributes() -> None:
    record = sqs_record(
        {
            "MessageId": "m",
            "ReceiptHandle": "r",
            "Body": "b",
            "MessageAttributes": {"bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}},
        },
        "arn:aws:sqs:eu-west-1:123456789012:q",
        REGION,
    )
    assert record["messageAttributes"]["bin"]["binaryValue"] == "AAE="
    assert record["md5OfBody"] == "92eb5ffee6ae2fec3ad71c777531578f"


# --------------------------------------------------------------------------------- stream

STATUS_CHANGES = {
    "eventName": ["MODIFY"],
    "dynamodb": {"NewImage": {"status": {"S": [{"anything-but": ["queued"]}]}}},
}


def test_stream_driver_applies_filters(aws: tuple[Any, LocalStackResources]) -> None:
    session, resources = aws
    dynamodb = session.client("dynamodb")
    table = resources.tables["Items"]
    handler = Recorder()
    trigger = StreamTrigger(event="Changes", table="Items", filters=(STATUS_CHANGES,))
    driver = StreamDriver(
        invoke=handler,
        trigger=trigger,
        table=table,
        streams=session.client("dynamodbstreams"),
        region=REGION,
        poll_seconds=0.05,
    )
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "before"}, "status": {"S": "x"}})
    driver.start()  # LATEST: the write above is not delivered
    try:
        dynamodb.put_item(TableName=table.name, Item={"id": {"S": "1"}, "status": {"S": "queued"}})
        dynamodb.put_item(
            TableName=table.name,
            Item={"id": {"S": "1"}, "status": {"S": "queued"}, "blob": {"B": b"\x00"}},
        )
        dynamodb.put_item(
            TableName=table.name,
            Item={"id": {"S": "1"}, "status": {"S": "delivered"}, "blob": {"B": b"\x00"}},
        )
        wait_until(lambda: len(handler.records) >= 1)
        time.sleep(0.3)
    finally:
        driver.stop()
    (record,) = handler.records
    assert record["eventName"] == "MODIFY"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == table.stream_arn
    assert record["awsRegion"] == REGION
    assert record["eventID"]
    ddb = record["dynamodb"]
    assert ddb["Keys"] == {"id": {"S": "1"}}
    assert ddb["NewImage"]["status"] == {"S": "delivered"}
    assert ddb["OldImage"]["status"] == {"S": "queued"}
    assert ddb["NewImage"]["blob"] == {"B": "AA=="}
    assert ddb["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert ddb["SequenceNumber"]
    assert isinstance(ddb["ApproximateCreationDateTime"], int)


def test_stream_driver_retries_from_the_failed_record(aws: tuple[Any, LocalStackResources]) -> None:
    session, resources = aws
    dynamodb = session.client("dynamodb")
    table = resources.tables["Items"]
    seen: list[str] = []

    def answer(event: dict[str, Any]) -> Any:
        keys = [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]
        seen.extend(keys)
        if seen.count("b") == 1 and "b" in keys:
            index = keys.index("b")
            return {
                "batchItemFailures": [
                    {"itemIdentifier": event["Records"][index]["dynamodb"]["SequenceNumber"]}
                ]
            }
        return {"batchItemFailures": []}

    handler = Recorder(answer)
    trigger = StreamTrigger(
        event="Changes", table="Items", batch_size=10, report_batch_item_failures=True
    )
    driver = StreamDriver(
        invoke=handler,
        trigger=trigger,
        table=table,
        streams=session.client("dynamodbstreams"),
        region=REGION,
        poll_seconds=0.05,
        retry_delay_seconds=0.05,
    )
    driver.start()
    try:
        for key in ("a", "b", "c"):
            dynamodb.put_item(TableName=table.name, Item={"id": {"S": key}})
        wait_until(lambda: seen.count("c") == 2 or seen.count("b") == 2)
        wait_until(lambda: seen.count("b") == 2 and "c" in seen)
        time.sleep(0.2)
    finally:
        driver.stop()
    assert seen.count("a") == 1
    assert seen.count("b") == 2


def test_stream_record_without_images() -> None:
    record = stream_record(
        {"eventID": "e", "eventName": "REMOVE", "dynamodb": {"Keys": {"id": {"S": "1"}}}},
        "arn:stream",
        REGION,
    )
    assert record["eventSourceARN"] == "arn:stream"
    assert "NewImage" not in record["dynamodb"]


# ------------------------------------------------------------------------------- schedule


def test_schedule_driver_runs_on_its_period() -> None:
    handler = Recorder()
    trigger = ScheduleTrigger(event="Tick", kind="ScheduleV2", expression="rate(1 minute)")
    driver = ScheduleDriver(
        invoke=handler, trigger=trigger, period_seconds=0.1, function="fn", region=REGION
    )
    started = time.monotonic()
    driver.start()
    try:
        wait_until(lambda: len(handler.events) >= 3)
    finally:
        driver.stop()
    assert time.monotonic() - started >= 0.3
    event = handler.events[0]
    assert event["source"] == "aws.scheduler"
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [
        f"arn:aws:scheduler:{REGION}:123456789012:schedule/default/fn-Tick"
    ]
    count = len(handler.events)
    time.sleep(0.3)
    assert len(handler.events) == count  # stopped


def test_schedule_driver_survives_errors(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def failing(event: dict[str, Any]) -> Any:
        calls.append(1)
        raise ValueError("poller broke")

    trigger = ScheduleTrigger(event="Tick", kind="Schedule", expression="rate(1 minute)")
    driver = ScheduleDriver(
        invoke=failing, trigger=trigger, period_seconds=0.05, function="fn", region=REGION
    )
    driver.start()
    try:
        wait_until(lambda: len(calls) >= 2)
    finally:
        driver.stop()
    assert "poller broke" in caplog.text


def test_schedule_period_and_event() -> None:
    trigger = ScheduleTrigger(event="T", kind="ScheduleV2", expression="rate(2 minutes)")
    assert schedule_period(trigger) == 120.0
    assert schedule_period(trigger, "0.5") == 0.5
    cron = ScheduleTrigger(event="T", kind="ScheduleV2", expression="cron(0 * * * ? *)")
    assert schedule_period(cron) == 60.0
    with pytest.raises(ValueError, match="SCHEDULE_SECONDS"):
        schedule_period(trigger, "soon")
    with_input = ScheduleTrigger(event="T", kind="Schedule", expression="x", input='{"a": 1}')
    assert schedule_event(with_input, function="f", region=REGION) == {"a": 1}
    rule = schedule_event(
        ScheduleTrigger(event="T", kind="Schedule", expression="x"), function="f", region=REGION
    )
    assert rule["source"] == "aws.events"


# -------------------------------------------------------------------------------- filters

RECORD = {
    "eventName": "MODIFY",
    "dynamodb": {
        "NewImage": {
            "status": {"S": "delivered"},
            "attempts": {"N": "2"},
            "tags": {"L": [{"S": "x"}]},
        },
        "OldImage": {"status": {"S": "submitted"}},
        "SizeBytes": 120,
    },
    "list": ["a", "b"],
    "flag": True,
    "nothing": None,
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"eventName": ["MODIFY"]}, True),
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        ({"eventName": ["INSERT"]}, False),
        ({"dynamodb": {"NewImage": {"status": {"S": ["delivered"]}}}}, True),
        ({"dynamodb": {"NewImage": {"status": {"S": [{"prefix": "deliv"}]}}}}, True),
        ({"dynamodb": {"NewImage": {"status": {"S": [{"suffix": "red"}]}}}}, True),
        ({"dynamodb": {"NewImage": {"status": {"S": [{"anything-but": "delivered"}]}}}}, False),
        ({"dynamodb": {"NewImage": {"status": {"S": [{"anything-but": ["queued"]}]}}}}, True),
        ({"dynamodb": {"NewImage": {"status": {"S": [{"anything-but": {"prefix": "d"}}]}}}}, False),
        (
            {"dynamodb": {"NewImage": {"status": {"S": [{"equals-ignore-case": "DELIVERED"}]}}}},
            True,
        ),
        ({"dynamodb": {"NewImage": {"forwarded_to": [{"exists": False}]}}}, True),
        ({"dynamodb": {"NewImage": {"forwarded_to": [{"exists": True}]}}}, False),
        (
            {"dynamodb": {"NewImage": {"status": [{"exists": True}]}}},
            False,
        ),  # an object, not a leaf
        ({"dynamodb": {"NewImage": {"status": {"S": [{"exists": True}]}}}}, True),
        ({"dynamodb": {"OldImage": {"status": {"S": [{"exists": False}]}}}}, False),
        ({"dynamodb": {"SizeBytes": [{"numeric": [">", 100, "<=", 200]}]}}, True),
        ({"dynamodb": {"SizeBytes": [{"numeric": ["<", 100]}]}}, False),
        ({"dynamodb": {"SizeBytes": [120]}}, True),
        ({"list": ["b"]}, True),
        ({"list": ["c"]}, False),
        ({"flag": [True]}, True),
        ({"flag": ["true"]}, False),
        ({"nothing": [None]}, True),
        ({"missing": [None]}, False),
        ({"$or": [{"eventName": ["INSERT"]}, {"flag": [True]}]}, True),
        ({"$or": [{"eventName": ["INSERT"]}, {"flag": [False]}]}, False),
        ({"eventName": [{"wildcard": "MOD*"}]}, True),
        ({"eventName": ["MODIFY"], "flag": [False]}, False),
    ],
)
def test_matches(pattern: dict[str, Any], expected: bool) -> None:
    check_pattern(pattern)
    assert matches(pattern, RECORD) is expected


def test_unsupported_operator_is_refused() -> None:
    with pytest.raises(PatternError, match="regex"):
        check_pattern({"ip": [{"regex": "10.*"}]})
    with pytest.raises(PatternError):
        check_pattern({"eventName": "MODIFY"})
