"""The canonical statuses and the ordering rules of SPEC 2.1."""

from __future__ import annotations

import itertools

import pytest

from smsbridge.statuses import (
    ALTERNATE_ELIGIBLE,
    FINAL,
    OFSC_STATUS,
    OPEN,
    Decision,
    Status,
    decide,
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


@pytest.mark.parametrize(
    ("status", "ofsc"),
    [
        (S.QUEUED, "sending"),
        (S.SUBMITTED, "sending"),
        (S.ENROUTE, "sending"),
        (S.UNKNOWN, "sending"),
        (S.DELIVERED, "delivered"),
        (S.UNDELIVERABLE, "failed"),
        (S.EXPIRED, "failed"),
        (S.REJECTED, "failed"),
        (S.DELETED, "failed"),
        (S.UNACCEPTED, "failed"),
        (S.FAILED, "failed"),
        (S.TERMINATED, "sent"),
        (S.FORWARDED, None),
        (S.CANCELLED, "failed"),
    ],
)
def test_ofsc_status_mapping(status: Status, ofsc: str | None) -> None:
    assert OFSC_STATUS[status] == ofsc


def test_every_status_has_an_ofsc_mapping() -> None:
    assert set(OFSC_STATUS) == set(Status)
