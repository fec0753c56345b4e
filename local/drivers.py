"""Event sources as Lambda runs them: SQS queues, schedules and DynamoDB streams feed the handlers.

Every driver is generic: it is built from a trigger of template.yaml and an `invoke(event)`
callable, never from a function's name. Each runs in daemon threads until its stop Event is set;
a failing handler costs one log line (the traceback goes to DEBUG) and the driver carries on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from local.cloudformation import (
    ACCOUNT_ID,
    DEFAULT_REGION,
    QueueInfo,
    ScheduleTrigger,
    SqsTrigger,
    StreamTrigger,
    TableInfo,
)
from local.worker import one_line

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

    from tools.chaos import Faults

log = logging.getLogger("local.drivers")

Invoke = Callable[[dict[str, Any]], Any]

#: Retries of a failing stream batch when the template leaves MaximumRetryAttempts unset (AWS
#: retries until the records expire, which would stall the local stream for a day).
DEFAULT_STREAM_RETRIES = 3
#: Period of a schedule whose expression is not a rate (cron, at).
DEFAULT_SCHEDULE_SECONDS = 60.0


# ---------------------------------------------------------------------------- filter patterns


class PatternError(ValueError):
    """A FilterCriteria pattern Lambda would refuse, or with an operator the matcher lacks."""


#: moto's EventBridge matcher (Lambda filters use EventBridge's pattern syntax) knows these.
_OPERATORS = frozenset(
    {"prefix", "suffix", "equals-ignore-case", "anything-but", "exists", "numeric", "wildcard"}
    | {"cidr"}
)


def _matchers(pattern: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(pattern, Mapping):
        for value in pattern.values():
            yield from _matchers(value)
    elif isinstance(pattern, list):
        for item in pattern:
            if isinstance(item, Mapping) and not any(isinstance(v, list) for v in item.values()):
                yield item
            yield from _matchers(item) if isinstance(item, Mapping) else ()


def check_pattern(pattern: Mapping[str, Any]) -> None:
    """Raise PatternError for an invalid pattern or an operator outside the matcher's."""
    from moto.events.models import EventPattern

    try:
        EventPattern.load(json.dumps(pattern))
    except Exception as exc:
        raise PatternError(f"invalid filter pattern {pattern}: {exc}") from None
    for matcher in _matchers(pattern):
        if set(matcher) - _OPERATORS or len(matcher) != 1:
            raise PatternError(f"filter operator {sorted(matcher)} is not supported")


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether `event` matches an EventBridge-style pattern (moto's EventBridge matcher)."""
    from moto.events.models import EventPattern

    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))


