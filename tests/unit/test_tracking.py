"""StatusTracker over the repository (moto): ordering rules, metrics, alternate delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from local.cloudformation import deploy
from smsbridge.config import Settings, parse_config
from smsbridge.dispatching import Dispatcher
from smsbridge.intake import Intake, MessageRequest
from smsbridge.models import Message, StatusReport, sms_id_for
from smsbridge.polling import Poller
from smsbridge.queueing import DispatchQueue
from smsbridge.repository import MessageRepository
from smsbridge.statuses import Status
from smsbridge.tracking import StatusTracker
from tests.doubles import RecordingMetrics
from tests.support import local_documents
from tests.unit.carrier_fakes import FakeCarrier, Scripted

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class CreationFails:
    """Makes every DynamoDB write that would create one given item fail, as a throttled or
    timed-out call does once boto3's retries are spent (a botocore event hook)."""

    def __init__(self) -> None:
        self.item_id = ""
        self.failures = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        puts = [params.get("Item", {})] + [
            write["Put"]["Item"] for write in params.get("TransactItems", []) if "Put" in write
        ]
        if self.item_id and any(item.get("id") == {"S": self.item_id} for item in puts):
            self.failures += 1
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "write"
            )


@pytest.fixture
def creation_fails() -> CreationFails:
    return CreationFails()


@pytest.fixture
def tracker(
    monkeypatch: pytest.MonkeyPatch, creation_fails: CreationFails
) -> Iterator[StatusTracker]:
    # Nothing listens at the carriers' address.
    yield from tracker_on(monkeypatch, creation_fails, "http://127.0.0.1:9")


