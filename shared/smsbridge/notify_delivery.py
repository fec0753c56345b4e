"""Telling the originator, stage two: send a batch of notification jobs, none blocking another.

- OFSC jobs are grouped per client and endpoint into `set_message_status` calls of at most 100
  messages (one final per `message_id`: a later job of the same message replaces an earlier one).
  The answer is read per message: `OK` is done, `NOT FOUND` is logged and not retried; a SOAP
  Fault, an unreadable answer or an HTTP error retries the call.
- JSON jobs are POSTed signed (`smsbridge.webhook_signature`: the time of the try, the job's
  event id and the raw body under one HMAC); the jobs of one client message go out one after the
  other, in status order. A non-2xx answer, a time-out or
  a refused connection retries.
- Calls run concurrently (NOTIFY_CONCURRENCY), with short time-outs; once an endpoint timed out or
  refused the connection, the batch's other calls to it wait for their retry instead of another
  time-out. Each URL is checked (`smsbridge.callback_urls`) right before the call.
- A status is never told after a later one: `notified_seq` on the message only moves forward, and
  a job at or below it is dropped. An `all` job waits (re-queued) until the status before it was
  told, for at most NOTIFY_ORDER_WAIT_SECONDS.

The caller (the notify handler, through `settle`) applies each job's `Outcome` to the queue.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import smsbridge
from smsbridge import callback_urls, ofsc, webhook_signature
from smsbridge.config import AppConfig, ClientConfig, Settings
from smsbridge.models import parse_iso, utcnow
from smsbridge.notify import KIND_OFSC, Job
from smsbridge.repository import MessageRepository
from smsbridge.telemetry import MetricSink

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("smsbridge.notify")

MAX_BACKOFF_SECONDS = 3600
#: SQS caps a message's delay at 15 minutes.
MAX_DELAY_SECONDS = 900
#: How long a job waiting for the status before it stays away before it looks again.
ORDER_WAIT_STEP_SECONDS = 1
CONNECT_TIMEOUT_SECONDS = 3.05
USER_AGENT = f"smsbridge/{smsbridge.__version__}"


class Action(Enum):
    #: Finished: told, dropped as stale, or not retried (the record is deleted).
    DONE = "done"
    #: Try again after `delay` seconds (the record's visibility is changed).
    RETRY = "retry"
    #: Put back on the queue as a new record after `delay` seconds (not a failed try).
    REQUEUE = "requeue"
    #: Out of tries: into the dead-letter queue.
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    delay: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One queue record: its key, the job, and how many times it was received."""

    key: str
    job: Job
    attempt: int = 1


class Sender(Protocol):
    def post(
        self,
        url: str,
        *,
        data: bytes,
        headers: dict[str, str],
        timeout: tuple[float, float],
        allow_redirects: bool,
    ) -> requests.Response: ...


