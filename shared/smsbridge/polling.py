"""The scheduled status run (SPEC 4.2): poll carriers without callbacks, time out stale messages,
re-queue stuck ones, expire those past their send time.

Work is found through the sparse index of open messages, shard by shard, bounded per run in
items and time; what does not fit is left for the next run. Every write is conditional, so two
overlapping runs do not act twice.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from smsbridge.carriers import get_format
from smsbridge.carriers.base import PollError, Receipt
from smsbridge.config import CarrierConfig
from smsbridge.models import Message, StatusReport
from smsbridge.repository import OPEN_INDEX_SHARDS
from smsbridge.statuses import Status
from smsbridge.tracking import StatusTracker

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("smsbridge.poller")


@dataclass(slots=True)
class RunSummary:
    due: int = 0
    polled: int = 0
    poll_errors: int = 0
    terminated: int = 0
    requeued: int = 0
    expired: int = 0
    rescheduled: int = 0
    left_for_next_run: int = 0
    changed: dict[str, int] = field(default_factory=dict)


def _new_session() -> requests.Session:
    """requests is imported when a run has something to poll, not on a cold start."""
    import requests

    return requests.Session()


class Poller:
    def __init__(
        self,
        tracker: StatusTracker,
        session_factory: Callable[[], requests.Session] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tracker = tracker
        self._repository = tracker.repository
        self._settings = tracker.settings
        self._config = tracker.config
        self._lifecycle = tracker.lifecycle
        self._session_factory = session_factory or _new_session
        self._monotonic = monotonic

    def run(self) -> RunSummary:
        started = self._monotonic()
        deadline = started + self._settings.poller_time_budget_seconds
        now = self._tracker.clock()
        summary = RunSummary()
        ids = self._due_ids(now)
        summary.due = len(ids)
        to_poll: dict[str, list[Message]] = defaultdict(list)
        chores: list[Message] = []
        epoch = int(now.timestamp())
        for message in self._repository.get_many(ids):
            if message.is_final or not _still_due(message, epoch):
                continue
            if (
                message.status != Status.QUEUED
                and now < self._lifecycle.timeout_at(message, now)
                and self._lifecycle.is_polled(message)
                and message.gateway_id
            ):
                to_poll[message.carrier].append(message)
            else:
                chores.append(message)
        if chores:
            self._do_chores(chores, now, deadline, summary)
        if to_poll:
            self._poll_all(to_poll, now, deadline, summary)
        return summary

    def _due_ids(self, now: datetime) -> list[str]:
        """Due ids from every shard, at most `POLLER_BATCH_LIMIT` in all, taken in turn from each
        shard so that one busy shard does not crowd out the others (nor leave room unused).

        The shards are read at the same time: the run waits for one query, not sixteen."""
        limit = self._settings.poller_batch_limit
        epoch = int(now.timestamp())
        shards = [f"{shard:02d}" for shard in range(OPEN_INDEX_SHARDS)]
        with ThreadPoolExecutor(max_workers=len(shards), thread_name_prefix="due") as pool:
            found = list(
                pool.map(
                    lambda shard: self._repository.due_sms_ids(shard, now_epoch=epoch, limit=limit),
                    shards,
                )
            )
        in_turn = (ids[n] for n in range(limit) for ids in found if n < len(ids))
        return list(itertools.islice(in_turn, limit))

    # --- what is due without a poll: expire, re-queue, time out, look again later -----------

    def _do_chores(
        self, messages: list[Message], now: datetime, deadline: float, summary: RunSummary
    ) -> None:
        """Each message's conditional write, several at a time (a run that wrote them one after
        the other spent its whole budget on a long backlog of queued messages)."""
        to_requeue: list[Message] = []
        with ThreadPoolExecutor(
            max_workers=self._settings.poller_concurrency, thread_name_prefix="chore"
        ) as pool:
            futures = {pool.submit(self._chore, message, now): message for message in messages}
            try:
                done, not_done = wait(futures, timeout=max(0.0, deadline - self._monotonic()))
                summary.left_for_next_run += len(not_done)
                for future in done:
                    outcome = future.result()
                    if outcome == "requeue":
                        to_requeue.append(futures[future])
                    elif outcome:
                        setattr(summary, outcome, getattr(summary, outcome) + 1)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        if to_requeue:
            self._requeue(to_requeue, summary)

    def _chore(self, message: Message, now: datetime) -> str:
        """What was done: a `RunSummary` counter's name, "requeue", or "" (nothing)."""
        if message.status == Status.QUEUED:
            return self._queued(message, now)
        if now >= self._lifecycle.timeout_at(message, now):
            return self._terminate(message)
        return "rescheduled" if self._reschedule(message, now) else ""

    def _queued(self, message: Message, now: datetime) -> str:
        """Expire a queued message past its send time, else queue it again (the interval doubles
        with each re-queue: one still waiting in a long queue is not flooded with copies)."""
        latest = message.latest_send_time()
        if latest is not None and now >= latest:
            outcome = self._tracker.report(
                message.id,
                StatusReport(
                    Status.EXPIRED,
                    source="poller",
                    description="not submitted before its validity or send_to",
                ),
                known=message,
            )
            return "expired" if outcome is not None and outcome.changed else ""
        requeues = message.requeue_count + 1
        next_check = self._lifecycle.next_check(message, Status.QUEUED, now, requeues_done=requeues)
        # Narrows the type for mypy; Lambda never runs Python with -O.
        assert next_check is not None  # nosec B101
        # Only the run that moves the next check re-queues (overlapping runs act once).
        moved = self._repository.reschedule(
            message.id,
            expected=Status.QUEUED,
            next_check_at=next_check,
            expected_next_check=message.next_check_at,
            requeue_count=requeues,
        )
        return "requeue" if moved else ""

    def _requeue(self, messages: list[Message], summary: RunSummary) -> None:
        """Queue again, 10 a call; one that fails stays due and is tried at its next check."""
        try:
            failed = set(self._tracker.queue.enqueue([message.id for message in messages]))
        except Exception:
            logger.exception("re-queue failed; the messages stay due")
            return
        for message in messages:
            if message.id not in failed:
                summary.requeued += 1
                self._tracker.metrics.add("Requeued", carrier=message.carrier)

    def _terminate(self, message: Message) -> str:
        timeout = int(self._lifecycle.status_timeout(message).total_seconds())
        outcome = self._tracker.report(
            message.id,
            StatusReport(
                Status.TERMINATED,
                source="poller",
                description=f"no final status within {timeout} s of submission",
            ),
            known=message,
        )
        return "terminated" if outcome is not None and outcome.changed else ""

    # --- submitted, enroute, unknown: polled -----------------------------------------------

    def _reschedule(self, message: Message, now: datetime, *, polled: bool = False) -> bool:
        """Move the next check on; True when this run did (overlapping runs act once)."""
        polls = message.poll_count + (1 if polled else 0)
        next_check = self._lifecycle.next_check(message, message.status, now, polls_done=polls)
        if next_check is None:
            return False
        fields = {"poll_count": polls} if polled else {}
        return self._repository.reschedule(
            message.id,
            expected=message.status,
            next_check_at=next_check,
            expected_next_check=message.next_check_at,
            **fields,
        )

    def _poll_all(
        self,
        by_carrier: dict[str, list[Message]],
        now: datetime,
        deadline: float,
        summary: RunSummary,
    ) -> None:
        """Poll concurrently, one bounded pool per carrier, so one that hangs stalls only itself;
        each worker also writes what its poll found."""
        pools: list[ThreadPoolExecutor] = []
        futures: dict[Future[_Polled], Message] = {}
        for carrier_name, messages in by_carrier.items():
            carrier = self._config.carriers[carrier_name]
            pool = ThreadPoolExecutor(
                max_workers=self._settings.poller_concurrency,
                thread_name_prefix=f"poll-{carrier_name}",
            )
            pools.append(pool)
            session = self._session_factory()
            for message in messages:
                future = pool.submit(self._poll_and_apply, session, carrier, message, now)
                futures[future] = message
        try:
            done, not_done = wait(futures, timeout=max(0.0, deadline - self._monotonic()))
            for future in done:
                self._count(futures[future], future.result(), summary)
            summary.left_for_next_run += len(not_done)
        finally:
            for pool in pools:
                # Polls not started are dropped (still due next run); those under way end
                # here, so no write runs after the invocation returns.
                pool.shutdown(wait=True, cancel_futures=True)

    def _count(self, message: Message, polled: _Polled, summary: RunSummary) -> None:
        if polled.error:
            summary.poll_errors += 1
            self._tracker.metrics.add("PollErrors", carrier=message.carrier)
            logger.warning("poll failed", extra={"id": message.id, "reason": polled.error})
        else:
            summary.polled += 1
        if polled.changed_to:
            summary.changed[polled.changed_to] = summary.changed.get(polled.changed_to, 0) + 1
        summary.rescheduled += polled.rescheduled

    def _poll_and_apply(
        self, session: requests.Session, carrier: CarrierConfig, message: Message, now: datetime
    ) -> _Polled:
        try:
            receipt = self._poll_one(session, carrier, message)
        except PollError as exc:
            rescheduled = self._reschedule(message, now, polled=True)
            return _Polled(error=str(exc)[:200], rescheduled=rescheduled)
        return self._apply_poll(message, receipt, now)

    @staticmethod
    def _poll_one(session: requests.Session, carrier: CarrierConfig, message: Message) -> Receipt:
        fmt = get_format(carrier.format)
        poll = getattr(fmt, "poll", None)
        if poll is None:
            raise PollError(f"format {carrier.format} cannot be polled")
        try:
            receipt: Receipt = poll(session, carrier, message.gateway_id)
        except PollError:
            raise
        except Exception as exc:  # a carrier adapter must never stop the run
            raise PollError(f"{type(exc).__name__}") from exc
        return receipt

    def _apply_poll(self, message: Message, receipt: Receipt, now: datetime) -> _Polled:
        if receipt.status == message.status and receipt.gateway_status == message.gateway_status:
            # Nothing new: no history entry, just the next poll, later. A new carrier word for
            # the same status (IP2SMS `Pending` after `Accepted`) is recorded (SPEC 2.2).
            return _Polled(rescheduled=self._reschedule(message, now, polled=True))
        outcome = self._tracker.report(
            message.id,
            StatusReport(
                receipt.status,
                source=f"poll:{message.carrier}",
                gateway_status=receipt.gateway_status,
                gateway_error=receipt.gateway_error,
                description=receipt.description,
                at=receipt.at,
            ),
            known=message,
            set_fields={"poll_count": message.poll_count + 1},
        )
        if outcome is not None and outcome.changed:
            return _Polled(changed_to=str(outcome.message.status))
        if outcome is not None and not outcome.message.is_final:
            return _Polled(rescheduled=self._reschedule(outcome.message, now))
        return _Polled()


@dataclass(frozen=True, slots=True)
class _Polled:
    """What one poll did, counted by the run (workers do not share the summary)."""

    error: str = ""
    changed_to: str = ""
    rescheduled: bool = False


def _still_due(message: Message, now_epoch: int) -> bool:
    """Whether the message read is still due: an overlapping run may have moved its next check
    between this run's index query and its read, and acting on it again would re-queue twice."""
    return message.next_check_at is None or message.next_check_at <= now_epoch