def passes(filters: Iterable[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """Lambda's FilterCriteria: no filters pass everything, else any one pattern must match."""
    patterns = list(filters)
    return not patterns or any(matches(p, record) for p in patterns)


# ------------------------------------------------------------------------------------ drivers


class Driver[T]:
    """Runs `poll_once` in daemon threads until the stop Event is set: events of a template
    `trigger` for the function's `invoke`."""

    def __init__(
        self,
        name: str,
        invoke: Invoke,
        trigger: T,
        region: str,
        stop_event: threading.Event | None = None,
        workers: int = 1,
    ) -> None:
        for pattern in getattr(trigger, "filters", ()):
            check_pattern(pattern)
        self.name, self.invoke, self.trigger, self.region = name, invoke, trigger, region
        self.stop_event = stop_event or threading.Event()
        self.workers = max(1, workers)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"{self.name}#{index}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                if self.stop_event.is_set():
                    return
                self._failed("", exc)
                self.stop_event.wait(1.0)

    def poll_once(self) -> None:
        raise NotImplementedError

    def _failed(self, what: str, exc: BaseException) -> None:
        """One log line for a failure (the traceback at DEBUG); the driver carries on."""
        log.warning("%s: %s%s", self.name, what, one_line(exc))
        log.debug("%s: %s", self.name, what or "failed", exc_info=True)


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def sqs_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """An SQS API message attribute in the Lambda event's shape (lower camel case, base64)."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = _b64(value["BinaryValue"])
    attribute["stringListValues"] = list(value.get("StringListValues") or [])
    attribute["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues") or []]
    attribute["dataType"] = value.get("DataType", "String")
    return attribute


def sqs_record(
    message: MessageTypeDef | Mapping[str, Any], queue_arn: str, region: str
) -> dict[str, Any]:
    """The Lambda SQS event record for a received message."""
    body = str(message.get("Body", ""))
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: sqs_message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


def sqs_event(
    messages: Iterable[MessageTypeDef | Mapping[str, Any]],
    queue_arn: str,
    region: str = DEFAULT_REGION,
) -> dict[str, Any]:
    """The event Lambda's SQS event source builds from received messages."""
    return {"Records": [sqs_record(m, queue_arn, region) for m in messages]}


def _filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """What SQS filters see: the body as JSON when it is a JSON object, else as text."""
    view = dict(record)
    try:
        body = json.loads(record["body"])
    except (TypeError, ValueError):
        return view
    if isinstance(body, dict):
        view["body"] = body
    return view


def failed_items(result: Any, identifiers: list[str]) -> set[str] | None:
    """Identifiers from a `batchItemFailures` answer; None when the whole batch counts as failed.

    As in Lambda, an item without a valid identifier (empty, or not in the batch) fails the
    whole batch.
    """
    if not isinstance(result, Mapping):
        return set()
    items = result.get("batchItemFailures")
    if not items:
        return set()
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in identifiers:
            return None
        failed.add(identifier)
    return failed


class SqsDriver(Driver[SqsTrigger]):
    """Long-polls a queue, invokes the function with each batch, deletes what succeeded.

    Records named in `batchItemFailures` (with ReportBatchItemFailures) stay on the queue and come
    back after their visibility timeout (which the handler may have changed); an exception keeps
    the whole batch. Records that no FilterCriteria pattern matches are deleted unseen, as in
    Lambda.
    """

    def __init__(
        self,
        *,
        invoke: Invoke,
        trigger: SqsTrigger,
        queue: QueueInfo,
        sqs: SQSClient,
        region: str,
        stop_event: threading.Event | None = None,
        workers: int = 1,
        wait_seconds: int = 1,
        name: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        name = name or f"sqs:{queue.logical_id}"
        super().__init__(name, invoke, trigger, region, stop_event, workers)
        self.faults, self.queue, self.sqs, self.wait_seconds = faults, queue, sqs, wait_seconds

    def _receive(self) -> list[MessageTypeDef]:
        wanted = max(1, self.trigger.batch_size)
        window = self.trigger.maximum_batching_window_seconds
        deadline = time.monotonic() + window
        messages: list[MessageTypeDef] = []
        while not self.stop_event.is_set():
            answer = self.sqs.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=min(10, wanted - len(messages)),
                WaitTimeSeconds=self.wait_seconds,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages.extend(answer.get("Messages", []))
            if len(messages) >= wanted or time.monotonic() >= deadline or window <= 0:
                break
        return messages

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            answer = self.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)
                ],
            )
            for failure in answer.get("Failed", []):
                log.warning("%s: delete failed: %s", self.name, failure.get("Code"))

    def poll_once(self) -> None:
        messages = self._receive()
        if not messages:
            return
        records = [sqs_record(m, self.queue.arn, self.region) for m in messages]
        if self.trigger.filters:
            dropped = [r for r in records if not passes(self.trigger.filters, _filter_view(r))]
            if dropped:
                self._delete(dropped)
                records = [r for r in records if r not in dropped]
        if not records:
            return
        try:
            result = self.invoke({"Records": records})
        except Exception as exc:
            self._failed(f"batch of {len(records)} failed, records stay: ", exc)
            return
        self._deliver_again(records)
        if not self.trigger.report_batch_item_failures:
            self._delete(records)
            return
        failed = failed_items(result, [r["messageId"] for r in records])
        if failed is None:
            log.warning("%s: invalid batchItemFailures, the whole batch stays", self.name)
            return
        self._delete([r for r in records if r["messageId"] not in failed])

    def _deliver_again(self, records: list[dict[str, Any]]) -> None:
        """Fault injection: SQS delivers some records a second time (at-least-once)."""
        if self.faults is None:
            return
        rate = self.faults.rates.sqs_duplicate
        again = [r for r in records if self.faults.roll("sqs_duplicate", rate)]
        if not again:
            return
        try:
            self.invoke({"Records": again})
        except Exception as exc:
            self._failed("repeated delivery failed: ", exc)


def schedule_period(trigger: ScheduleTrigger, override: str | None = None) -> float:
    """Seconds between runs: `override` (SCHEDULE_SECONDS) when set, else the template's rate."""
    if override:
        try:
            seconds = float(override)
        except ValueError:
            raise ValueError(f"SCHEDULE_SECONDS must be a number, got {override!r}") from None
        if seconds <= 0:
            raise ValueError(f"SCHEDULE_SECONDS must be positive, got {override!r}")
        return seconds
    return trigger.period_seconds or DEFAULT_SCHEDULE_SECONDS


def schedule_event(
    trigger: ScheduleTrigger,
    *,
    function: str,
    region: str,
    account_id: str = ACCOUNT_ID,
    now: datetime | None = None,
) -> Any:
    """The template's Input when it sets one, else a scheduled-event notification."""
    if trigger.input is not None:
        try:
            return json.loads(trigger.input)
        except ValueError:
            return trigger.input
    now = now or datetime.now(UTC)
    if trigger.kind == "ScheduleV2":
        source = "aws.scheduler"
        resource = (
            f"arn:aws:scheduler:{region}:{account_id}:schedule/default/{function}-{trigger.event}"
        )
    else:
        source = "aws.events"
        resource = f"arn:aws:events:{region}:{account_id}:rule/{function}-{trigger.event}"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": account_id,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [resource],
        "detail": {},
    }


