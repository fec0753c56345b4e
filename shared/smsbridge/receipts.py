"""Delivery receipts posted to `/dlr/{carrier}`: authenticate, read, apply, answer (SPEC 3.3).

The carrier's `format` module reads the request and shapes every answer. A receipt is matched by
(carrier, carrier id); one for an id not linked yet is kept as an orphan and applied when dispatch
links that id, whichever of the two comes first.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from smsbridge.carriers import get_format
from smsbridge.carriers.base import PayloadTooLarge, Receipt, ReceiptError
from smsbridge.config import CarrierConfig
from smsbridge.models import StatusReport
from smsbridge.statuses import Status
from smsbridge.tracking import StatusTracker
from smsbridge.web import HttpAnswer, HttpRequest

logger = logging.getLogger("smsbridge.receipts")


def unknown_carrier_answer() -> HttpAnswer:
    return HttpAnswer(404, '{"message":"Not Found"}', "application/json")


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
            logger.warning(
                "receipt refused",
                extra={"carrier": carrier.name, "status": exc.status_code, "reason": exc.code},
            )
            return fmt.answer_error(exc)
        self.apply(carrier, receipts)
        return fmt.answer_receipts(receipts)

    def apply(self, carrier: CarrierConfig, receipts: list[Receipt]) -> None:
        links = self._repository.message_ids_for_gateway_ids(
            carrier.name, [receipt.gateway_id for receipt in receipts]
        )
        # One batch read of the messages; each apply starts from it (a stale copy only costs a
        # re-read, the writes are conditional).
        known = {m.id: m for m in self._repository.get_many(links.values())}
        orphan_ttl = int(
            (self._tracker.clock() + timedelta(days=self._settings.orphan_ttl_days)).timestamp()
        )
        for receipt in receipts:
            report = self._report_of(carrier, receipt)
            message_id = links.get(receipt.gateway_id)
            if message_id is None:
                message_id = self._repository.store_orphan(
                    carrier.name, receipt.gateway_id, report, expires_at=orphan_ttl
                )
                if message_id is None:
                    self._tracker.metrics.add("OrphanReceipt", carrier=carrier.name)
                    continue
                links[receipt.gateway_id] = message_id
            if receipt.forwarded_to:
                # The carrier carries the message on under a new id of its own: its receipts
                # belong to the same message.
                self._repository.link_gateway_id(
                    carrier.name, receipt.forwarded_to, message_id, expires_at=orphan_ttl
                )
            outcome = self._tracker.report(message_id, report, known=known.get(message_id))
            if outcome is not None:
                known[message_id] = outcome.message
                self._tracker.metrics.add("ReceiptsApplied", carrier=carrier.name)

    @staticmethod
    def _report_of(carrier: CarrierConfig, receipt: Receipt) -> StatusReport:
        status = receipt.status
        description = receipt.description
        if receipt.forwarded_to and status.is_final and status != Status.DELIVERED:
            # A failure the carrier forwards to its own alternate is not the message's end.
            status = Status.ENROUTE
            description = f"{description}; forwarded by the carrier".lstrip("; ")
        return StatusReport(
            status,
            source=f"receipt:{carrier.name}",
            gateway_status=receipt.gateway_status,
            gateway_error=receipt.gateway_error,
            description=description,
            at=receipt.at,
        )
