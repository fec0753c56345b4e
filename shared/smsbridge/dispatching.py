"""Submitting a queued message to its carrier: claim first, then call, then record.

The claim is a conditional write, so a record that SQS delivers twice submits once. Every try
uses the message's id as the carrier-side reference key, so a carrier that dedupes never sends
a retried submission twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from smsbridge import phone
from smsbridge.carriers import get_format
from smsbridge.carriers.base import (
    PermanentSubmitError,
    Submission,
    SubmitResult,
    TransientSubmitError,
)
from smsbridge.circuit import Admission, CircuitBreaker
from smsbridge.config import AppConfig, CarrierConfig
from smsbridge.models import Message, StatusReport, iso
from smsbridge.ratelimit import RateLimiter
from smsbridge.statuses import Status
from smsbridge.tracking import StatusTracker

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("smsbridge.dispatch")

MAX_BACKOFF_SECONDS = 900
#: Seconds kept free beyond the slowest submission: the writes that record its outcome and the
#: batch's answer must fit before the function's time-out too.
SUBMIT_MARGIN_SECONDS = 3.0


def submission_budget(config: AppConfig, margin: float = SUBMIT_MARGIN_SECONDS) -> float:
    """The time one more submission may need: the slowest carrier's connect and read
    time-outs, plus `margin`. Dispatch takes no record when less time is left (SPEC 6.1)."""
    slowest = max(
        (c.connect_timeout + c.read_timeout for c in config.carriers.values()), default=0.0
    )
    return slowest + margin


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """None `retry_after`: the record is done; otherwise retry it after that many seconds."""

    retry_after: int | None = None
    outcome: str = ""


class Dispatcher:
    def __init__(
        self,
        tracker: StatusTracker,
        session: requests.Session,
        rate_limiter: RateLimiter | None = None,
        circuit: CircuitBreaker | None = None,
    ) -> None:
        self._tracker = tracker
        self._repository = tracker.repository
        self._settings = tracker.settings
        self._config = tracker.config
        self._session = session
        self._rate_limiter = rate_limiter
        self._circuit = circuit

    def backoff(self, attempts: int) -> int:
        base = self._settings.submit_backoff_seconds
        return int(min(base * 2 ** max(0, attempts - 1), MAX_BACKOFF_SECONDS))

    def dispatch(self, sms_id: str) -> DispatchResult:
        now = self._tracker.clock()
        claim = self._repository.claim(
            sms_id, now=now, lease_seconds=self._settings.submit_lease_seconds
        )
        message = claim.message
        if message is None:
            current = claim.current
            if current is None:
                logger.warning("dispatch record for an unknown message", extra={"id": sms_id})
                return DispatchResult(outcome="unknown")
            # Already submitted, final, or a try of it is under way: this record is a repeat.
            return DispatchResult(outcome=f"skipped:{current.status}")
        latest = message.latest_send_time()
        if latest is not None and now >= latest:
            self._tracker.report(
                message.id,
                StatusReport(
                    Status.EXPIRED,
                    source="dispatch",
                    description="not submitted before its validity or send_to",
                ),
                known=message,
            )
            return DispatchResult(outcome="expired")
        carrier = self._config.carriers[message.carrier]
        admission = Admission(True)
        if self._circuit is not None:
            routed = self._route_around_open_circuit(self._circuit, message, carrier)
            if isinstance(routed, DispatchResult):
                return routed
            message, carrier, admission = routed
        if self._rate_limiter is not None and carrier.max_per_second:
            wait = self._rate_limiter.acquire(carrier.name, carrier.max_per_second)
            if wait is not None:
                self._release(message, "rate limited", retry_after=wait)
                return DispatchResult(retry_after=wait, outcome="throttled")
        try:
            result = get_format(carrier.format).submit(
                self._session, carrier, self._submission(message, carrier)
            )
        except TransientSubmitError as exc:
            if self._circuit is not None and exc.unwell:
                self._circuit.failed(carrier.name, admission)
                if admission.probe:
                    return self._probe_failed(message, exc)
            return self._transient(message, exc)
        except PermanentSubmitError as exc:
            if self._circuit is not None:  # the carrier answered: it is well
                self._circuit.succeeded(carrier.name, admission)
            self._tracker.metrics.add("SubmitErrors", carrier=carrier.name, kind="permanent")
            logger.warning(
                "submission refused",
                extra={
                    "carrier": carrier.name,
                    "to": phone.mask(message.phone_number),
                    "reason": exc.description[:200],
                },
            )
            self._tracker.report(
                message.id,
                StatusReport(
                    exc.status,
                    source="dispatch",
                    gateway_status=exc.gateway_status,
                    gateway_error=exc.gateway_error,
                    description=exc.description,
                ),
                known=message,
            )
            return DispatchResult(outcome="rejected")
        if self._circuit is not None:
            self._circuit.succeeded(carrier.name, admission)
        self._submitted(message, carrier, result)
        return DispatchResult(outcome="submitted")

    def _route_around_open_circuit(
        self, circuit: CircuitBreaker, message: Message, carrier: CarrierConfig
    ) -> tuple[Message, CarrierConfig, Admission] | DispatchResult:
        """The carrier (and circuit admission) to submit to, or what to do when none may be.

        While a carrier's circuit is open the message goes to its `failover` carrier, recorded
        in the history; no SMS went out on the first route, so this is routing, not alternate
        delivery, and `SUBMIT_MAX_ATTEMPTS` counts afresh on the failover. Without a failover (or
        with its circuit open too) the message waits on the queue, and the try is not counted.
        """
        admission = circuit.admit(carrier)
        if admission.allowed:
            return message, carrier, admission
        failover = self._config.carriers.get(carrier.failover or "")
        if failover is not None:
            failover_admission = circuit.admit(failover)
            if failover_admission.allowed:
                applied = self._tracker.report(
                    message.id,
                    StatusReport(
                        Status.QUEUED,
                        source="dispatch",
                        description=f"circuit open: via {failover.name}",
                    ),
                    known=message,
                    # Attempts count per route: this try is the failover's first, so a sick
                    # carrier's failures never use up the budget of the one that carries it.
                    set_fields={"carrier": failover.name, "attempts": 1},
                )
                if applied is None or applied.message.status != Status.QUEUED:
                    return DispatchResult(outcome="gone")
                logger.info(
                    "circuit open: via failover",
                    extra={"carrier": carrier.name, "failover": failover.name},
                )
                return applied.message, failover, failover_admission
            if failover_admission.wait < admission.wait:
                admission = failover_admission
        self._release(message, "circuit open", retry_after=admission.wait, refund_attempt=True)
        return DispatchResult(retry_after=admission.wait, outcome="circuit open")

    def _submission(self, message: Message, carrier: CarrierConfig) -> Submission:
        base = self._settings.public_base_url
        receipt_url = ""
        if base and not carrier.poll:
            receipt_url = f"{base}/dlr/{carrier.name}"
            if carrier.format == "vibes" and carrier.dlr_password:
                receipt_url += f"?token={carrier.dlr_password}"
        return Submission(
            reference=message.id,
            to=message.phone_number,
            text=message.text,
            sender=message.sender or carrier.sender,
            country=message.country,
            validity_minutes=message.validity_minutes,
            # Our own alternate route, when configured, replaces the carrier's; a carrier's own
            # alternate delivery does not take concatenated messages (Vibes seed).
            alternate_delivery=(
                message.alternate_delivery and carrier.alternate is None and message.segments <= 1
            ),
            receipt_url=receipt_url,
            client_message_id=message.submitter_message_id or message.message_id,
        )

    def _submitted(self, message: Message, carrier: CarrierConfig, result: SubmitResult) -> None:
        """Link the carrier id, then record the answer and the receipts that came before it
        (or under an id the carrier forwarded to) in one write.

        Link first: if the write fails, the message is still queued and its record is tried
        again (the carrier answers the repeated reference with the same id), and the repeated
        link hands the waiting receipts over again. Linked the other way round, a write lost
        after the link would leave them unapplied behind a message that no longer retries.
        """
        now = self._tracker.clock()
        _, waiting = self._tracker.link(
            carrier.name, result.gateway_id, message.id, expires_at=message.expires_at
        )
        # The carrier's own date of its answer, where it gives one, is the first status change.
        answer = StatusReport(
            result.status, source="dispatch", gateway_status=result.gateway_status, at=result.at
        )
        self._tracker.report_many(
            message.id,
            [answer, *waiting],
            known=message,
            set_fields={"gateway_id": result.gateway_id, "submitted_at": iso(now)},
            remove_fields=("claimed_until",),
        )
        self._tracker.metrics.add("Submitted", carrier=carrier.name, type=message.type)

    def _transient(self, message: Message, exc: TransientSubmitError) -> DispatchResult:
        carrier = message.carrier
        self._tracker.metrics.add("SubmitErrors", carrier=carrier, kind="transient")
        logger.warning(
            "submission failed, will retry"
            if message.attempts < self._settings.submit_max_attempts
            else "submission failed for good",
            extra={
                "carrier": carrier,
                "to": phone.mask(message.phone_number),
                "attempt": message.attempts,
                "reason": exc.description[:200],
            },
        )
        if message.attempts >= self._settings.submit_max_attempts:
            self._tracker.report(
                message.id,
                StatusReport(
                    Status.FAILED,
                    source="dispatch",
                    gateway_status=exc.gateway_status,
                    gateway_error=exc.gateway_error,
                    description=(
                        f"submission failed after {message.attempts} attempts: {exc.description}"
                    ),
                ),
                known=message,
            )
            return DispatchResult(outcome="failed")
        retry_after = self.backoff(message.attempts)
        self._release(message, exc.description, retry_after=retry_after)
        return DispatchResult(retry_after=retry_after, outcome="retry")

    def _probe_failed(self, message: Message, exc: TransientSubmitError) -> DispatchResult:
        """The probe found the carrier still unwell and its circuit is open again: the message
        goes to the failover at once when there is one, else waits like the others. The failure,
        the carrier's, does not use up its attempts."""
        self._tracker.metrics.add("SubmitErrors", carrier=message.carrier, kind="transient")
        logger.warning(
            "circuit probe failed",
            extra={"carrier": message.carrier, "reason": exc.description[:200]},
        )
        carrier = self._config.carriers.get(message.carrier)
        wait = 1 if carrier and carrier.failover else self._settings.circuit_open_seconds
        self._release(message, exc.description, retry_after=wait, refund_attempt=True)
        return DispatchResult(retry_after=wait, outcome="probe failed")

    def _release(
        self, message: Message, error: str, *, retry_after: int, refund_attempt: bool = False
    ) -> None:
        now = self._tracker.clock()
        # The poller re-queues only if this record is lost, well after its retry was due.
        grace = timedelta(seconds=retry_after + self._settings.requeue_after_seconds)
        self._repository.release_claim(
            message.id,
            now=now,
            error=error[:200],
            next_check_at=int((now + grace).timestamp()),
            refund_attempt=refund_attempt,
        )
