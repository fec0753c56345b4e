"""Delivery rate per carrier from the SMS log, with the definitions of `make report`.

- outcome: a final status other than `cancelled` (the client withdrew the message). By carrier, a
  `forwarded` hop is an outcome (that carrier did not deliver it); by type and overall it is not,
  since its alternate (its own item) carries the message's outcome.
- delivery rate: delivered / outcomes (None without outcomes).

`tools/channel_report.py` counts outcomes with `is_outcome`; the console (`GET /v1/carriers`) with
`carrier_rates`, over the same `LogByDay` entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smsbridge.statuses import FINAL, Status


def is_outcome(status: str, *, forwarded_is_outcome: bool) -> bool:
    """Whether a message in `status` counts in a delivery rate's denominator."""
    if status not in FINAL or status == Status.CANCELLED:
        return False
    return forwarded_is_outcome or status != Status.FORWARDED


@dataclass(slots=True)
class CarrierRate:
    outcomes: int = 0
    delivered: int = 0

    @property
    def rate(self) -> float | None:
        return self.delivered / self.outcomes if self.outcomes else None


def carrier_rates(
    entries: Iterable[Mapping[str, Any]], *, since: str, until: str
) -> dict[str, CarrierRate]:
    """Outcomes and delivered messages per carrier of the entries inserted in [since, until)
    (ISO 8601 UTC timestamps of the table's one format, which sort as text)."""
    rates: dict[str, CarrierRate] = {}
    for entry in entries:
        status, inserted = entry.get("status"), entry.get("inserted_at")
        if not isinstance(status, str) or not isinstance(inserted, str) or not status:
            continue
        if not since <= inserted < until:
            continue
        carrier = entry.get("carrier")
        rate = rates.setdefault(
            carrier if isinstance(carrier, str) and carrier else "-", CarrierRate()
        )
        if is_outcome(status, forwarded_is_outcome=True):
            rate.outcomes += 1
            rate.delivered += status == Status.DELIVERED
    return rates
