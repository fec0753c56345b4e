"""Delivery receipts posted to `/dlr/{carrier}`: authenticate, read, apply, answer (SPEC 3.3).

The carrier's `format` module reads the request and shapes every answer. A receipt is matched by
(carrier, carrier id); one for an id not linked yet is kept as an orphan and applied when that id
is linked, whichever of the two comes first. A carrier that forwards a message by itself (Vibes)
sends the alternate's receipts under a new id with `fwdFrom` naming the original's: they belong
to the original's message, which stays one record. The receipts of one request are grouped per
message and applied with one conditional write per message.

At most ORPHAN_LIMIT carrier ids of one carrier wait with orphans. A receipt that would start
one more is refused, and the request is answered with the format's own error (429) once the
rest of it is applied: the carrier sends it again later, and by then its id is usually linked.
Refusing rather than evicting the oldest keeps the receipts that wait already (an attacker with
a carrier's credentials cannot push real ones out) and needs no index to find the oldest; the
metric `OrphanRefused` counts refusals and an alarm watches it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from smsbridge.carriers import get_format
from smsbridge.carriers.base import (
    PayloadTooLarge,
    Receipt,
    ReceiptAuthError,
    ReceiptError,
    ReceiptUnavailable,
)
from smsbridge.config import AppConfig, CarrierConfig
from smsbridge.models import Message, StatusReport
from smsbridge.repository import OrphanLimitReached, OrphanQuota
from smsbridge.tracking import StatusTracker
from smsbridge.web import HttpAnswer, HttpRequest

logger = logging.getLogger("smsbridge.receipts")

#: What becomes of each field a receipt parser returns: nothing a carrier tells us is dropped
#: without a reason (tests/unit/test_receipt_fields.py keeps this list complete).
RECEIPT_FIELDS: dict[str, str] = {
    "gateway_id": "matches the message; in the history entry when it is not the message's own",
    "gateway_status": "history entry and the message's gateway_status",
    "status": "the canonical status, applied by the ordering rules",
    "at": "history entry `at` (with `received_at`) and status_changed_at / delivered_at",
    "gateway_error": "history entry and the message's gateway_error",
    "description": "history entry and the message's description",
    "forwarded_to": "linked to the same message; history entry `gateway_forwarded_to`",
    "forwarded_from": "matches the message of an unknown id; history `gateway_forwarded_from`",
    "request_id": "ignored: the carrier's own request number, only echoed in the answer",
    "extra": "per key, see RECEIPT_EXTRA_STORED and RECEIPT_EXTRA_IGNORED",
    "missing_fields": "counted in the metric ReceiptFieldMissing",
}
#: `Receipt.extra` keys kept, and the history entry field (StatusReport field) they go to.
RECEIPT_EXTRA_STORED: dict[str, str] = {
    "carrier": "operator",
    "send_date": "sent_at",
    "receipt_date": "carrier_time_text",
}
#: `Receipt.extra` keys deliberately not kept, and why.
RECEIPT_EXTRA_IGNORED: dict[str, str] = {
    "submitter_message_id": (
        "Vibes echoes our own reference key (the message id) back; matching trusts only the "
        "carrier's ids, so that a receipt cannot claim a message by naming it"
    ),
    "ext_id": "IP2SMS echoes our own reference key (the message id) back, as above",
}


class TooManyOrphans(ReceiptError):
    """Receipts for carrier ids not linked yet were refused: the carrier has ORPHAN_LIMIT ids
    waiting. Answered in the format's own shape; the carrier is expected to send them again."""

    status_code = 429
    code = "too_many_unmatched_receipts"
    title = "Too many unmatched receipts"


def unknown_carrier_answer() -> HttpAnswer:
    return HttpAnswer(404, '{"message":"Not Found"}', "application/json")


#: What a carrier reads when smsbridge failed inside: it posts the receipt again later.
UNAVAILABLE = "temporarily unavailable"


def unavailable_answer(config: AppConfig | None, carrier_name: str) -> HttpAnswer:
    """503 for a receipt smsbridge failed to take, in the carrier's own format where the
    configuration can say which (Smartswitch: JSON:API `errors`); plain text otherwise."""
    carrier = config.carriers.get(carrier_name) if config is not None else None
    if carrier is None:
        return HttpAnswer(503, UNAVAILABLE)
    return get_format(carrier.format).answer_error(ReceiptUnavailable(UNAVAILABLE))