class _Failure(Exception):
    """A call that failed; `dead` says the endpoint timed out or refused the connection."""

    def __init__(self, reason: str, *, dead: bool = False, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dead = dead
        self.permanent = permanent


@dataclass
class _Unit:
    """Work for one worker: an OFSC call, or the jobs of one JSON client message in order."""

    kind: str
    client: ClientConfig
    url: str
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def backoff(settings: Settings, attempt: int) -> int:
    """Seconds before try `attempt + 1`: NOTIFY_BACKOFF_SECONDS doubling, capped at one hour."""
    exponent = min(max(attempt, 1) - 1, 20)
    return int(min(settings.notify_backoff_seconds * 2**exponent, MAX_BACKOFF_SECONDS))


def ofsc_endpoint(client: ClientConfig, job: Job) -> str:
    """The client's configured callback URL, else https://{app_host}:{app_port}{app_url}."""
    return callback_urls.ofsc_target(client.callback_url, job.app_host, job.app_port, job.app_url)


def _host(url: str) -> str:
    """What a log line may show of a URL (never its query string)."""
    return urlsplit(url).hostname or "-"


class Notifier:
    def __init__(
        self,
        settings: Settings,
        config: AppConfig,
        repository: MessageRepository,
        session: Sender,
        metrics: MetricSink,
        *,
        clock: Callable[[], datetime] = utcnow,
        resolver: callback_urls.Resolver | None = callback_urls.resolve,
    ) -> None:
        self.settings = settings
        self.config = config
        self.repository = repository
        self.session = session
        self.metrics = metrics
        self.clock = clock
        self.resolver = resolver
        self._lock = threading.Lock()
        self._told: dict[str, int] = {}
        self._dead: set[str] = set()

    # --- the batch ------------------------------------------------------------------------

    def deliver(
        self, deliveries: Sequence[Delivery], *, time_left: Callable[[], float] | None = None
    ) -> dict[str, Outcome]:
        """Send what the batch holds; an outcome for every delivery key."""
        outcomes: dict[str, Outcome] = {}
        self._dead = set()
        self._told = self.repository.notified_seqs({d.job.thread for d in deliveries})
        units: list[_Unit] = []
        ofsc_groups: dict[tuple[str, str], _Unit] = {}
        json_chains: dict[str, _Unit] = {}
        for delivery in sorted(deliveries, key=lambda d: (d.job.thread, d.job.seq)):
            job = delivery.job
            client = self.config.clients.get(job.client)
            if client is None:
                outcomes[delivery.key] = self._dropped(job, "unknown_client")
                continue
            if self._told.get(job.thread, 0) >= job.seq:
                outcomes[delivery.key] = Outcome(Action.DONE, reason="stale")
                continue
            if job.kind == KIND_OFSC:
                if client.workflow == "simple":
                    outcomes[delivery.key] = self._dropped(job, "simple_workflow")
                    continue
                url = ofsc_endpoint(client, job)
                if not url:
                    outcomes[delivery.key] = self._dropped(job, "no_endpoint")
                    continue
                unit = ofsc_groups.get((client.name, url))
                if unit is None:
                    unit = ofsc_groups[(client.name, url)] = _Unit(KIND_OFSC, client, url)
                unit.deliveries.append(delivery)
            else:
                chain = json_chains.get(job.thread)
                if chain is None:
                    chain = json_chains[job.thread] = _Unit(job.kind, client, job.callback_url)
                chain.deliveries.append(delivery)
        for unit in ofsc_groups.values():
            latest: dict[str, Delivery] = {}
            for delivery in unit.deliveries:  # sorted by seq: the last one stays
                earlier = latest.get(delivery.job.thread)
                if earlier is not None:
                    outcomes[earlier.key] = Outcome(Action.DONE, reason="superseded")
                latest[delivery.job.thread] = delivery
            chosen = list(latest.values())
            for start in range(0, len(chosen), ofsc.MAX_STATUS_UPDATES):
                units.append(
                    _Unit(
                        KIND_OFSC,
                        unit.client,
                        unit.url,
                        chosen[start : start + ofsc.MAX_STATUS_UPDATES],
                    )
                )
        units.extend(json_chains.values())
        if not units:
            return outcomes
        budget = self._call_seconds()
        workers = min(self.settings.notify_concurrency, len(units))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify") as pool:
            results = pool.map(lambda unit: self._run(unit, time_left, budget), units)
            for result in results:
                outcomes.update(result)
        return outcomes

    def _call_seconds(self) -> float:
        read = float(self.settings.notify_timeout_seconds)
        return min(CONNECT_TIMEOUT_SECONDS, read) + read

    def _timeout(self) -> tuple[float, float]:
        read = float(self.settings.notify_timeout_seconds)
        return min(CONNECT_TIMEOUT_SECONDS, read), read

    def _run(
        self, unit: _Unit, time_left: Callable[[], float] | None, budget: float
    ) -> dict[str, Outcome]:
        try:
            if time_left is not None and time_left() < budget + 1:
                return {d.key: Outcome(Action.RETRY, 1, "no_time_left") for d in unit.deliveries}
            if unit.kind == KIND_OFSC:
                return self._run_ofsc(unit)
            return self._run_chain(unit)
        except Exception:  # a bug must not lose the batch: everything in the unit retries
            logger.exception("notify unit failed")
            return {d.key: self._failed(d, "internal") for d in unit.deliveries}

    # --- outcomes -------------------------------------------------------------------------

    def _dropped(self, job: Job, reason: str) -> Outcome:
        logger.warning(
            "notification not sent", extra={"reason": reason, "message_id": job.message_id}
        )
        self.metrics.add("NotifyErrors", kind=job.kind, reason=reason)
        self._mark(job)
        return Outcome(Action.DONE, reason=reason)

    def _told_ok(self, job: Job) -> Outcome:
        self.metrics.add("NotifySent", kind=job.kind)
        self._mark(job)
        return Outcome(Action.DONE, reason="sent")

    def _failed(self, delivery: Delivery, reason: str) -> Outcome:
        job = delivery.job
        self.metrics.add("NotifyErrors", kind=job.kind, reason=reason)
        if delivery.attempt >= self.settings.notify_max_attempts:
            logger.error(
                "notification dead-lettered after %d tries",
                delivery.attempt,
                extra={"reason": reason, "message_id": job.message_id},
            )
            self.metrics.add("NotifyErrors", kind=job.kind, reason="dead_letter")
            return Outcome(Action.DEAD_LETTER, reason=reason)
        delay = backoff(self.settings, delivery.attempt)
        logger.warning(
            "notification failed; retried in %d s",
            delay,
            extra={"reason": reason, "message_id": job.message_id, "attempt": delivery.attempt},
        )
        return Outcome(Action.RETRY, delay, reason)

    def given_up(self, job: Job) -> None:
        """A dead-lettered job counts as told, so that the statuses after it may go out."""
        self._mark(job)

    def _mark(self, job: Job) -> None:
        with self._lock:
            if self._told.get(job.thread, 0) >= job.seq:
                return
            self._told[job.thread] = job.seq
        self.repository.mark_notified(job.thread, job.seq)

    def _told_seq(self, thread: str) -> int:
        with self._lock:
            return self._told.get(thread, 0)

    # --- calls ----------------------------------------------------------------------------

    def _check(self, unit: _Unit) -> None:
        """The URL may be called now (raises _Failure otherwise)."""
        if unit.endpoint in self._dead:
            raise _Failure("endpoint_down")
        try:
            allowed = unit.client.callback_hosts_allowed
            callback_urls.check(unit.url, allowed, resolver=self.resolver)
        except callback_urls.RefusedUrl:
            raise _Failure("refused_url", permanent=True) from None
        except callback_urls.UnresolvedHost:
            raise _Failure("unresolved") from None

    def _post(self, unit: _Unit, body: bytes, headers: dict[str, str]) -> requests.Response:
        import requests  # loaded by the session already; the stream stage never needs it

        self._check(unit)
        try:
            return self.session.post(
                unit.url,
                data=body,
                headers={"User-Agent": USER_AGENT, **headers},
                timeout=self._timeout(),
                allow_redirects=False,
            )
        except requests.Timeout:
            self._dead.add(unit.endpoint)
            raise _Failure("timeout", dead=True) from None
        except requests.ConnectionError:
            self._dead.add(unit.endpoint)
            raise _Failure("connection", dead=True) from None
        except requests.RequestException:
            raise _Failure("request") from None

    def _run_chain(self, unit: _Unit) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        blocked: Outcome | None = None
        for delivery in unit.deliveries:
            job = delivery.job
            if blocked is not None:
                # The status before it failed: this one waits its turn as a new record.
                outcomes[delivery.key] = Outcome(Action.REQUEUE, blocked.delay, "waiting")
                continue
            told = self._told_seq(job.thread)
            if told >= job.seq:
                outcomes[delivery.key] = Outcome(Action.DONE, reason="stale")
                continue
            if job.after > told and not self._waited_enough(job):
                outcomes[delivery.key] = Outcome(Action.REQUEUE, ORDER_WAIT_STEP_SECONDS, "order")
                blocked = outcomes[delivery.key]
                continue
            outcome = self._send_json(unit, delivery)
            outcomes[delivery.key] = outcome
            if outcome.action != Action.DONE:
                blocked = Outcome(outcome.action, max(outcome.delay, 1), outcome.reason)
        return outcomes

    def _waited_enough(self, job: Job) -> bool:
        if not job.queued_at:
            return True
        waited = (self.clock() - parse_iso(job.queued_at)).total_seconds()
        return waited >= self.settings.notify_order_wait_seconds

    def _send_json(self, unit: _Unit, delivery: Delivery) -> Outcome:
        job = delivery.job
        body = _json_bytes(job)
        headers = {
            "Content-Type": "application/json",
            webhook_signature.EVENT_ID_HEADER: job.event_id,
        }
        if unit.client.callback_secret:
            headers[webhook_signature.SIGNATURE_HEADER] = webhook_signature.sign(
                unit.client.callback_secret,
                job.event_id,
                body,
                int(self.clock().timestamp()),
            )
        try:
            answer = self._post(unit, body, headers)
        except _Failure as failure:
            if failure.permanent:
                return self._dropped(job, failure.reason)
            return self._failed(delivery, failure.reason)
        if 200 <= answer.status_code < 300:
            return self._told_ok(job)
        return self._failed(delivery, f"http_{answer.status_code // 100}xx")

    def _run_ofsc(self, unit: _Unit) -> dict[str, Outcome]:
        client = unit.client
        user = ofsc.make_user(
            client.login, client.company, client.password, self.clock(), client.auth_hash
        )
        updates = [_status_update(d.job) for d in unit.deliveries]
        body = ofsc.set_message_status_request(user, updates).encode("utf-8")
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "set_message_status"}
        try:
            answer = self._post(unit, body, headers)
            codes = _read_ofsc_answer(answer)
        except _Failure as failure:
            if failure.permanent:
                return {d.key: self._dropped(d.job, failure.reason) for d in unit.deliveries}
            return {d.key: self._failed(d, failure.reason) for d in unit.deliveries}
        outcomes: dict[str, Outcome] = {}
        for delivery in unit.deliveries:
            code = codes.get(delivery.job.message_id, "").upper()
            if code == ofsc.CODE_OK:
                outcomes[delivery.key] = self._told_ok(delivery.job)
            elif code == ofsc.CODE_NOT_FOUND:
                outcomes[delivery.key] = self._dropped(delivery.job, "not_found")
            else:
                outcomes[delivery.key] = self._failed(delivery, f"ofsc_{code or 'no_answer'}")
        return outcomes


