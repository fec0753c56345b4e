"""Canonical message statuses and the ordering rules every update obeys (pure, no I/O).

Rank: queued < submitted < enroute = unknown < every final. The first final wins, except that
our own time-out (`terminated`) yields to a later real carrier final.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    ENROUTE = "enroute"
    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DELETED = "deleted"
    UNACCEPTED = "unaccepted"
    FAILED = "failed"
    TERMINATED = "terminated"
    FORWARDED = "forwarded"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL

    @property
    def rank(self) -> int:
        return _RANK[self]


FINAL: frozenset[Status] = frozenset(
    {
        Status.DELIVERED,
        Status.UNDELIVERABLE,
        Status.EXPIRED,
        Status.REJECTED,
        Status.DELETED,
        Status.UNACCEPTED,
        Status.FAILED,
        Status.TERMINATED,
        Status.FORWARDED,
        Status.CANCELLED,
    }
)

#: Statuses that keep a message in the poller's index of open messages.
OPEN: frozenset[Status] = frozenset(
    {Status.QUEUED, Status.SUBMITTED, Status.ENROUTE, Status.UNKNOWN}
)

#: Statuses after which a message may be carried on by an alternate route (SPEC 4.1).
ALTERNATE_ELIGIBLE: frozenset[Status] = frozenset(
    {
        Status.FAILED,
        Status.UNDELIVERABLE,
        Status.REJECTED,
        Status.EXPIRED,
        Status.UNACCEPTED,
    }
)

_RANK: dict[Status, int] = {
    Status.QUEUED: 0,
    Status.SUBMITTED: 1,
    Status.ENROUTE: 2,
    Status.UNKNOWN: 2,
    **dict.fromkeys(FINAL, 3),
}

#: The status OFSC is told for each canonical status (None: OFSC hears the alternate's outcome).
OFSC_STATUS: dict[Status, str | None] = {
    Status.QUEUED: "sending",
    Status.SUBMITTED: "sending",
    Status.ENROUTE: "sending",
    Status.UNKNOWN: "sending",
    Status.DELIVERED: "delivered",
    Status.UNDELIVERABLE: "failed",
    Status.EXPIRED: "failed",
    Status.REJECTED: "failed",
    Status.DELETED: "failed",
    Status.UNACCEPTED: "failed",
    Status.FAILED: "failed",
    Status.TERMINATED: "sent",
    Status.FORWARDED: None,
    Status.CANCELLED: "failed",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """What a reported status does to a message in `current`.

    `new_status` is None when the report is only recorded in the history. `conflicting` marks a
    final that disagrees with the final already held (metric `ConflictingFinal`).
    """

    new_status: Status | None
    conflicting: bool = False

    @property
    def changes(self) -> bool:
        return self.new_status is not None


def decide(current: Status, reported: Status) -> Decision:
    """Apply the ordering rules of SPEC 2.1 to one report."""
    if current.is_final:
        if not reported.is_final or reported == current:
            return Decision(None)
        if current == Status.TERMINATED and reported != Status.TERMINATED:
            return Decision(reported)
        return Decision(None, conflicting=True)
    if reported.rank > current.rank:
        return Decision(reported)
    if current == Status.UNKNOWN and reported == Status.ENROUTE:
        return Decision(reported)
    return Decision(None)
