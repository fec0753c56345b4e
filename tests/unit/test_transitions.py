"""The status change of one run of reports (pure): every (current, reported) pair of statuses
against the ordering rules of SPEC 2.1, what goes with a change, alternate delivery (SPEC 4.1)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from smsbridge.config import Settings, parse_config
from smsbridge.lifecycle import Lifecycle
from smsbridge.models import HistoryEntry, Message, StatusReport, iso, sms_id_for
from smsbridge.statuses import Status
from smsbridge.transitions import CLOSED_FIELDS, Transition, alternate_delivery, transition
from tests.support import a_message, local_documents

S = Status
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
CARRIER_AT = NOW - timedelta(seconds=30)

#: The rank of SPEC 2.1, written out here rather than taken from the code under test.
RANK = {S.QUEUED: 0, S.SUBMITTED: 1, S.ENROUTE: 2, S.UNKNOWN: 2}
FINALS = [s for s in Status if s not in RANK]


def expected(current: Status, reported: Status) -> tuple[Status, bool]:
    """(status after the report, whether it is a `ConflictingFinal`) by SPEC 2.1 / README."""
    if current in FINALS:
        if reported not in FINALS or reported == current:
            return current, False  # lower or equal rank: recorded, not moved
        if current == S.TERMINATED:
            return reported, False  # terminated yields to a later real final
        return current, True  # the first final wins; a different one is a conflict
    if reported in FINALS or RANK[reported] > RANK[current]:
        return reported, False
    if (current, reported) == (S.UNKNOWN, S.ENROUTE):
        return reported, False
    return current, False


PAIRS = list(itertools.product(Status, Status))


def message(status: Status = S.SUBMITTED, **fields: Any) -> Message:
    first = HistoryEntry(at="2026-11-22T11:00:00.000Z", status=str(status))
    values: dict[str, Any] = {"gateway_id": "g-1", "text": "hi", "history": [first]}
    return a_message(status=status, **(values | fields))


def receipt(status: Status, **fields: object) -> StatusReport:
    return StatusReport(
        status,
        source="receipt:smartswitch",
        gateway_status=f"carrier-{status}",
        at=CARRIER_AT,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def lifecycle() -> Lifecycle:
    config, secrets = local_documents("http://127.0.0.1:9")
    return Lifecycle(Settings(), parse_config(json.loads(json.dumps(config)), secrets))


def test_every_pair_is_covered() -> None:
    assert len(PAIRS) == len(Status) ** 2 == 196


@pytest.mark.parametrize(("current", "reported"), PAIRS, ids=[f"{c}->{r}" for c, r in PAIRS])
def test_every_pair_follows_the_ordering_rules(
    current: Status, reported: Status, lifecycle: Lifecycle
) -> None:
    before = message(current)
    change = transition(before, [receipt(reported)], now=NOW, lifecycle=lifecycle)
    status, conflicting = expected(current, reported)

    assert change.status == status
    assert change.changed == (status != current)
    assert change.conflicts == int(conflicting)
    # Recorded in the history either way (the first time it is seen), in the carrier's time.
    assert [e.status for e in change.history] == [str(current), str(reported)]
    assert change.history[-1].at == iso(CARRIER_AT)
    assert change.history[-1].received_at == iso(NOW)
    assert change.writes
    assert change.fields["updated_at"] == iso(NOW)
    if change.changed:
        assert change.fields["status"] == reported
        assert change.fields["status_changed_at"] == iso(CARRIER_AT)
        assert change.fields["description"] == str(reported)
        assert change.fields["gateway_status"] == f"carrier-{reported}"
        assert change.counters == ("history_rev", "status_seq")
        if reported == S.DELIVERED:
            assert change.fields["delivered_at"] == iso(CARRIER_AT)
        else:
            assert "delivered_at" not in change.fields
        if reported in FINALS:
            assert not change.stays_open
            assert change.removes == CLOSED_FIELDS
            assert change.next_check_at is None
        else:
            assert change.stays_open
            assert change.removes == ()
            assert change.next_check_at == lifecycle.next_check(before, reported, NOW)
            assert change.next_check_at is not None
    else:
        for moved in ("status", "description"):
            assert moved not in change.fields
        # SPEC 2.2: an open message's carrier side follows the carrier's latest answer of the
        # same or a higher rank; a final, or a lower rank, moves nothing.
        if current not in FINALS and RANK[reported] >= RANK[current]:
            assert change.fields["gateway_status"] == f"carrier-{reported}"
            assert change.fields["status_changed_at"] == iso(CARRIER_AT)
        else:
            assert "gateway_status" not in change.fields
            assert "status_changed_at" not in change.fields
        assert change.counters == ("history_rev",)
        assert change.removes == ()
        assert change.next_check_at is None
        assert change.stays_open == (current not in FINALS)


def test_the_carrier_side_never_moves_back_in_time() -> None:
    """A late answer dated before the last change is recorded, but the carrier status and the
    time of the last change stay those of the newer answer."""
    held = message(
        S.SUBMITTED, gateway_status="Pending", status_changed_at=iso(CARRIER_AT + timedelta(1))
    )
    late = StatusReport(S.SUBMITTED, source="poll:ip2sms", gateway_status="Accepted", at=CARRIER_AT)
    change = transition(held, [late], now=NOW)
    assert change.history[-1].gateway_status == "Accepted"
    assert "gateway_status" not in change.fields
    assert "status_changed_at" not in change.fields


def test_a_report_without_a_carrier_word_leaves_the_carrier_side_alone() -> None:
    change = transition(message(S.ENROUTE), [StatusReport(S.ENROUTE, source="test")], now=NOW)
    assert "gateway_status" not in change.fields
    assert "status_changed_at" not in change.fields


@pytest.mark.parametrize(("current", "reported"), PAIRS, ids=[f"{c}->{r}" for c, r in PAIRS])
def test_a_repeat_of_a_recorded_report_writes_nothing_unless_it_moves(
    current: Status, reported: Status
) -> None:
    held = message(current)
    recorded = transition(held, [receipt(reported)], now=NOW).history
    again = transition(message(current, history=recorded), [receipt(reported)], now=NOW)
    assert again.writes == again.changed == (expected(current, reported)[0] != current)
    if not again.writes:
        assert again.fields == {} and again.removes == ()


@pytest.mark.parametrize("real", [s for s in FINALS if s != S.TERMINATED])
def test_terminated_yields_within_one_run_and_the_next_final_conflicts(real: Status) -> None:
    other = S.DELIVERED if real != S.DELIVERED else S.EXPIRED
    change = transition(
        message(S.SUBMITTED), [receipt(S.TERMINATED), receipt(real), receipt(other)], now=NOW
    )
    assert change.status == real
    assert change.conflicts == 1
    assert [e.status for e in change.history][1:] == ["terminated", str(real), str(other)]


def test_reports_are_decided_in_order_on_what_the_ones_before_left() -> None:
    reports = [receipt(S.UNKNOWN), receipt(S.ENROUTE), receipt(S.SUBMITTED)]
    change = transition(message(S.SUBMITTED), reports, now=NOW)
    assert change.status == S.ENROUTE
    assert change.report == reports[-1]


def test_a_report_without_a_carrier_time_is_dated_now() -> None:
    change = transition(message(), [StatusReport(S.DELIVERED, source="poller")], now=NOW)
    assert change.fields["delivered_at"] == change.fields["status_changed_at"] == iso(NOW)
    assert change.history[-1].received_at == ""


def test_forwarding_and_errors_go_with_the_change() -> None:
    change = transition(
        message(forwarded_from="orig"),
        [receipt(S.UNDELIVERABLE, gateway_error="E42", description="absent", forwarded_from="x")],
        now=NOW,
    )
    assert change.fields["gateway_error"] == "E42"
    assert change.fields["description"] == "absent"
    assert "forwarded_from" not in change.fields  # the first origin is kept


def test_what_the_caller_writes_goes_with_the_change_once() -> None:
    change = transition(
        message(S.QUEUED),
        [StatusReport(S.DELIVERED, source="dispatch")],
        now=NOW,
        also_set={"gateway_id": "g-9", "submitted_at": iso(NOW)},
        also_remove=("claimed_until",),
    )
    assert change.fields["gateway_id"] == "g-9"
    assert change.removes.count("claimed_until") == 1
    assert set(CLOSED_FIELDS) <= set(change.removes)
    # Nothing to decide (a repeat of what is recorded), but the caller's fields are written.
    poll = StatusReport(S.DELIVERED, source="poll:x")
    recorded = transition(message(S.DELIVERED), [poll], now=NOW).history
    quiet = transition(
        message(S.DELIVERED, history=recorded), [poll], now=NOW, also_set={"poll_count": 2}
    )
    assert quiet.writes and not quiet.changed
    assert quiet.fields == {"poll_count": 2, "updated_at": iso(NOW)}
    assert quiet.counters == ("history_rev",)


def test_a_transition_is_a_value() -> None:
    before = message()
    change = transition(before, [receipt(S.ENROUTE)], now=NOW)
    assert isinstance(change, Transition)
    assert before.status == S.SUBMITTED and len(before.history) == 1  # input left as it was
    with pytest.raises(ValueError):
        transition(before, [], now=NOW)


# --- alternate delivery (SPEC 4.1) ------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_only_eligible_failures_of_an_eligible_message_are_forwarded(status: Status) -> None:
    current = message(S.SUBMITTED, alternate_delivery=True)
    report = receipt(status)
    rerouted = alternate_delivery(current, report, "ip2sms")
    eligible = status in {S.FAILED, S.UNDELIVERABLE, S.REJECTED, S.EXPIRED, S.UNACCEPTED}
    if eligible:
        assert rerouted.status == S.FORWARDED
        assert rerouted.forwarded_to == sms_id_for("demo", "c-1", route_hop=1)
        assert rerouted.description == f"{status}: forwarded to ip2sms"
    else:
        assert rerouted == report


@pytest.mark.parametrize(
    ("current", "alternate"),
    [
        (message(S.SUBMITTED, alternate_delivery=False), "ip2sms"),
        (message(S.SUBMITTED, alternate_delivery=True), None),
        (message(S.SUBMITTED, alternate_delivery=True, forwarded_from="orig"), "ip2sms"),
        (message(S.DELIVERED, alternate_delivery=True), "ip2sms"),
    ],
    ids=["not-asked", "no-alternate", "already-an-alternate", "already-final"],
)
def test_no_forwarding_without_an_eligible_message(current: Message, alternate: str | None) -> None:
    report = receipt(S.UNDELIVERABLE)
    assert alternate_delivery(current, report, alternate) == report


def test_a_concatenated_message_is_not_forwarded_and_says_why() -> None:
    current = message(S.SUBMITTED, alternate_delivery=True, segments=3)
    rerouted = alternate_delivery(current, receipt(S.FAILED, description="no route"), "ip2sms")
    assert rerouted.status == S.FAILED
    assert rerouted.description == (
        "no route; alternate delivery is not available for concatenated messages (3 segments)"
    )


def test_a_forwarded_failure_is_the_change() -> None:
    current = message(S.SUBMITTED, alternate_delivery=True)
    change = transition(current, [receipt(S.REJECTED)], now=NOW, alternate="ip2sms")
    assert change.status == S.FORWARDED
    assert change.fields["forwarded_to"] == sms_id_for("demo", "c-1", route_hop=1)
    assert change.history[-1].status == "forwarded"
    assert change.removes == CLOSED_FIELDS


def test_a_message_moved_on_before_its_submission_was_recorded_still_times_out(
    lifecycle: Lifecycle,
) -> None:
    # A receipt applied after the link, then the dispatch write that records the answer failed:
    # no `submitted_at`. Its time-out counts from the receipt's status change, not from now.
    moved = message(S.ENROUTE, submitted_at="", status_changed_at="2026-11-22T11:00:00.000Z")
    later = datetime(2026, 11, 22, 11, 0, tzinfo=UTC) + lifecycle.status_timeout(moved) * 2
    assert lifecycle.timeout_at(moved, later) < later
    assert lifecycle.timeout_at(message(S.QUEUED, submitted_at=""), later) > later
