"""A carrier's circuit breaker state as the console and `GET /v1/carriers` show it (SPEC 4.3).

The one place that reads it: until the breaker stores its state, every circuit is closed.
Wire `circuit_of` to the breaker's state item; nothing else needs to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsbridge.repository import MessageRepository


@dataclass(frozen=True, slots=True)
class CircuitView:
    #: `closed`, `open` or `half-open`.
    circuit: str = "closed"
    #: When the circuit entered that state (ISO 8601), None when it never changed.
    since: str | None = None
    #: Consecutive failures counted in the current window.
    failures: int = 0


def circuit_of(repository: MessageRepository, carrier: str) -> CircuitView:
    """The circuit of `carrier` (closed until the breaker exists)."""
    del repository, carrier
    return CircuitView()
