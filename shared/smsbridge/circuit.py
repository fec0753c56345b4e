"""A circuit breaker per carrier (SPEC 4.3), shared by every dispatch invocation.

The state is one item per carrier in the Messages table (`repository.circuit`). It is written
only when something changes: a carrier-unwell failure, an opening, a probe, a closing, and the
first success after failures. A healthy carrier's successes write nothing, and its state is read
at most once per `CACHE_SECONDS` per execution environment, so the item never becomes a hot key.

- closed: submissions go through. `CIRCUIT_FAILURES` consecutive carrier-unwell failures (5xx,
  time-out, refused connection) within `CIRCUIT_WINDOW_SECONDS` open it.
- open: nothing is submitted for `CIRCUIT_OPEN_SECONDS`.
- half-open: one invocation (a conditional write picks it) submits one message as a probe; its
  success closes the circuit, its failure opens it again for the same time. The probe holds a
  lease, so a probe lost with its invocation is taken over when the lease ends.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from smsbridge.config import CarrierConfig, Settings
from smsbridge.models import CircuitRecord
from smsbridge.repository import MessageRepository
from smsbridge.telemetry import MetricSink

logger = logging.getLogger("smsbridge.circuit")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"
#: How long a healthy (closed, no failures) circuit read from the table is trusted.
CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether one submission may go to the carrier now.

    `allowed` with `probe`: this submission is the half-open probe. Not `allowed`: the circuit
    is open; `wait` is the seconds until it may be tried again.
    """

    allowed: bool
    probe: bool = False
    wait: int = 0
    #: What the decision was made on (tells `succeeded` whether a write is needed).
    seen: CircuitRecord | None = None


class CircuitCache:
    """Circuit states read by one execution environment (kept at module level by the handler)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, CircuitRecord | None]] = {}

    def get(self, carrier: str) -> tuple[float, CircuitRecord | None] | None:
        with self._lock:
            return self._entries.get(carrier)

    def put(self, carrier: str, read_at: float, record: CircuitRecord | None) -> None:
        with self._lock:
            self._entries[carrier] = (read_at, record)

    def forget(self, carrier: str) -> None:
        with self._lock:
            self._entries.pop(carrier, None)


class CircuitBreaker:
    def __init__(
        self,
        repository: MessageRepository,
        settings: Settings,
        metrics: MetricSink,
        cache: CircuitCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._settings = settings
        self._metrics = metrics
        self._cache = cache or CircuitCache()
        self._clock = clock

    def admit(self, carrier: CarrierConfig) -> Admission:
        """May a message be submitted to `carrier` now? Takes the probe when one is due."""
        now = self._clock()
        record = self._read(carrier.name, now)
        if record is None or record.state == CLOSED:
            return Admission(True, seen=record)
        if record.state == OPEN and now < record.open_until:
            return Admission(False, wait=_seconds(record.open_until - now), seen=record)
        if record.state == HALF_OPEN and now < record.probe_until:
            return Admission(False, wait=_seconds(record.probe_until - now), seen=record)
        # The open time is over (or a probe's lease ran out): one invocation probes.
        lease = math.ceil(carrier.connect_timeout + carrier.read_timeout) + 1
        taken = self._repository.take_circuit_probe(
            carrier.name, now=_moment(now), probe_until=int(now) + lease
        )
        self._cache.forget(carrier.name)
        if taken is None:
            return Admission(False, wait=min(lease, 2), seen=record)
        logger.info("circuit half-open: probing", extra={"carrier": carrier.name})
        return Admission(True, probe=True, seen=taken)

    def succeeded(self, carrier: str, admission: Admission) -> None:
        """The carrier took a submission: close a probed circuit, clear counted failures."""
        seen = admission.seen
        if admission.probe:
            now = _moment(self._clock())
            if self._repository.close_circuit(carrier, now=now, from_state=HALF_OPEN):
                self._metrics.add("CircuitClosed", carrier=carrier)
                logger.warning("circuit closed", extra={"carrier": carrier})
            self._cache.forget(carrier)
        elif seen is not None and seen.failures > 0:
            self._repository.close_circuit(carrier, now=_moment(self._clock()), from_state=CLOSED)
            self._cache.forget(carrier)

    def failed(self, carrier: str, admission: Admission) -> None:
        """A carrier-unwell failure (5xx, time-out, refused connection): count it; open the
        circuit at the threshold; a failed probe opens it again."""
        now = self._clock()
        until = int(now) + self._settings.circuit_open_seconds
        if admission.probe:
            opened = self._repository.open_circuit(
                carrier, now=_moment(now), open_until=until, from_state=HALF_OPEN, min_failures=0
            )
            self._after_opening(carrier, opened, now)
            return
        counted = self._repository.count_circuit_failure(
            carrier, now=_moment(now), window_seconds=self._settings.circuit_window_seconds
        )
        if counted is None:  # already open or half-open: this failure began before that
            self._cache.forget(carrier)
            return
        self._cache.put(carrier, now, counted)
        if counted.failures >= self._settings.circuit_failures:
            opened = self._repository.open_circuit(
                carrier,
                now=_moment(now),
                open_until=until,
                from_state=CLOSED,
                min_failures=self._settings.circuit_failures,
            )
            self._after_opening(carrier, opened, now)

    def _after_opening(self, carrier: str, opened: CircuitRecord | None, now: float) -> None:
        if opened is None:
            self._cache.forget(carrier)
            return
        self._cache.put(carrier, now, opened)
        self._metrics.add("CircuitOpened", carrier=carrier)
        logger.warning(
            "circuit open",
            extra={"carrier": carrier, "seconds": self._settings.circuit_open_seconds},
        )

    def _read(self, carrier: str, now: float) -> CircuitRecord | None:
        """The circuit, from the cache while that cannot be stale in a way that matters: a
        healthy one for `CACHE_SECONDS`, an open one until its open time ends."""
        cached = self._cache.get(carrier)
        if cached is not None:
            read_at, record = cached
            healthy = record is None or (record.state == CLOSED and record.failures == 0)
            if healthy and now - read_at < CACHE_SECONDS:
                return record
            if record is not None and record.state == OPEN and now < record.open_until:
                return record
        record = self._repository.circuit(carrier)
        self._cache.put(carrier, now, record)
        return record


def carrier_circuits(
    repository: MessageRepository, carriers: Iterable[str], now: float | None = None
) -> dict[str, dict[str, Any]]:
    """Each carrier's circuit as support sees it: `{circuit, since, failures}` (SPEC 4.3).

    An open circuit whose open time is over reads `half-open` (the next message probes it). A
    carrier whose circuit was never written is `closed` since '' with no failures.
    """
    now = time.time() if now is None else now
    names = list(carriers)
    stored = repository.circuits(names)
    answer: dict[str, dict[str, Any]] = {}
    for name in names:
        record = stored.get(name) or CircuitRecord(carrier=name)
        state = record.state
        if state == OPEN and now >= record.open_until:
            state = HALF_OPEN
        answer[name] = {
            "circuit": state,
            "since": record.since or None,
            "failures": record.failures,
        }
    return answer


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
