"""The history rules of one write (pure): identical reports once, a bounded history, the
ordering rules decided report by report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smsbridge.models import HistoryEntry, Message, StatusReport
from smsbridge.statuses import Status
from smsbridge.transitions import HISTORY_HEAD, HISTORY_TAIL, bounded, transition
from tests.support import a_message

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def message(
    status: Status = Status.SUBMITTED, history: list[HistoryEntry] | None = None
) -> Message:
    return a_message(
        status=status,
        gateway_id="g-1",
        history=history or [HistoryEntry(at="2026-11-22T11:00:00.000Z", status="queued")],
    )


def receipt(status: Status, **fields: object) -> StatusReport:
    return StatusReport(status, source="receipt:smartswitch", gateway_status=str(status), **fields)  # type: ignore[arg-type]


def test_identical_reports_add_one_entry() -> None:
    plan = transition(message(), [receipt(Status.ENROUTE)] * 300, now=NOW)
    assert plan.status == Status.ENROUTE
    assert [e.status for e in plan.history] == ["queued", "enroute"]
    assert plan.fields["status"] == "enroute"


def test_a_repeat_of_what_is_recorded_writes_nothing() -> None:
    first = transition(message(), [receipt(Status.ENROUTE)], now=NOW)
    current = message(Status.ENROUTE, first.history)
    later = NOW + timedelta(minutes=5)
    again = transition(current, [receipt(Status.ENROUTE)] * 10, now=later)
    assert not again.writes


def test_a_repeat_that_moves_the_status_is_recorded() -> None:
    # unknown may move to enroute: an enroute seen before still counts when it moves the status.
    seen = transition(message(), [receipt(Status.ENROUTE)], now=NOW).history
    current = message(Status.UNKNOWN, seen)
    plan = transition(current, [receipt(Status.ENROUTE)], now=NOW)
    assert plan.status == Status.ENROUTE
    assert [e.status for e in plan.history] == ["queued", "enroute", "enroute"]


def test_the_first_final_wins_within_one_write_and_conflicts_are_counted() -> None:
    reports = [receipt(Status.DELIVERED), receipt(Status.EXPIRED), receipt(Status.REJECTED)]
    plan = transition(message(), reports, now=NOW)
    assert plan.status == Status.DELIVERED
    assert plan.conflicts == 2
    assert [e.status for e in plan.history][1:] == ["delivered", "expired", "rejected"]


def test_different_carrier_times_are_different_events() -> None:
    reports = [receipt(Status.ENROUTE, at=NOW - timedelta(seconds=n)) for n in range(3)]
    plan = transition(message(), reports, now=NOW)
    assert len(plan.history) == 4
    assert all(e.received_at for e in plan.history[1:])


def test_the_history_keeps_the_first_and_the_latest_entries() -> None:
    entries = [HistoryEntry(at=str(n), status="enroute") for n in range(100)]
    kept, dropped = bounded(entries, 3)
    assert len(kept) == HISTORY_HEAD + HISTORY_TAIL
    assert kept[:HISTORY_HEAD] == entries[:HISTORY_HEAD]
    assert kept[HISTORY_HEAD:] == entries[-HISTORY_TAIL:]
    assert dropped == 3 + 100 - HISTORY_HEAD - HISTORY_TAIL
    assert bounded(entries[:5], 0) == (entries[:5], 0)


def test_long_carrier_texts_are_cut() -> None:
    plan = transition(message(), [receipt(Status.ENROUTE, description="x" * 5000)], now=NOW)
    assert len(plan.history[-1].description) == 300
    assert len(plan.fields["description"]) == 300


def test_the_operator_is_kept_on_the_message() -> None:
    plan = transition(message(), [receipt(Status.DELIVERED, operator="TELCEL")], now=NOW)
    assert plan.fields["operator"] == "TELCEL"
    assert plan.history[-1].operator == "TELCEL"
