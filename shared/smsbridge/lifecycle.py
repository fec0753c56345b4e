"""When an open message is next looked at by the poller (SPEC 4.2), as one pure policy.

- queued: when it should have been submitted (re-queue after `REQUEUE_AFTER_SECONDS`, doubling
  with each re-queue, so a message still waiting in a long queue is not queued again and again),
  or its latest send time (validity, OFSC `send_to`) if that comes first;
- submitted/enroute/unknown: its next poll for a polled carrier (first after
  `POLL_FIRST_SECONDS`, then doubling up to `POLL_MAX_INTERVAL_SECONDS`), never later than its
  status time-out, counted from submission.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from smsbridge.config import AppConfig, Settings
from smsbridge.models import Message, parse_iso
from smsbridge.statuses import Status

#: The re-queue interval stops doubling at 2**5 times `REQUEUE_AFTER_SECONDS` (about an hour
#: with the default 120 s).
MAX_REQUEUE_DOUBLING = 5


class Lifecycle:
    def __init__(self, settings: Settings, config: AppConfig) -> None:
        self._settings = settings
        self._config = config

    def status_timeout(self, message: Message) -> timedelta:
        seconds = self._config.status_timeout(message.type, self._settings.status_timeout_seconds)
        return timedelta(seconds=seconds)

    def timeout_at(self, message: Message, now: datetime) -> datetime:
        """Its status time-out, counted from submission. A message that a receipt moved on
        before dispatch recorded the carrier's answer (that write failed after the link, and
        the record's retry finds it no longer queued) counts from that status change: counted
        from `now` it would be put off at every check and never end."""
        started = message.submitted_at
        if not started and message.status != Status.QUEUED:
            started = message.status_changed_at
        base = parse_iso(started) if started else now
        return base + self.status_timeout(message)

    def poll_interval(self, polls_done: int) -> int:
        first = max(1, self._settings.poll_first_seconds)
        return int(
            min(first * (2 ** min(polls_done, 20)), self._settings.poll_max_interval_seconds)
        )

    def is_polled(self, message: Message) -> bool:
        carrier = self._config.carriers.get(message.carrier)
        return bool(carrier and carrier.poll)

    def requeue_interval(self, requeues_done: int) -> int:
        doubling: int = 2 ** min(requeues_done, MAX_REQUEUE_DOUBLING)
        return self._settings.requeue_after_seconds * doubling

    def next_check(
        self,
        message: Message,
        status: Status,
        now: datetime,
        polls_done: int = 0,
        requeues_done: int = 0,
    ) -> int | None:
        """Epoch seconds of the next check, None for a final status."""
        if status.is_final:
            return None
        if status == Status.QUEUED:
            due = now + timedelta(seconds=self.requeue_interval(requeues_done))
            latest = message.latest_send_time()
            if latest is not None:
                due = min(due, latest)
            return int(due.timestamp())
        timeout_at = self.timeout_at(message, now)
        if self.is_polled(message):
            due = now + timedelta(seconds=self.poll_interval(polls_done))
            return int(min(due, timeout_at).timestamp())
        return int(timeout_at.timestamp())
