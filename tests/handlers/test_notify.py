"""notify against moto: the stream stage queues jobs and calls no one; the queue stage reads
OFSC answers per message (NOT FOUND is not retried, a SOAP Fault is) and a dead endpoint does not
hold a batch up."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from local.drivers import sqs_event
from local.runtime import LambdaContext
from smsbridge.models import Message, Origin, sms_id_for
from smsbridge.repository import MessageRepository, message_to_item
from smsbridge.statuses import Status
from tests.handlers.conftest import Stack
from tests.support import a_message


@pytest.fixture
def notify(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("NOTIFY_QUEUE_URL", stack.resources.queue_url("NotifyQueue"))
    monkeypatch.setenv(
        "NOTIFY_DEAD_LETTER_QUEUE_URL", stack.resources.queue_url("NotifyDeadLetterQueue")
    )
    monkeypatch.setenv("NOTIFY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("NOTIFY_TIMEOUT_SECONDS", "1")
    yield stack.handler("notify")


def set_ofsc_callback(stack: Stack, url: str) -> None:
    """Point the OFSC client's callback URL somewhere else (the config is read afresh)."""
    import boto3
    from aws_lambda_powertools.utilities import parameters

    client = boto3.client("ssm", region_name="eu-west-1")
    name = stack.resources.functions["NotifyFunction"].environment["CONFIG_PARAMETER"]
    config = json.loads(client.get_parameter(Name=name)["Parameter"]["Value"])
    config["clients"]["ofsc"]["callback_url"] = url
    client.put_parameter(Name=name, Value=json.dumps(config), Type="String", Overwrite=True)
    parameters.clear_caches()  # type: ignore[no-untyped-call]


def stored(stack: Stack, *, client: str, status: Status, seq: int, **fields: Any) -> Message:
    message_id = fields.pop("message_id", uuid.uuid4().hex[:12])
    message = a_message(
        id=sms_id_for(client, message_id),
        client=client,
        message_id=message_id,
        body="hello",
        sender="SMSBRIDGE",
        status=status,
        inserted_at="2026-11-30T10:00:00.000Z",
        updated_at="2026-11-30T10:00:05.000Z",
        status_changed_at="2026-11-30T10:00:05.000Z",
        delivered_at="2026-11-30T10:00:05.000Z" if status == Status.DELIVERED else "",
        description=str(status),
        status_seq=seq,
        **fields,
    )
    MessageRepository(stack.dynamodb, stack.table).create(message, next_check_at=None)
    return message


