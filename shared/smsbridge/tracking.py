"""Applying status reports: the ordering rules, alternate delivery and the status metrics.

Every source of a status (dispatch, receipts, polls, the poller's time-outs) goes through
`StatusTracker.report`, so the rules and the metrics live in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from smsbridge.config import AppConfig, Settings
from smsbridge.lifecycle import Lifecycle
from smsbridge.models import Message, StatusReport, iso, parse_iso, utcnow
from smsbridge.queueing import DispatchQueue
from smsbridge.repository import MessageRepository
from smsbridge.statuses import Status
from smsbridge.telemetry import MetricSink
from smsbridge.transitions import transition

logger = logging.getLogger("smsbridge.tracking")

#: Conditional writes tried for one run of reports before giving up (each lost race re-reads).
MAX_APPLY_TRIES = 16


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    #: The message after the write.
    message: Message
    #: The message the decision was made on (it still holds the pending text).
    before: Message
    #: The last report as applied (after alternate delivery).
    report: StatusReport
    changed: bool
    #: How many reports brought a final that disagrees with the one held (`ConflictingFinal`).
    conflicts: int = 0

    @property
    def conflicting(self) -> bool:
        return self.conflicts > 0

    @property
    def previous(self) -> Status:
        return self.before.status


class StatusTracker:
    def __init__(
        self,
        repository: MessageRepository,
        settings: Settings,
        config: AppConfig,
        queue: DispatchQueue,
        metrics: MetricSink,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.config = config
        self.queue = queue
        self.metrics = metrics
        self.clock = clock
        self.lifecycle = Lifecycle(settings, config)

    def report(
        self,
        sms_id: str,
        report: StatusReport,
        *,
        known: Message | None = None,
        set_fields: dict[str, Any] | None = None,
        remove_fields: tuple[str, ...] = (),
    ) -> ApplyOutcome | None:
        return self.report_many(
            sms_id, [report], known=known, set_fields=set_fields, remove_fields=remove_fields
        )

    def report_many(
        self,
        sms_id: str,
        reports: Sequence[StatusReport],
        *,
        known: Message | None = None,
        set_fields: dict[str, Any] | None = None,
        remove_fields: tuple[str, ...] = (),
    ) -> ApplyOutcome | None:
        """Apply reports for one message in order, with one conditional write (SPEC 2.1).

        Read (or take `known`), decide (`transitions.transition`), write on condition that the
        status and history revision are still those decided from; when another writer got there
        first, read and decide again. When nothing changes, nothing is written. None when the
        message does not exist.
        """
        if not reports:
            return None
        now = self.clock()
        outcome = self._apply(sms_id, reports, now, known, set_fields or {}, remove_fields)
        if outcome is None:
            return None
        self._count(outcome, now)
        return outcome

    def link(
        self, carrier: str, gateway_id: str, sms_id: str, *, expires_at: int
    ) -> tuple[str | None, list[StatusReport]]:
        """Link a carrier id to a message; return who holds the id and the receipts that waited.

        Waiting receipts may name more carrier ids of the same message (a carrier's own forward,
        or an alternate's receipt kept under its original's id); those are linked too, so
        orphans are applied whichever link comes first. A link to another message is refused,
        counted in `LinkConflict` and logged.
        """
        holder: str | None = None
        waiting: list[StatusReport] = []
        pending = [gateway_id]
        seen: set[str] = set()
        while pending:
            current_id = pending.pop(0)
            if current_id in seen:
                continue
            seen.add(current_id)
            outcome = self.repository.link_gateway_id(
                carrier, current_id, sms_id, expires_at=expires_at
            )
            if current_id == gateway_id:
                holder = outcome.holder
            if not outcome.linked:
                self.metrics.add("LinkConflict", carrier=carrier)
                logger.warning(
                    "carrier id already belongs to another message; link refused",
                    extra={
                        "carrier": carrier,
                        "gateway_id": current_id[:64],
                        "id": sms_id,
                        "holder": outcome.holder,
                    },
                )
                continue
            for orphan in outcome.orphans:
                waiting.append(orphan)
                pending += [
                    other
                    for other in (orphan.gateway_id, orphan.gateway_forwarded_to)
                    if other and other not in seen
                ]
        return holder, waiting

    def _apply(
        self,
        sms_id: str,
        reports: Sequence[StatusReport],
        now: datetime,
        current: Message | None,
        set_fields: dict[str, Any],
        remove_fields: tuple[str, ...],
    ) -> ApplyOutcome | None:
        for _ in range(MAX_APPLY_TRIES):
            if current is None:
                current = self.repository.get(sms_id)
                if current is None:
                    return None
            change = transition(
                current,
                reports,
                now=now,
                alternate=self._alternate_carrier(current),
                lifecycle=self.lifecycle,
                also_set=set_fields,
                also_remove=remove_fields,
            )
            if not change.writes:
                return ApplyOutcome(current, current, change.report, False, change.conflicts)
            alternate = self._alternate_of(current, change.fields) if change.changed else None
            if alternate is None:
                written = self.repository.update_if_unchanged(
                    sms_id,
                    expected=current,
                    set_fields=change.fields,
                    remove_fields=change.removes,
                    counters=change.counters,
                )
            else:
                # SPEC 4.1: `forwarded` and its alternate in one transaction, never one alone.
                written, created = self.repository.update_and_create(
                    sms_id,
                    expected=current,
                    set_fields=change.fields,
                    remove_fields=change.removes,
                    counters=change.counters,
                    create=alternate,
                    create_next_check_at=self.lifecycle.next_check(alternate, Status.QUEUED, now),
                )
                if written is not None:
                    self._queue_alternate(current, alternate, created=created)
            if written is None:
                current = None
                continue
            return ApplyOutcome(written, current, change.report, change.changed, change.conflicts)
        raise RuntimeError(f"status of {sms_id} kept changing; report not applied")

    # --- alternate delivery (SPEC 4.1) ----------------------------------------------------

    def _alternate_carrier(self, message: Message) -> str | None:
        carrier = self.config.carriers.get(message.carrier)
        return carrier.alternate if carrier else None

    def _alternate_of(self, original: Message, fields: dict[str, Any]) -> Message | None:
        """The hop-1 message a change to `forwarded` creates (None for any other change)."""
        if fields.get("status") != Status.FORWARDED:
            return None
        alternate_name = self._alternate_carrier(original)
        if alternate_name is None or not original.text or not fields.get("forwarded_to"):
            return None
        carrier = self.config.carriers[alternate_name]
        now = self.clock()
        return replace(
            original,
            id=fields["forwarded_to"],
            carrier=alternate_name,
            sender=carrier.sender or original.sender,
            status=Status.QUEUED,
            description="alternate of a message that failed on its route",
            gateway_id="",
            gateway_status="",
            gateway_error="",
            submitted_at="",
            delivered_at="",
            attempts=0,
            history=[],
            forwarded_to="",
            forwarded_from=original.id,
            submitter_message_id=original.message_id,
            # The forwarded write adds one to the original's number; the alternate continues it.
            status_seq=original.status_seq + 1,
            alternate_delivery=False,
            inserted_at=iso(now),
            updated_at=iso(now),
            status_changed_at=iso(now),
        )

    def _queue_alternate(self, original: Message, alternate: Message, *, created: bool) -> None:
        if not created:
            return  # an earlier write made it; the poller re-queues it while it waits
        self.metrics.add("Forwarded", carrier=original.carrier, type=original.type)
        if self.queue.enqueue([alternate.id]):
            logger.warning("alternate %s not queued; the poller will re-queue it", alternate.id)

    # --- metrics --------------------------------------------------------------------------

    def _count(self, outcome: ApplyOutcome, now: datetime) -> None:
        message = outcome.message
        if outcome.conflicts:
            self.metrics.add("ConflictingFinal", outcome.conflicts, carrier=message.carrier)
        if not outcome.changed or not message.is_final:
            return
        self.metrics.add(
            "FinalStatus", carrier=message.carrier, status=str(message.status), type=message.type
        )
        if message.status != Status.CANCELLED:
            # 0/1 per final outcome: its Average is the delivery rate (alarms cannot divide
            # SEARCH results). Per carrier a forwarded hop counts against that carrier; overall
            # the alternate carries the outcome.
            outcome_value = 1.0 if message.status == Status.DELIVERED else 0.0
            self.metrics.add("DeliveryOutcome", outcome_value, carrier=message.carrier)
            if message.status != Status.FORWARDED:
                self.metrics.add("DeliveryOutcome", outcome_value)
        if message.status == Status.TERMINATED:
            self.metrics.add("Terminated", carrier=message.carrier, type=message.type)
        if message.status == Status.DELIVERED and message.inserted_at:
            delivered = parse_iso(message.delivered_at) if message.delivered_at else now
            latency = max(timedelta(0), delivered - parse_iso(message.inserted_at))
            self.metrics.add(
                "DeliveryLatency",
                latency.total_seconds() * 1000,
                "Milliseconds",
                carrier=message.carrier,
                type=message.type,
            )
