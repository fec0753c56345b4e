"""What a run of status reports does to one message, decided without I/O (SPEC 2.1, 4.1).

`transition` takes the message as read, the reports in order and the time, and returns the change
to write: the new status and what goes with it (description, carrier status and error,
forwarding, `delivered_at`), the history with the reports recorded and bounded, the operator,
the next check of a message that stays open, the attributes a final message drops, and the
counters the write increments. The tracker reads, decides here and writes conditionally on the
status and history revision the decision was made from; when another writer got there first it
reads and decides again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from smsbridge.carrier_time import recorded_at
from smsbridge.models import HistoryEntry, Message, StatusReport, iso, parse_iso, sms_id_for
from smsbridge.statuses import ALTERNATE_ELIGIBLE, Status, decide

if TYPE_CHECKING:
    from smsbridge.lifecycle import Lifecycle

#: The history keeps its first entries (how the message started) and its latest ones; what lies
#: between is dropped and counted in `history_dropped`, so a carrier that repeats itself cannot
#: push the item towards DynamoDB's 400 KB limit. At most ~60 entries of at most ~1.5 KB.
HISTORY_HEAD = 10
HISTORY_TAIL = 50
#: Longest text kept in one history entry field (carrier descriptions can be long).
HISTORY_FIELD_CHARS = 300
#: What a final message no longer carries: its next check (the open index), the pending text and
#: a submission lease.
CLOSED_FIELDS = ("next_check_at", "text", "claimed_until")


@dataclass(frozen=True, slots=True)
class Transition:
    """The change a run of reports makes to `before`; nothing to write when `writes` is False."""

    #: The message the decision was made on (it still holds the pending text).
    before: Message
    status: Status
    #: The last report as applied (after alternate delivery).
    report: StatusReport
    #: Message attributes to set, by field name, with the model's values.
    fields: dict[str, Any]
    #: Attributes to remove.
    removes: tuple[str, ...] = ()
    #: How many reports brought a final that disagrees with the one held (`ConflictingFinal`).
    conflicts: int = 0

    @property
    def changed(self) -> bool:
        return self.status != self.before.status

    @property
    def writes(self) -> bool:
        return bool(self.fields or self.removes)

    @property
    def stays_open(self) -> bool:
        return not self.status.is_final

    @property
    def next_check_at(self) -> int | None:
        """When the poller next looks at the message, if this change moves it."""
        due: int | None = self.fields.get("next_check_at")
        return due

    @property
    def history(self) -> list[HistoryEntry]:
        entries: list[HistoryEntry] = self.fields.get("history", self.before.history)
        return entries

    @property
    def history_dropped(self) -> int:
        dropped: int = self.fields.get("history_dropped", self.before.history_dropped)
        return dropped

    @property
    def counters(self) -> tuple[str, ...]:
        """Counters the write adds one to: the history revision (the optimistic lock) always,
        the status number (notify orders by it) when the status changes."""
        return ("history_rev", "status_seq") if self.changed else ("history_rev",)


def _cut(text: str) -> str:
    return text[:HISTORY_FIELD_CHARS]


def history_entry(report: StatusReport, now: datetime, own_gateway_id: str = "") -> HistoryEntry:
    """The history entry of one report (long carrier texts cut to HISTORY_FIELD_CHARS)."""
    return HistoryEntry(
        at=iso(report.at or now),
        status=str(report.status),
        gateway_status=_cut(report.gateway_status),
        source=report.source,
        gateway_error=_cut(report.gateway_error),
        description=_cut(report.description),
        received_at=iso(now) if report.at else "",
        gateway_id="" if report.gateway_id == own_gateway_id else _cut(report.gateway_id),
        gateway_forwarded_to=_cut(report.gateway_forwarded_to),
        gateway_forwarded_from=_cut(report.gateway_forwarded_from),
        operator=_cut(report.operator),
        sent_at=_cut(report.sent_at),
        carrier_time_text=_cut(report.carrier_time_text),
    )


def bounded(history: list[HistoryEntry], dropped: int) -> tuple[list[HistoryEntry], int]:
    """Keep the first HISTORY_HEAD and the latest HISTORY_TAIL entries; count the others."""
    excess = len(history) - HISTORY_HEAD - HISTORY_TAIL
    if excess <= 0:
        return history, dropped
    return history[:HISTORY_HEAD] + history[HISTORY_HEAD + excess :], dropped + excess


def alternate_delivery(
    current: Message, report: StatusReport, alternate: str | None
) -> StatusReport:
    """Turn an eligible failure into `forwarded` to the `alternate` carrier (SPEC 4.1), or say
    why it cannot be forwarded; other reports unchanged."""
    if (
        alternate is None
        or report.status not in ALTERNATE_ELIGIBLE
        or current.is_final
        or not current.alternate_delivery
        or current.forwarded_from
    ):
        return report
    if current.segments > 1:
        reason = (
            f"alternate delivery is not available for concatenated messages "
            f"({current.segments} segments)"
        )
        description = f"{report.description}; {reason}" if report.description else reason
        return replace(report, description=description)
    alternate_id = sms_id_for(current.client, current.message_id, route_hop=1)
    description = f"{report.status}: forwarded to {alternate}"
    if report.description:
        description = f"{report.description}; forwarded to {alternate}"
    return replace(
        report, status=Status.FORWARDED, forwarded_to=alternate_id, description=description
    )


def _follows(
    status: Status, report: StatusReport, changed_at: str | None, current: Message
) -> bool:
    """Whether a report that leaves the status as it is still moves the carrier's side of an open
    message (SPEC 2.2): `gateway_status` and `status_changed_at` follow the carrier's latest
    answer (IP2SMS `Pending` after `Accepted`), but never backwards (a lower rank, or a time
    before the last change) and never on a final."""
    if status.is_final or not report.gateway_status or report.status.rank < status.rank:
        return False
    last = changed_at or current.status_changed_at
    return not (report.at and last and report.at < parse_iso(last))


def transition(
    current: Message,
    reports: Sequence[StatusReport],
    *,
    now: datetime,
    alternate: str | None = None,
    lifecycle: Lifecycle | None = None,
    also_set: Mapping[str, Any] | None = None,
    also_remove: tuple[str, ...] = (),
) -> Transition:
    """Decide `reports` in order from `current` (each on the status the ones before it left).

    A report identical to one already in the history (`HistoryEntry.same_event`) that moves
    nothing adds no entry; the history keeps its first `HISTORY_HEAD` and latest `HISTORY_TAIL`
    entries and counts the rest. `alternate` is the alternate carrier of the message's carrier,
    if any; `lifecycle` gives the next check of a message whose status moves but stays open.
    `also_set`/`also_remove` are attributes the caller writes with the change (a submission's
    carrier id, poll bookkeeping); with them something is always written.
    """
    if not reports:
        raise ValueError("a transition needs at least one report")
    status = current.status
    history = list(current.history)
    history_changed = False
    conflicts = 0
    fields: dict[str, Any] = {}
    state = current
    report = reports[-1]
    for original in reports:
        report = alternate_delivery(state, original, alternate)
        decision = decide(status, report.status)
        if decision.conflicting:
            conflicts += 1
        entry = history_entry(report, now, current.gateway_id)
        repeat = any(entry.same_event(seen) for seen in history)
        if not repeat or decision.changes:
            history.append(entry)
            history_changed = True
        if report.operator and report.operator != state.operator:
            fields["operator"] = _cut(report.operator)
            state = replace(state, operator=report.operator)
        if decision.new_status is None:
            if not repeat and _follows(status, report, fields.get("status_changed_at"), current):
                fields["gateway_status"] = _cut(report.gateway_status)
                fields["status_changed_at"] = iso(recorded_at(report.at, state, now))
            continue
        status = decision.new_status
        # The carrier's time when plausible, never before the status before it (carrier_time).
        changed_at = iso(recorded_at(report.at, state, now))
        fields["status"] = status
        fields["status_changed_at"] = changed_at
        fields["description"] = _cut(report.description or str(status))
        if report.gateway_status:
            fields["gateway_status"] = _cut(report.gateway_status)
        if report.gateway_error:
            fields["gateway_error"] = _cut(report.gateway_error)
        if report.forwarded_to:
            fields["forwarded_to"] = report.forwarded_to
        if report.forwarded_from and not current.forwarded_from:
            fields["forwarded_from"] = report.forwarded_from
        if status == Status.DELIVERED:
            fields["delivered_at"] = changed_at
        state = replace(state, status=status, status_changed_at=changed_at)
    if history_changed:
        fields["history"], fields["history_dropped"] = bounded(history, current.history_dropped)
    removes: tuple[str, ...] = ()
    if status != current.status:
        if status.is_final:
            removes = CLOSED_FIELDS
        elif lifecycle is not None:
            due = lifecycle.next_check(current, status, now)
            if due is not None:
                fields["next_check_at"] = due
    if not fields and not also_set and not also_remove:
        return Transition(current, status, report, {}, (), conflicts)
    fields = {**(also_set or {}), **fields, "updated_at": iso(now)}
    removes = tuple(dict.fromkeys(also_remove + removes))
    return Transition(current, status, report, fields, removes, conflicts)