def stream_event(changes: list[tuple[Message, Status]]) -> dict[str, Any]:
    records = []
    for number, (message, old_status) in enumerate(changes, 1):
        new = message_to_item(message)
        new["item_type"] = {"S": "message"}
        old = dict(new, status={"S": str(old_status)})
        records.append(
            {
                "eventID": uuid.uuid4().hex,
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "dynamodb": {
                    "Keys": {"id": {"S": message.id}},
                    "NewImage": new,
                    "OldImage": old,
                    "SequenceNumber": str(1000 + number),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
        )
    return {"Records": records}


def queued_jobs(stack: Stack) -> dict[str, Any]:
    """What the stream stage put on the notify queue, as the queue trigger's event."""
    url = stack.resources.queue_url("NotifyQueue")
    messages: list[dict[str, Any]] = []
    while True:
        answer = stack.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        )
        if not answer.get("Messages"):
            break
        messages.extend(answer["Messages"])
    return sqs_event(messages, stack.resources.queue_arn("NotifyQueue"))


def invoke(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = module.lambda_handler(event, LambdaContext(function_name="notify"))
    return result


def ofsc_calls(stack: Stack) -> list[dict[str, Any]]:
    return [c for c in stack.simulator.callbacks() if c["kind"] == "ofsc"]


def notified(stack: Stack, message: Message) -> int:
    return MessageRepository(stack.dynamodb, stack.table).notified_seqs([message.id])[message.id]


def test_ofsc_not_found_is_logged_and_not_retried(stack: Stack, notify: ModuleType) -> None:
    set_ofsc_callback(stack, f"{stack.simulator.url}/_sim/ofsc?code=NOT%20FOUND")
    origin = Origin(kind="ofsc", app_host="ofsc.example.com", app_port="443", app_url="/soap/")
    message = stored(stack, client="ofsc", status=Status.DELIVERED, seq=3, origin=origin)
    assert invoke(notify, stream_event([(message, Status.ENROUTE)])) == {"batchItemFailures": []}
    assert invoke(notify, queued_jobs(stack)) == {"batchItemFailures": []}
    (call,) = ofsc_calls(stack)
    assert call["messages"][0]["message_id"] == message.message_id
    assert call["messages"][0]["status"] == "delivered"
    # Done with, not retried: nothing stays on the queue, nothing in the dead-letter queue.
    assert queued_jobs(stack)["Records"] == []
    assert notified(stack, message) == 3


def test_a_soap_fault_retries_the_call(stack: Stack, notify: ModuleType) -> None:
    set_ofsc_callback(stack, f"{stack.simulator.url}/_sim/ofsc?fail=1")
    origin = Origin(kind="ofsc", app_host="ofsc.example.com", app_port="443", app_url="/soap/")
    message = stored(stack, client="ofsc", status=Status.UNDELIVERABLE, seq=2, origin=origin)
    invoke(notify, stream_event([(message, Status.SUBMITTED)]))
    first = queued_jobs(stack)
    (record,) = first["Records"]
    answer = invoke(notify, first)
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert [c["answered"] for c in ofsc_calls(stack)] == [500]
    assert notified(stack, message) == 0
    # The back-off is the record's visibility; here the second try comes at once.
    second = dict(first, Records=[dict(record, attributes={"ApproximateReceiveCount": "2"})])
    assert invoke(notify, second) == {"batchItemFailures": []}
    calls = ofsc_calls(stack)
    assert [c["answered"] for c in calls] == [500, 200]
    assert calls[1]["messages"][0]["status"] == "failed"
    assert calls[1]["messages"][0]["description"] == "undeliverable"
    assert notified(stack, message) == 2


class DeadEndpoint:
    """A port that takes connections and never answers (a hung back office); it remembers how
    many callers were waiting on it at the same time."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"
        self._lock = threading.Lock()
        self._open = 0
        self.most_at_once = 0
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open += 1
                self.connections += 1
                self.most_at_once = max(self.most_at_once, self._open)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        """Read and never answer, until the caller gives up and closes."""
        with conn:
            while conn.recv(4096):
                pass
        with self._lock:
            self._open -= 1

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def dead_endpoint() -> Iterator[DeadEndpoint]:
    endpoint = DeadEndpoint()
    yield endpoint
    endpoint.close()


def test_a_dead_endpoint_does_not_hold_up_the_stream_or_a_batch(
    stack: Stack, notify: ModuleType, dead_endpoint: DeadEndpoint
) -> None:
    healthy = stored(
        stack,
        client="demo",
        status=Status.DELIVERED,
        seq=3,
        callback_url=f"{stack.simulator.url}/_sim/callback/healthy",
    )
    dead = [
        stored(stack, client="demo", status=Status.DELIVERED, seq=3, callback_url=dead_endpoint.url)
        for _ in range(12)
    ]
    changes = [(m, Status.ENROUTE) for m in [*dead, healthy]]
    assert invoke(notify, stream_event(changes)) == {"batchItemFailures": []}
    assert dead_endpoint.connections == 0  # the stream stage calls nobody

    batch = queued_jobs(stack)
    assert len(batch["Records"]) == 13
    answer = invoke(notify, batch)
    assert len(answer["batchItemFailures"]) == 12
    # The dead calls waited out their read time-outs side by side (up to NOTIFY_CONCURRENCY at
    # once), not one after the other: twelve in a row would take the function to its time-out.
    # (Once the endpoint is known down, the calls not yet started are not made.)
    assert 4 <= dead_endpoint.most_at_once <= dead_endpoint.connections <= 12
    (call,) = [c for c in stack.simulator.callbacks() if c["path"] == "/_sim/callback/healthy"]
    assert json.loads(call["body"])["message_id"] == healthy.message_id
    assert notified(stack, healthy) == 3
    assert all(notified(stack, m) == 0 for m in dead)


def test_status_changes_of_other_items_or_without_a_callback_queue_nothing(
    stack: Stack, notify: ModuleType
) -> None:
    quiet = stored(stack, client="demo", status=Status.DELIVERED, seq=2)
    final_only = stored(
        stack,
        client="demo",
        status=Status.ENROUTE,
        seq=2,
        callback_url=f"{stack.simulator.url}/_sim/callback/x",
    )
    event = stream_event([(quiet, Status.ENROUTE), (final_only, Status.SUBMITTED)])
    assert invoke(notify, event) == {"batchItemFailures": []}
    assert queued_jobs(stack)["Records"] == []


def test_the_sample_stream_event_queues_one_job(stack: Stack, notify: ModuleType) -> None:
    from tests.support import ROOT

    event = json.loads((ROOT / "events" / "notify_stream.json").read_text())
    assert invoke(notify, event) == {"batchItemFailures": []}
    (record,) = queued_jobs(stack)["Records"]
    sample = json.loads((ROOT / "events" / "notify_sqs.json").read_text())["Records"][0]
    # The time it was queued and its random event id differ from the sample's.
    made = json.loads(record["body"])
    assert made["event_id"].startswith("evt_")
    unstable = {"queued_at": "", "event_id": ""}
    assert made | unstable == json.loads(sample["body"]) | unstable
