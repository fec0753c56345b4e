"""Per-carrier submissions per second, honoured across concurrent dispatch invocations.

A counter item per carrier and second in the Messages table: a conditional increment takes a
slot; when the second is full the record waits for a later try.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from smsbridge.repository import MessageRepository


class RateLimiter:
    def __init__(
        self, repository: MessageRepository, clock: Callable[[], float] = time.time
    ) -> None:
        self._repository = repository
        self._clock = clock

    def acquire(self, carrier: str, max_per_second: float) -> int | None:
        """None when a slot was taken; otherwise the seconds to wait before trying again."""
        now = self._clock()
        # Rates below 1/s use a window of several seconds with one slot.
        window = max(1, math.ceil(1 / max_per_second))
        limit = max(1, math.floor(max_per_second * window))
        start = int(now) - int(now) % window
        if self._repository.take_rate_slot(carrier, start, limit, expires_at=start + 3600):
            return None
        return window