class ReceiptDesk:
    def __init__(self, tracker: StatusTracker) -> None:
        self._tracker = tracker
        self._repository = tracker.repository
        self._settings = tracker.settings
        self._config = tracker.config

    def handle(self, carrier_name: str, request: HttpRequest) -> HttpAnswer:
        carrier = self._config.carriers.get(carrier_name)
        if carrier is None:
            return unknown_carrier_answer()
        fmt = get_format(carrier.format)
        try:
            if len(request.body) > self._settings.max_body_bytes:
                raise PayloadTooLarge(f"body over {self._settings.max_body_bytes} bytes")
            receipts = fmt.read_receipts(request, carrier)
        except ReceiptError as exc:
            self._tracker.metrics.add("ReceiptsRejected", carrier=carrier.name, reason=exc.code)
            extra: dict[str, object] = {
                "carrier": carrier.name,
                "status": exc.status_code,
                "reason": exc.code,
            }
            if isinstance(exc, ReceiptAuthError):
                # Tells a carrier's wrong credentials from a configuration read without them.
                extra["dlr_credentials_configured"] = bool(carrier.dlr_password)
            logger.warning("receipt refused", extra=extra)
            return fmt.answer_error(exc)
        refused = self.apply(carrier, receipts)
        if refused:
            logger.warning(
                "receipts for unknown carrier ids refused: orphan limit reached",
                extra={"carrier": carrier.name, "refused": refused},
            )
            return fmt.answer_error(
                TooManyOrphans(
                    f"{refused} receipts name message ids not known yet and too many are "
                    "waiting; send them again later"
                )
            )
        return fmt.answer_receipts(receipts)

    def orphan_quota(self, now: datetime) -> OrphanQuota:
        """Today's place in the per-carrier limit of waiting carrier ids."""
        day = int(now.timestamp()) // 86_400
        window = self._settings.orphan_ttl_days
        return OrphanQuota(
            limit=self._settings.orphan_limit,
            day=day,
            window_days=window,
            expires_at=(day + window + 2) * 86_400,
        )

    def apply(self, carrier: CarrierConfig, receipts: list[Receipt]) -> int:
        """Apply what can be applied; how many receipts were refused by the orphan limit."""
        metrics = self._tracker.metrics
        ids = [r.gateway_id for r in receipts] + [r.forwarded_from for r in receipts]
        links = self._repository.sms_ids_for_gateway_ids(carrier.name, filter(None, ids))
        # One batch read of the messages; each write starts from it (a stale copy only costs a
        # re-read, the writes are conditional).
        known: dict[str, Message] = {
            m.id: m for m in self._repository.get_many(dict.fromkeys(links.values()))
        }
        now = self._tracker.clock()
        ttl = int((now + timedelta(days=self._settings.orphan_ttl_days)).timestamp())
        quota: OrphanQuota | None = self.orphan_quota(now)
        refused = 0
        groups: dict[str, list[StatusReport]] = {}
        stored: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for receipt in receipts:
            for name in receipt.missing_fields:
                metrics.add("ReceiptFieldMissing", carrier=carrier.name, field=name)
            report = report_of(carrier, receipt)
            try:
                sms_id, waiting = self._sms_id_of(
                    carrier, receipt, report, links, ttl, stored, quota
                )
            except OrphanLimitReached:
                # Without a carrier dimension, so that one alarm watches every carrier.
                metrics.add("OrphanRefused")
                refused += 1
                quota = OrphanQuota(0, 0, 0, 0)  # full for the rest of the request: no reads
                continue
            if sms_id is None:
                metrics.add("OrphanReceipt", carrier=carrier.name)
                continue
            group = groups.setdefault(sms_id, [])
            group += waiting
            group.append(report)
            if receipt.forwarded_to and links.get(receipt.forwarded_to) != sms_id:
                # The carrier carries the message on under a new id of its own: that id's
                # receipts (and any that already wait for it) belong to the same message.
                _, forwarded = self._tracker.link(
                    carrier.name, receipt.forwarded_to, sms_id, expires_at=ttl
                )
                links[receipt.forwarded_to] = sms_id
                group += forwarded
        for sms_id, reports in groups.items():
            outcome = self._tracker.report_many(sms_id, reports, known=known.get(sms_id))
            if outcome is not None:
                metrics.add("ReceiptsApplied", len(reports), carrier=carrier.name)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "receipts applied",
                        extra={
                            "id": sms_id,
                            "reported": [str(r.status) for r in reports],
                            "before": str(outcome.before.status),
                            "after": str(outcome.message.status),
                            "history_rev": outcome.message.history_rev,
                        },
                    )
        return refused

    def _sms_id_of(
        self,
        carrier: CarrierConfig,
        receipt: Receipt,
        report: StatusReport,
        links: dict[str, str],
        ttl: int,
        stored: set[tuple[str, tuple[tuple[str, str], ...]]],
        quota: OrphanQuota | None = None,
    ) -> tuple[str | None, list[StatusReport]]:
        """The message a receipt belongs to (None: kept as an orphan) and the receipts that
        waited for a link this receipt made."""
        gateway_id = receipt.gateway_id
        sms_id = links.get(gateway_id)
        if sms_id is not None:
            return sms_id, []
        original = links.get(receipt.forwarded_from) if receipt.forwarded_from else None
        if original is None:
            # Kept under the original's id when it names one: with receipt option FINAL the
            # original's own receipts may never come, but its link (by dispatch) will.
            key = receipt.forwarded_from or gateway_id
            seen = (key, tuple(sorted(report.to_dict().items())))
            if seen in stored:
                return None, []  # the same orphan again in this request: kept once
            sms_id = self._repository.store_orphan(
                carrier.name, key, report, expires_at=ttl, quota=quota
            )
            stored.add(seen)
            if sms_id is None:
                return None, []
            if key == gateway_id:
                links[gateway_id] = sms_id
                return sms_id, []
            original = sms_id
        holder, waiting = self._tracker.link(carrier.name, gateway_id, original, expires_at=ttl)
        sms_id = holder or original
        links[gateway_id] = sms_id
        return sms_id, waiting


def report_of(carrier: CarrierConfig, receipt: Receipt) -> StatusReport:
    """The status report of one receipt, with every field the receipt carries (RECEIPT_FIELDS)."""
    kept = {
        field: receipt.extra[key]
        for key, field in RECEIPT_EXTRA_STORED.items()
        if key in receipt.extra
    }
    return StatusReport(
        receipt.status,
        source=f"receipt:{carrier.name}",
        gateway_status=receipt.gateway_status,
        gateway_error=receipt.gateway_error,
        description=receipt.description,
        at=receipt.at,
        gateway_id=receipt.gateway_id,
        gateway_forwarded_to=receipt.forwarded_to,
        gateway_forwarded_from=receipt.forwarded_from,
        **kept,
    )