def tracker_on(
    monkeypatch: pytest.MonkeyPatch, creation_fails: CreationFails, carrier_url: str
) -> Iterator[StatusTracker]:
    """A tracker over moto, with the local configuration's carriers at `carrier_url`."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        resources = deploy(session)
        config, secrets = local_documents(carrier_url)
        dynamodb = session.client("dynamodb")
        for operation in ("PutItem", "TransactWriteItems"):
            dynamodb.meta.events.register(
                f"before-parameter-build.dynamodb.{operation}", creation_fails
            )
        yield StatusTracker(
            MessageRepository(dynamodb, resources.table_name("MessagesTable")),
            Settings(),
            parse_config(json.loads(json.dumps(config)), secrets),
            DispatchQueue(session.client("sqs"), resources.queue_url("DispatchQueue")),
            RecordingMetrics(),
            clock=lambda: NOW,
        )


def accepted(tracker: StatusTracker, to: str, text: str = "hello", **extra: Any) -> Message:
    client = tracker.config.clients["demo"]
    (message,) = Intake(tracker).accept(client, [MessageRequest(to=to, text=text, **extra)])
    assert isinstance(message, Message)
    return message


def metrics(tracker: StatusTracker) -> RecordingMetrics:
    assert isinstance(tracker.metrics, RecordingMetrics)
    return tracker.metrics


def report(tracker: StatusTracker, message: Message, status: Status, **extra: Any) -> Message:
    outcome = tracker.report(message.id, StatusReport(status, source="test", **extra))
    assert outcome is not None
    return outcome.message


def test_the_first_final_wins_and_a_conflicting_one_is_counted(tracker: StatusTracker) -> None:
    message = accepted(tracker, "+4915112345601")
    report(tracker, message, Status.SUBMITTED)
    report(tracker, message, Status.DELIVERED)
    after = report(tracker, message, Status.UNDELIVERABLE)
    assert after.status == Status.DELIVERED
    assert [h.status for h in after.history][-2:] == ["delivered", "undeliverable"]
    assert metrics(tracker).count("ConflictingFinal", carrier="smartswitch") == 1
    assert metrics(tracker).count("FinalStatus", status="delivered") == 1


def test_terminated_yields_to_a_later_real_final(tracker: StatusTracker) -> None:
    message = accepted(tracker, "+4915112345601")
    report(tracker, message, Status.SUBMITTED)
    report(tracker, message, Status.TERMINATED)
    assert report(tracker, message, Status.DELIVERED).status == Status.DELIVERED
    assert metrics(tracker).count("Terminated") == 1


def test_delivery_metrics_carry_latency_and_outcome(tracker: StatusTracker) -> None:
    message = accepted(tracker, "+4915112345601")
    report(tracker, message, Status.DELIVERED, at=NOW + timedelta(seconds=3))
    (latency,) = [p for p in metrics(tracker).points if p[0] == "DeliveryLatency"]
    assert latency[1] == pytest.approx(3000)
    assert metrics(tracker).count("DeliveryOutcome", carrier="smartswitch") == 1


def test_a_final_status_leaves_the_open_index_and_drops_the_pending_text(
    tracker: StatusTracker,
) -> None:
    message = accepted(tracker, "+4915112345601")
    assert message.text == "hello"
    after = report(tracker, message, Status.REJECTED)
    assert after.text == ""
    assert after.next_check_at is None


def test_an_eligible_failure_is_forwarded_once_to_the_alternate_route(
    tracker: StatusTracker,
) -> None:
    message = accepted(tracker, "+18475551218", alternate_delivery=True)
    original = report(tracker, message, Status.UNDELIVERABLE)
    assert original.status == Status.FORWARDED
    alternate = tracker.repository.get(original.forwarded_to)
    assert alternate is not None
    assert alternate.carrier == "vibes-longcode"
    assert alternate.forwarded_from == original.id
    assert alternate.submitter_message_id == original.message_id
    assert alternate.text == "hello"
    # One hop only: the alternate's own failure is final.
    assert report(tracker, alternate, Status.UNDELIVERABLE).status == Status.UNDELIVERABLE


def test_forwarded_and_its_alternate_are_written_together_or_not_at_all(
    tracker: StatusTracker, creation_fails: CreationFails
) -> None:
    """SPEC 4.1: a failure while the alternate is created must not strand the original as
    `forwarded` with no alternate (nobody would ever hear its outcome); retrying never creates
    the alternate twice."""
    message = accepted(tracker, "+18475551218", alternate_delivery=True)
    report(tracker, message, Status.SUBMITTED)
    alternate_id = sms_id_for(message.client, message.message_id, route_hop=1)
    creation_fails.item_id = alternate_id

    with pytest.raises(ClientError):
        tracker.report(message.id, StatusReport(Status.UNDELIVERABLE, source="test"))

    assert creation_fails.failures == 1
    stranded = tracker.repository.get(message.id)
    assert stranded is not None
    assert stranded.status == Status.SUBMITTED, "forwarded without its alternate"
    assert tracker.repository.get(alternate_id) is None

    # The receipt comes again (the carrier or SQS retries it): now both are written.
    creation_fails.item_id = ""
    for _ in range(2):
        tracker.report(message.id, StatusReport(Status.UNDELIVERABLE, source="test"))
    original = tracker.repository.get(message.id)
    alternate = tracker.repository.get(alternate_id)
    assert original is not None and original.status == Status.FORWARDED
    assert original.forwarded_to == alternate_id
    assert alternate is not None and alternate.status == Status.QUEUED
    assert alternate.forwarded_from == message.id
    assert alternate.status_seq == original.status_seq
    assert metrics(tracker).count("Forwarded") == 1


def test_a_concatenated_message_is_not_forwarded_and_says_why(tracker: StatusTracker) -> None:
    message = accepted(tracker, "+18475551218", text="x" * 200, alternate_delivery=True)
    after = report(tracker, message, Status.UNDELIVERABLE)
    assert after.status == Status.UNDELIVERABLE
    assert "concatenated" in after.description


def test_each_status_change_is_numbered_and_the_alternate_continues_the_count(
    tracker: StatusTracker,
) -> None:
    message = accepted(tracker, "+18475551218", alternate_delivery=True)
    assert report(tracker, message, Status.SUBMITTED).status_seq == 1
    assert report(tracker, message, Status.SUBMITTED).status_seq == 1  # history only
    assert report(tracker, message, Status.ENROUTE).status_seq == 2
    original = report(tracker, message, Status.UNDELIVERABLE)
    assert (original.status, original.status_seq) == (Status.FORWARDED, 3)
    alternate = tracker.repository.get(original.forwarded_to)
    assert alternate is not None
    assert report(tracker, alternate, Status.SUBMITTED).status_seq == 4


def test_the_originator_sees_a_forwarded_message_through_its_alternate(
    tracker: StatusTracker,
) -> None:
    from smsbridge.api_models import message_response

    message = accepted(tracker, "+18475551218", alternate_delivery=True, message_id="fw-1")
    report(tracker, message, Status.UNDELIVERABLE)
    intake = Intake(tracker)
    (again,) = intake.accept(
        tracker.config.clients["demo"],
        [MessageRequest(to="+18475551218", text="hello", message_id="fw-1")],
    )
    assert isinstance(again, Message)
    assert again.status == Status.FORWARDED
    answer = message_response(intake.outcome_of(again))
    assert answer == {"message_id": "fw-1", "status": "sending", "external_id": message.id}
    alternate = tracker.repository.get(again.forwarded_to)
    assert alternate is not None
    report(tracker, alternate, Status.DELIVERED)
    answer = message_response(intake.outcome_of(again))
    assert answer == {"message_id": "fw-1", "status": "delivered", "external_id": message.id}


def test_a_decision_on_a_stale_copy_is_made_again_on_the_fresh_state(
    tracker: StatusTracker,
) -> None:
    message = accepted(tracker, "+4915112345601")
    stale = tracker.repository.get(message.id)
    assert stale is not None
    report(tracker, message, Status.DELIVERED)  # another writer gets there first
    outcome = tracker.report(
        message.id, StatusReport(Status.UNDELIVERABLE, source="test"), known=stale
    )
    assert outcome is not None
    assert outcome.before.status == Status.DELIVERED  # decided again after a re-read
    assert outcome.message.status == Status.DELIVERED  # the first final still wins
    assert not outcome.changed
    assert [h.status for h in outcome.message.history][-2:] == ["delivered", "undeliverable"]
    assert metrics(tracker).count("ConflictingFinal") == 1


def test_a_history_written_meanwhile_is_not_lost(tracker: StatusTracker) -> None:
    message = accepted(tracker, "+4915112345601")
    report(tracker, message, Status.ENROUTE, gateway_status="first")
    stale = tracker.repository.get(message.id)
    assert stale is not None
    report(tracker, message, Status.ENROUTE, gateway_status="second")  # same status, new entry
    outcome = tracker.report(message.id, StatusReport(Status.DELIVERED, source="test"), known=stale)
    assert outcome is not None and outcome.changed
    assert [h.gateway_status for h in outcome.message.history][-3:] == ["first", "second", ""]
    assert outcome.message.history_rev == stale.history_rev + 2
    assert outcome.message.status_seq == stale.status_seq + 1


# --- the carrier's side of an open message follows its latest answer (SPEC 2.2) ---------------


@pytest.fixture
def fake_ip2sms() -> Iterator[FakeCarrier]:
    with FakeCarrier() as fake:
        yield fake


@pytest.fixture
def ip2sms_tracker(
    fake_ip2sms: FakeCarrier, monkeypatch: pytest.MonkeyPatch, creation_fails: CreationFails
) -> Iterator[StatusTracker]:
    yield from tracker_on(monkeypatch, creation_fails, fake_ip2sms.url)


def ip2sms_status(word: str, date: str) -> Scripted:
    body = f'<status id="77" date="{date}"><state error="">{word}</state></status>'
    return Scripted(200, body, content_type="application/xml")


def test_an_ip2sms_accepted_pending_delivered_poll_sequence(
    ip2sms_tracker: StatusTracker, fake_ip2sms: FakeCarrier
) -> None:
    """The eHealth seed's sms_log is "updated according to the job": IP2SMS `Pending` after
    `Accepted` is recorded although both are `submitted`; the submit answer's `date` is the
    first status change, each poll's `date` the next."""
    tracker = ip2sms_tracker
    fake_ip2sms.script(
        ip2sms_status("Accepted", "Sun, 22 Nov 2026 12:00:01 +0000"),
        ip2sms_status("Pending", "Sun, 22 Nov 2026 12:00:40 +0000"),
        ip2sms_status("Delivered", "Sun, 22 Nov 2026 12:03:00 +0000"),
    )
    message = accepted(tracker, "+380671234501")
    Dispatcher(tracker, requests.Session()).dispatch(message.id)
    submitted = tracker.repository.get(message.id)
    assert submitted is not None
    assert (submitted.status, submitted.gateway_status) == (Status.SUBMITTED, "Accepted")
    assert submitted.status_changed_at == "2026-11-22T12:00:01.000Z"

    tracker.clock = lambda: NOW + timedelta(minutes=2)
    Poller(tracker).run()
    pending = tracker.repository.get(message.id)
    assert pending is not None
    assert (pending.status, pending.gateway_status) == (Status.SUBMITTED, "Pending")
    assert pending.status_changed_at == "2026-11-22T12:00:40.000Z"
    assert pending.updated_at == "2026-11-22T12:02:00.000Z"
    assert pending.status_seq == submitted.status_seq  # no status change to notify

    tracker.clock = lambda: NOW + timedelta(minutes=30)
    Poller(tracker).run()
    delivered = tracker.repository.get(message.id)
    assert delivered is not None
    assert (delivered.status, delivered.gateway_status) == (Status.DELIVERED, "Delivered")
    assert delivered.status_changed_at == "2026-11-22T12:03:00.000Z"
    assert [(h.status, h.gateway_status) for h in delivered.history][-3:] == [
        ("submitted", "Accepted"),
        ("submitted", "Pending"),
        ("delivered", "Delivered"),
    ]
    assert [r.path for r in fake_ip2sms.received] == [
        "/ip2sms/send",
        "/ip2sms/status",
        "/ip2sms/status",
    ]