class ScheduleDriver(Driver[ScheduleTrigger]):
    """Invokes the function every `period_seconds` (the first run one period after start)."""

    def __init__(
        self,
        *,
        invoke: Invoke,
        trigger: ScheduleTrigger,
        period_seconds: float,
        function: str,
        region: str,
        account_id: str = ACCOUNT_ID,
        stop_event: threading.Event | None = None,
        name: str | None = None,
    ) -> None:
        name = name or f"schedule:{function}.{trigger.event}"
        super().__init__(name, invoke, trigger, region, stop_event)
        self.period_seconds, self.function, self.account_id = period_seconds, function, account_id
        self._next = time.monotonic() + period_seconds

    def poll_once(self) -> None:
        if self.stop_event.wait(max(0.0, self._next - time.monotonic())):
            return
        self._next = max(self._next + self.period_seconds, time.monotonic())
        event = schedule_event(
            self.trigger, function=self.function, region=self.region, account_id=self.account_id
        )
        try:
            self.invoke(event)
        except Exception as exc:
            self._failed("run failed: ", exc)


def _wire(value: Any) -> Any:
    """DynamoDB JSON as Lambda delivers it: binary values base64-encoded."""
    if isinstance(value, bytes | bytearray):
        return _b64(bytes(value))
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def stream_record(raw: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """The Lambda DynamoDB event record for a record read with GetRecords."""
    ddb = dict(raw.get("dynamodb") or {})
    created = ddb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        ddb["ApproximateCreationDateTime"] = int(created.timestamp())
    for key in ("Keys", "NewImage", "OldImage"):
        if key in ddb:
            ddb[key] = _wire(ddb[key])
    record: dict[str, Any] = {
        "eventID": raw.get("eventID", uuid.uuid4().hex),
        "eventName": raw.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": ddb,
        "eventSourceARN": stream_arn,
    }
    if raw.get("userIdentity"):
        record["userIdentity"] = raw["userIdentity"]
    return record


class StreamDriver(Driver[StreamTrigger]):
    """Reads a table's stream (from LATEST at start, or TRIM_HORIZON) and invokes the function.

    Records that match no FilterCriteria pattern are skipped. A failing batch is retried (from the
    first sequence number in `batchItemFailures`, or whole) up to MaximumRetryAttempts, then
    skipped with a log line.
    """

    def __init__(
        self,
        *,
        invoke: Invoke,
        trigger: StreamTrigger,
        table: TableInfo,
        streams: Any,
        region: str,
        stop_event: threading.Event | None = None,
        poll_seconds: float = 0.2,
        retry_delay_seconds: float = 0.5,
        name: str | None = None,
    ) -> None:
        if not table.stream_arn:
            raise ValueError(f"table {table.logical_id} has no stream")
        name = name or f"stream:{table.logical_id}"
        super().__init__(name, invoke, trigger, region, stop_event)
        self.table = table
        self.stream_arn: str = table.stream_arn
        self.streams = streams
        self.poll_seconds = poll_seconds
        self.retry_delay_seconds = retry_delay_seconds
        retries = trigger.maximum_retry_attempts
        self.max_retries = DEFAULT_STREAM_RETRIES if retries is None else retries
        self._iterators: dict[str, str | None] = {}
        self._pending: list[dict[str, Any]] = []
        self._attempts = 0

    def start(self) -> None:
        """Take the shard iterators now, so that every write after start() is seen."""
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        position = "TRIM_HORIZON" if self.trigger.starting_position == "TRIM_HORIZON" else "LATEST"
        for shard in description.get("Shards", []):
            answer = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType=position
            )
            self._iterators[shard["ShardId"]] = answer.get("ShardIterator")
        super().start()

    def _fetch(self) -> list[dict[str, Any]]:
        fetched: list[dict[str, Any]] = []
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            answer = self.streams.get_records(
                ShardIterator=iterator, Limit=max(1, self.trigger.batch_size)
            )
            self._iterators[shard_id] = answer.get("NextShardIterator")
            fetched.extend(answer.get("Records", []))
        records = [stream_record(r, self.stream_arn, self.region) for r in fetched]
        return [r for r in records if passes(self.trigger.filters, r)]

    def poll_once(self) -> None:
        if not self._pending:
            self._pending = self._fetch()
            self._attempts = 0
            if not self._pending:
                self.stop_event.wait(self.poll_seconds)
                return
        batch = self._pending[: max(1, self.trigger.batch_size)]
        failed_from: int | None
        try:
            result = self.invoke({"Records": batch})
        except Exception as exc:
            self._failed(f"batch of {len(batch)} failed: ", exc)
            failed_from = 0
        else:
            failed_from = None
            if self.trigger.report_batch_item_failures:
                sequence = [r["dynamodb"].get("SequenceNumber", "") for r in batch]
                failed = failed_items(result, sequence)
                if failed is None:
                    failed_from = 0
                elif failed:
                    failed_from = min(sequence.index(s) for s in failed)
        if failed_from is None:
            del self._pending[: len(batch)]
            self._attempts = 0
            return
        del self._pending[:failed_from]
        self._attempts += 1
        if self._attempts > self.max_retries:
            skipped = len(batch) - failed_from
            log.warning(
                "%s: %d records skipped after %d retries", self.name, skipped, self.max_retries
            )
            del self._pending[:skipped]
            self._attempts = 0
            return
        self.stop_event.wait(self.retry_delay_seconds)
