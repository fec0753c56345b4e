"""The canonical statuses and the ordering rules of SPEC 2.1."""

from __future__ import annotations

import itertools

import pytest

from smsbridge.statuses import (
    ALTERNATE_ELIGIBLE,
    FINAL,
    HEARD,
    OPEN,
    Decision,
    Status,
    decide,
    heard,
)

S = Status
NON_FINAL = [S.QUEUED, S.SUBMITTED, S.ENROUTE, S.UNKNOWN]
REAL_FINALS = sorted(FINAL - {S.TERMINATED}, key=str)


def test_the_status_set_is_the_spec_set() -> None:
    assert {status.value for status in Status} == {
        "queued",
        "submitted",
        "enroute",
        "unknown",
        "delivered",
        "undeliverable",
        "expired",
        "rejected",
        "deleted",
        "unaccepted",
        "failed",
        "terminated",
        "forwarded",
        "cancelled",
    }


def test_final_and_open_partition_the_statuses() -> None:
    assert set(NON_FINAL) == set(OPEN)
    assert set(Status) == FINAL | OPEN
    assert not FINAL & OPEN
    for status in Status:
        assert status.is_final == (status in FINAL)


def test_rank_order() -> None:
    assert S.QUEUED.rank < S.SUBMITTED.rank < S.ENROUTE.rank
    assert S.ENROUTE.rank == S.UNKNOWN.rank
    for final in FINAL:
        assert final.rank > S.ENROUTE.rank
        assert final.rank == S.DELIVERED.rank


@pytest.mark.parametrize(
    ("current", "reported"),
    [
        (S.QUEUED, S.SUBMITTED),
        (S.QUEUED, S.ENROUTE),
        (S.QUEUED, S.UNKNOWN),
        (S.SUBMITTED, S.ENROUTE),
        (S.SUBMITTED, S.UNKNOWN),
        (S.UNKNOWN, S.ENROUTE),
    ],
)
def test_a_higher_rank_changes_the_status(current: Status, reported: Status) -> None:
    assert decide(current, reported) == Decision(reported)
    assert decide(current, reported).changes


@pytest.mark.parametrize(
    ("current", "reported"),
    [
        (S.SUBMITTED, S.QUEUED),
        (S.SUBMITTED, S.SUBMITTED),
        (S.ENROUTE, S.SUBMITTED),
        (S.ENROUTE, S.QUEUED),
        (S.ENROUTE, S.ENROUTE),
        (S.ENROUTE, S.UNKNOWN),  # equal rank: only unknown -> enroute moves
        (S.UNKNOWN, S.UNKNOWN),
        (S.UNKNOWN, S.SUBMITTED),
        (S.QUEUED, S.QUEUED),
    ],
)
def test_a_lower_or_equal_rank_is_only_recorded(current: Status, reported: Status) -> None:
    decision = decide(current, reported)
    assert decision == Decision(None)
    assert not decision.changes
    assert not decision.conflicting


@pytest.mark.parametrize(
    ("current", "final"), list(itertools.product(NON_FINAL, sorted(FINAL, key=str)))
)
def test_any_final_ends_an_open_message(current: Status, final: Status) -> None:
    assert decide(current, final) == Decision(final)


@pytest.mark.parametrize(
    ("final", "reported"), list(itertools.product(sorted(FINAL, key=str), NON_FINAL))
)
def test_a_final_never_goes_back_to_an_open_status(final: Status, reported: Status) -> None:
    decision = decide(final, reported)
    assert not decision.changes
    assert not decision.conflicting


@pytest.mark.parametrize("final", sorted(FINAL, key=str))
def test_the_same_final_again_is_a_harmless_repeat(final: Status) -> None:
    assert decide(final, final) == Decision(None, conflicting=False)


@pytest.mark.parametrize(
    ("first", "later"),
    [(a, b) for a, b in itertools.product(REAL_FINALS, sorted(FINAL, key=str)) if a != b],
)
def test_the_first_final_wins_and_a_different_one_is_flagged(first: Status, later: Status) -> None:
    decision = decide(first, later)
    assert decision.new_status is None
    assert decision.conflicting


@pytest.mark.parametrize("real", REAL_FINALS)
def test_terminated_yields_to_a_real_final(real: Status) -> None:
    decision = decide(S.TERMINATED, real)
    assert decision.new_status == real
    assert not decision.conflicting


def test_terminated_does_not_yield_to_another_terminated() -> None:
    decision = decide(S.TERMINATED, S.TERMINATED)
    assert not decision.changes
    assert not decision.conflicting


def test_receipts_in_any_order_end_in_the_first_final() -> None:
    """Duplicated, reordered receipts (delivered, enroute, delivered) settle on delivered."""
    status = S.SUBMITTED
    conflicts = 0
    for reported in (S.DELIVERED, S.ENROUTE, S.DELIVERED, S.UNDELIVERABLE, S.UNKNOWN):
        decision = decide(status, reported)
        conflicts += decision.conflicting
        if decision.new_status is not None:
            status = decision.new_status
    assert status == S.DELIVERED
    assert conflicts == 1


def test_alternate_eligible_statuses() -> None:
    assert {S.FAILED, S.UNDELIVERABLE, S.REJECTED, S.EXPIRED, S.UNACCEPTED} == ALTERNATE_ELIGIBLE


#: What the originator hears, one row per status (SPEC 2, 3.1, 3.2, 4.1): OFSC's word, final
#: outcome, description shown, OFSC told, JSON `final` listeners told, stop_further_attempts.
HEARD_TABLE: dict[Status, tuple[str, bool, bool, bool, bool, bool]] = {
    S.QUEUED: ("sending", False, False, False, False, False),
    S.SUBMITTED: ("sending", False, False, False, False, False),
    S.ENROUTE: ("sending", False, False, False, False, False),
    S.UNKNOWN: ("sending", False, False, False, False, False),
    S.DELIVERED: ("delivered", True, False, True, True, False),
    S.UNDELIVERABLE: ("failed", True, True, True, True, True),
    S.EXPIRED: ("failed", True, True, True, True, True),
    S.REJECTED: ("failed", True, True, True, True, True),
    S.DELETED: ("failed", True, True, True, True, True),
    S.UNACCEPTED: ("failed", True, True, True, True, True),
    S.FAILED: ("failed", True, True, True, True, True),
    S.TERMINATED: ("sent", True, True, True, True, True),
    # The alternate's outcome is heard, under the original's message_id.
    S.FORWARDED: ("sending", False, False, False, False, False),
    # OFSC dropped it itself and heard OK then.
    S.CANCELLED: ("failed", True, True, False, True, True),
}


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_every_status_has_a_decision_of_what_the_originator_hears(status: Status) -> None:
    assert status in HEARD, f"status {status!r} has no decision in statuses.HEARD"
    assert status in HEARD_TABLE, f"status {status!r} has no row in HEARD_TABLE"
    rule = heard(status)
    assert (
        rule.ofsc_status,
        rule.outcome,
        rule.shows_description,
        rule.notifies_ofsc,
        rule.notifies_final_listeners,
        rule.stop_further_attempts,
    ) == HEARD_TABLE[status], f"what the originator hears of {status!r}"


def test_an_outcome_is_a_final_and_only_a_final_shows_a_description() -> None:
    for status in Status:
        rule = heard(status)
        assert not rule.outcome or status.is_final, status
        assert not rule.shows_description or rule.outcome, status
        assert rule.ofsc_status in ("sending", "delivered", "failed", "sent"), status