def _json_bytes(job: Job) -> bytes:
    return json.dumps(job.callback_payload(), separators=(",", ":"), ensure_ascii=False).encode()


def _status_update(job: Job) -> ofsc.StatusUpdate:
    return ofsc.StatusUpdate(
        message_id=job.message_id,
        status=job.word,
        description=(job.description or None) if job.shows_description else None,
        sent=ofsc.format_now(parse_iso(job.sent)) if job.sent else None,
    )


def _read_ofsc_answer(answer: requests.Response) -> dict[str, str]:
    """message_id -> code of a set_message_status answer; a Fault or HTTP error is a _Failure."""
    http_error = f"http_{answer.status_code // 100}xx"
    try:
        codes = ofsc.parse_set_message_status_response(answer.content)
    except ofsc.OfscFault:
        raise _Failure("soap_fault") from None
    except Exception:
        ok = 200 <= answer.status_code < 300
        raise _Failure("bad_answer" if ok else http_error) from None
    if not 200 <= answer.status_code < 300:
        raise _Failure(http_error)
    return codes


# --- applying the outcomes to the queue -----------------------------------------------------


class NotifyQueueOps(Protocol):
    def retry_later(self, receipt_handle: str, seconds: int) -> None: ...

    def requeue(self, job: Job, delay: int) -> None: ...

    def dead_letter(self, job: Job, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class QueuedRecord:
    """A queue record as the handler hands it over (no event shapes below the handler)."""

    key: str
    receipt_handle: str
    body: str
    receive_count: int


def settle(
    notifier: Notifier,
    queue: NotifyQueueOps,
    records: Iterable[QueuedRecord],
    *,
    time_left: Callable[[], float] | None = None,
) -> list[str]:
    """Deliver a batch of queue records; the keys of the records that must stay on the queue."""
    deliveries: list[Delivery] = []
    handles: dict[str, str] = {}
    for record in records:
        try:
            job = Job.from_json(record.body)
        except ValueError:
            logger.error("dropping a record that is not a notify job")
            continue
        deliveries.append(Delivery(record.key, job, max(record.receive_count, 1)))
        handles[record.key] = record.receipt_handle
    jobs = {d.key: d.job for d in deliveries}
    failed: list[str] = []
    started = time.monotonic()
    outcomes = notifier.deliver(deliveries, time_left=time_left)
    for key, job in jobs.items():
        outcome = outcomes.get(key, Outcome(Action.RETRY, 1, "not_handled"))
        try:
            if outcome.action == Action.RETRY:
                queue.retry_later(handles[key], min(outcome.delay, MAX_BACKOFF_SECONDS))
                failed.append(key)
            elif outcome.action == Action.REQUEUE:
                queue.requeue(job, min(outcome.delay, MAX_DELAY_SECONDS))
            elif outcome.action == Action.DEAD_LETTER:
                queue.dead_letter(job, outcome.reason)
                notifier.given_up(job)
        except Exception:
            logger.exception("could not settle a notify record; it comes back")
            failed.append(key)
    logger.debug("notify batch of %d in %.2f s", len(jobs), time.monotonic() - started)
    return failed
