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


@dataclass(frozen=True, slots=True)
class Heard:
    """What the originator hears of a message in one status (SPEC 2, 3.1, 3.2, 4.1)."""

    #: OFSC's word: sending | delivered | failed | sent. A forwarded hop reads as still sending:
    #: its alternate's outcome is the one that counts.
    ofsc_status: str
    #: The originator's final outcome (a forwarded hop is not one: its alternate's is).
    outcome: bool
    #: Answers carry the description: a final other than delivered says what went wrong.
    shows_description: bool
    #: A change to it is told to OFSC (`set_message_status`): one final per `message_id`, and
    #: not a drop OFSC asked for itself (it heard `OK` then).
    notifies_ofsc: bool
    #: A change to it is told to JSON `callback_events: final` listeners (`all` hear every one).
    notifies_final_listeners: bool
    #: A resend cannot help: answers carry `stop_further_attempts`.
    stop_further_attempts: bool


_SENDING = Heard("sending", False, False, False, False, False)
_FAILED = Heard("failed", True, True, True, True, True)

#: The one decision per status of what the originator hears; `heard` reads it, and a unit test
#: fails naming any status left out.
HEARD: dict[Status, Heard] = {
    Status.QUEUED: _SENDING,
    Status.SUBMITTED: _SENDING,
    Status.ENROUTE: _SENDING,
    Status.UNKNOWN: _SENDING,
    Status.DELIVERED: Heard("delivered", True, False, True, True, False),
    Status.UNDELIVERABLE: _FAILED,
    Status.EXPIRED: _FAILED,
    Status.REJECTED: _FAILED,
    Status.DELETED: _FAILED,
    Status.UNACCEPTED: _FAILED,
    Status.FAILED: _FAILED,
    Status.TERMINATED: Heard("sent", True, True, True, True, True),
    Status.FORWARDED: _SENDING,
    Status.CANCELLED: Heard("failed", True, True, False, True, True),
}


def heard(status: Status) -> Heard:
    """What the originator hears of a message in `status` (pure)."""
    return HEARD[status]


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
