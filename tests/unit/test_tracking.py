"""StatusTracker over the repository (moto): ordering rules, metrics, alternate delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cloudformation import deploy
from smsbridge.config import Settings, parse_config
from smsbridge.intake import Intake, MessageRequest
from smsbridge.models import Message, StatusReport
from smsbridge.queueing import DispatchQueue
from smsbridge.repository import MessageRepository
from smsbridge.statuses import Status
from smsbridge.tracking import StatusTracker
from tests.doubles import RecordingMetrics
from tests.support import local_documents

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def tracker(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusTracker]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        resources = deploy(session)
        config, secrets = local_documents("http://127.0.0.1:9")
        yield StatusTracker(
            MessageRepository(session.client("dynamodb"), resources.table_name("MessagesTable")),
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
