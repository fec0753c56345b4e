"""Message intake: validate, store once per (client, message_id), queue, answer at once.

A well-formed message that cannot be sent (bad number, empty text, too many segments, unknown
sender, past its send time) is stored as `failed`/`expired` with a description; a repeated
request returns the stored message and queues nothing.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from smsbridge import bounds, callback_urls, limits, phone, text
from smsbridge.config import MESSAGE_TYPES, ClientConfig
from smsbridge.limits import LimitRefusal, SendingLimits
from smsbridge.models import HistoryEntry, Message, Origin, iso, sms_id_for
from smsbridge.statuses import Status
from smsbridge.tracking import StatusTracker

logger = logging.getLogger("smsbridge.intake")

OTP_TYPES = limits.OTP_TYPES

#: A client's `message_id`, in both APIs: 1 to 64 characters, none of them a control character
#: or a lone surrogate, no white space at either end. Any other character is allowed (space, `/`,
#: `?`, `%`, non-ASCII): paths carry it percent-encoded.
MESSAGE_ID_MAX = 64
#: Unicode categories refused in ids and texts: controls (C0, DEL, C1), surrogates, line and
#: paragraph separators. Text may still hold line breaks and tabs.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r")
#: Messages of one request are written this many at a time (DynamoDB puts are I/O-bound).
WRITE_CONCURRENCY = 16


def refused_char(value: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first control character (or lone surrogate) of `value` not in `allowed`, if any."""
    for char in value:
        if char not in allowed and unicodedata.category(char) in _REFUSED_CATEGORIES:
            return char
    return None


def message_id_problem(value: str) -> str | None:
    """Why `value` is not a usable client message_id (None when it is)."""
    if not 1 <= len(value) <= MESSAGE_ID_MAX:
        return f"message_id must be 1 to {MESSAGE_ID_MAX} characters"
    if value != value.strip():
        return "message_id must not start or end with white space"
    char = refused_char(value)
    if char is not None:
        return f"message_id must not contain control characters (U+{ord(char):04X})"
    return None


def text_problem(value: str) -> str | None:
    """Why a message text cannot be sent: a control character other than tab and line breaks."""
    char = refused_char(value, _TEXT_CONTROLS_ALLOWED)
    if char is not None:
        return f"text contains a control character (U+{ord(char):04X})"
    return None


def printable(value: str) -> str:
    """`value` without the characters refused in ids and texts (safe to store and log)."""
    if refused_char(value, _TEXT_CONTROLS_ALLOWED) is None:
        return value
    return "".join(
        char
        for char in value
        if char in _TEXT_CONTROLS_ALLOWED or unicodedata.category(char) not in _REFUSED_CATEGORIES
    )


def _concurrently[Item, Result](
    work: Callable[[Item], Result], items: Sequence[Item]
) -> list[Result]:
    """`work` on each item, in order; at most `WRITE_CONCURRENCY` at a time (I/O-bound calls)."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(min(WRITE_CONCURRENCY, len(items))) as pool:
        return list(pool.map(work, items))


@dataclass(frozen=True, slots=True)
class MessageRequest:
    """One message as a client hands it in (any protocol)."""

    to: str
    text: str
    message_id: str | None = None
    type: str = "text"
    sender: str | None = None
    country: str | None = None
    alternate_delivery: bool = False
    callback_url: str = ""
    callback_events: str = "final"
    validity_minutes: int | None = None
    send_to: datetime | None = None
    origin: Origin = field(default_factory=Origin)
    #: Set when the protocol layer already knows the message is invalid (e.g. unreadable body).
    invalid_reason: str = ""


class CallbackUrlRefused(ValueError):
    """A request's `callback_url` may not be called; nothing of the request was stored."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        #: Position of the message in the request.
        self.index = index
        self.reason = reason


class CancelResult(Enum):
    CANCELLED = "cancelled"
    UNDER_PROCESSING = "under_processing"
    NOT_FOUND = "not_found"


class Intake:
    def __init__(self, tracker: StatusTracker) -> None:
        self._repository = tracker.repository
        self._settings = tracker.settings
        self.config = tracker.config
        self._queue = tracker.queue
        self._metrics = tracker.metrics
        self._clock = tracker.clock
        self._lifecycle = tracker.lifecycle
        self._limits = SendingLimits(tracker.repository)

    def accept(
        self, client: ClientConfig, requests: Sequence[MessageRequest]
    ) -> list[Message | LimitRefusal]:
        """Store every message (once) and queue the new valid ones; answers in request order.

        A refused `callback_url` raises CallbackUrlRefused before anything is stored. A message
        over a counting limit (SPEC 3.5) is answered with a LimitRefusal and not stored; one to a
        destination the client may not reach is stored `failed`. Messages are written
        concurrently (at most `WRITE_CONCURRENCY` at a time) and queued in batches, so a request
        as large as the body limit allows answers in seconds. In a batch, a message already
        stored is answered as read by `MessageRepository.get_views` (the fields of the
        originator's view only) and counts nothing.
        """
        self._check_callback_urls(client, requests)
        now = self._clock()
        targets: dict[str, str] = {}
        built = [self._build(client, request, now, targets) for request in requests]
        messages = [message for message, _ in built]
        # A batch finds its repeats in batch reads first and writes only the new messages; the
        # writes stay conditional, so a repeat that races its first request is still stored once.
        known = self._repository.get_views(m.id for m in messages) if len(messages) > 1 else {}
        fresh = [message for message in messages if message.id not in known]
        counted = self._count(client, fresh, now)
        written = iter(
            _concurrently(lambda message: self._admit(message, counted.get(message.id), now), fresh)
        )
        results: list[tuple[Message | LimitRefusal, bool]] = [
            (known[message.id], False) if message.id in known else next(written)
            for message in messages
        ]
        answers: list[Message | LimitRefusal] = []
        to_queue: list[str] = []
        for (_, refused_by), (stored, created) in zip(built, results, strict=True):
            answers.append(stored)
            if isinstance(stored, LimitRefusal):
                self._metrics.add("LimitRefused", client=client.name, limit=stored.limit)
                continue
            if not created:
                continue
            if refused_by:
                self._metrics.add("LimitRefused", client=client.name, limit=refused_by)
            if stored.status == Status.QUEUED:
                to_queue.append(stored.id)
                self._metrics.add("MessagesAccepted", type=stored.type, carrier=stored.carrier)
            else:
                self._metrics.add("MessagesRejectedAtIntake", type=stored.type)
        if to_queue:
            try:
                not_queued = self._queue.enqueue(to_queue)
            except Exception:
                logger.exception("enqueue failed; the poller re-queues these messages")
                not_queued = to_queue
            if not_queued:
                logger.warning("%d messages not queued; the poller re-queues them", len(not_queued))
        return answers

    def _count(
        self, client: ClientConfig, messages: list[Message], now: datetime
    ) -> dict[str, Message | LimitRefusal | list[str]]:
        """Count the new messages against the client's counting limits, in request order.

        By message id: the stored message for a repeat (answered as before, counting nothing),
        the refusal for one over a limit, else the counters taken for it. Messages that count
        against no limit are left out.
        """
        candidates = [
            message
            for message in messages
            if message.status == Status.QUEUED and limits.counted(client, message.type)
        ]
        if not candidates:
            return {}
        outcome: dict[str, Message | LimitRefusal | list[str]] = {
            existing.id: existing
            for existing in self._repository.get_many(message.id for message in candidates)
        }
        for message in candidates:
            if message.id not in outcome:
                outcome[message.id] = self._limits.take(
                    client, message.message_id, message.phone_number, message.type, now
                )
        return outcome

    def _admit(
        self, message: Message, counted: Message | LimitRefusal | list[str] | None, now: datetime
    ) -> tuple[Message | LimitRefusal, bool]:
        """Store a message that `_count` let through (a repeat answers as before; a message over
        a limit is not stored)."""
        if isinstance(counted, Message | LimitRefusal):
            return counted, False
        stored, created = self._store(message, now)
        if counted and not created:  # the same message_id stored by a concurrent request
            self._limits.give_back(counted)
        return stored, created

    def _store(self, message: Message, now: datetime) -> tuple[Message, bool]:
        return self._repository.create(
            message, next_check_at=self._lifecycle.next_check(message, message.status, now)
        )

    def find(self, client: ClientConfig, message_id: str) -> Message | None:
        return self._repository.get(sms_id_for(client.name, message_id))

    def outcome(self, client: ClientConfig, message_id: str) -> Message | None:
        """The message whose status the originator hears: the alternate of a forwarded one."""
        message = self.find(client, message_id)
        return None if message is None else self.outcome_of(message)

    def outcome_of(self, message: Message) -> Message:
        """`message`, or its alternate when it was forwarded (see `smsbridge.originator`)."""
        if message.status == Status.FORWARDED and message.forwarded_to:
            return self._repository.get(message.forwarded_to) or message
        return message

    def outcomes_of(
        self, messages: Sequence[Message | LimitRefusal]
    ) -> list[Message | LimitRefusal]:
        """`outcome_of` each message, the alternates read in batches (their view fields only:
        `Repository.get_views`); a refusal stays as it is."""
        forwarded = [m for m in messages if isinstance(m, Message) and m.status == Status.FORWARDED]
        wanted = [m.forwarded_to for m in forwarded if m.forwarded_to]
        alternates = self._repository.get_views(wanted) if wanted else {}
        return [
            alternates.get(m.forwarded_to, m)
            if isinstance(m, Message) and m.status == Status.FORWARDED
            else m
            for m in messages
        ]

    def outcome_statuses(
        self, client: ClientConfig, message_ids: Sequence[str]
    ) -> list[Status | None]:
        """The status the originator hears of each message id, in order (None: unknown): the
        alternate's for a forwarded message. Batch reads of the status fields only."""
        sms_ids = [sms_id_for(client.name, message_id) for message_id in message_ids]
        found = self._repository.statuses(sms_ids)
        wanted = [to for status, to in found.values() if status == Status.FORWARDED and to]
        alternates = self._repository.statuses(wanted) if wanted else {}
        answers: list[Status | None] = []
        for sms_id in sms_ids:
            status, forwarded_to = found.get(sms_id, (None, ""))
            if status == Status.FORWARDED and forwarded_to in alternates:
                status = alternates[forwarded_to][0]
            answers.append(status)
        return answers

    @staticmethod
    def _check_callback_urls(client: ClientConfig, requests: Sequence[MessageRequest]) -> None:
        checked: set[str] = set()
        for index, request in enumerate(requests):
            url = request.callback_url
            if not url or url in checked:
                continue
            try:
                callback_urls.check(url, client.callback_hosts_allowed)
            except callback_urls.RefusedUrl as exc:
                raise CallbackUrlRefused(index, str(exc)) from None
            except callback_urls.UnresolvedHost:
                pass  # not resolvable now: notify checks it again before every call
            checked.add(url)

    @staticmethod
    def _ofsc_target_problem(
        client: ClientConfig, request: MessageRequest, checked: dict[str, str]
    ) -> str:
        """Why an OFSC message's status could not be told to its target ('' when it can be):
        the back office hears that at intake, as `failed`, instead of never hearing back."""
        origin = request.origin
        if origin.kind != "ofsc" or client.workflow == "simple":
            return ""
        url = callback_urls.ofsc_target(
            client.callback_url, origin.app_host, origin.app_port, origin.app_url
        )
        if not url:
            return ""
        if url not in checked:
            try:
                callback_urls.check(url, client.callback_hosts_allowed, what="callback target")
                checked[url] = ""
            except callback_urls.RefusedUrl as exc:
                checked[url] = str(exc)
            except callback_urls.UnresolvedHost:
                checked[url] = ""  # not resolvable now: notify checks it again before the call
        return checked[url]

    def cancel(self, client: ClientConfig, message_id: str) -> tuple[CancelResult, Message | None]:
        cancelled, message = self._repository.cancel(
            sms_id_for(client.name, message_id), now=self._clock(), source=f"client:{client.name}"
        )
        if cancelled:
            return CancelResult.CANCELLED, message
        if message is None:
            return CancelResult.NOT_FOUND, None
        return CancelResult.UNDER_PROCESSING, message

    def cancel_many(
        self, client: ClientConfig, message_ids: Sequence[str]
    ) -> list[tuple[CancelResult, Status | None]]:
        """`cancel` each message id, in order, with the status after the attempt (None: unknown).

        One batch read tells which messages are still queued; only those get the conditional
        write, `WRITE_CONCURRENCY` at a time (a message read as submitted or final can never be
        queued again, and an id read as unknown is answered unknown, as it would have been had
        the writes run one by one before a concurrent send stored it).
        """
        sms_ids = [sms_id_for(client.name, message_id) for message_id in message_ids]
        current = {sms_id: found[0] for sms_id, found in self._repository.statuses(sms_ids).items()}
        queued = [i for i in dict.fromkeys(sms_ids) if current.get(i) == Status.QUEUED]
        now, source = self._clock(), f"client:{client.name}"
        written = _concurrently(
            lambda sms_id: self._repository.cancel(
                sms_id, now=now, source=source, return_message=False
            ),
            queued,
        )
        after = dict(zip(queued, written, strict=True))
        answers: list[tuple[CancelResult, Status | None]] = []
        for sms_id in sms_ids:
            if sms_id in after:
                cancelled, message = after[sms_id]
                if cancelled:
                    answers.append((CancelResult.CANCELLED, Status.CANCELLED))
                    continue
                status = message.status if message else None
            else:
                status = current.get(sms_id)
            result = CancelResult.NOT_FOUND if status is None else CancelResult.UNDER_PROCESSING
            answers.append((result, status))
        return answers

    # --- building the record ----------------------------------------------------------------

    def _build(
        self,
        client: ClientConfig,
        request: MessageRequest,
        now: datetime,
        targets: dict[str, str] | None = None,
    ) -> tuple[Message, str]:
        """The record of one request, and the destination limit that made it `failed` ('')."""
        targets = {} if targets is None else targets
        client_message_id = request.message_id or uuid.uuid4().hex
        if message_id_problem(client_message_id):
            # The protocol layers refuse these before intake; never store one.
            raise ValueError(message_id_problem(client_message_id))
        message_type = printable(request.type or "text")
        problem = request.invalid_reason or text_problem(request.text) or ""
        problem = problem or self._ofsc_target_problem(client, request, targets)
        country = (request.country or client.default_country or "").upper() or None
        number = printable(request.to.strip())
        region = ""
        try:
            number = phone.to_e164(request.to, country)
            region = phone.region_of(number)
        except phone.InvalidNumber as exc:
            problem = problem or f"invalid phone number: {exc}"
        body = printable(request.text)
        if not problem and message_type not in MESSAGE_TYPES:
            problem = f"unknown type {message_type!r}; one of {', '.join(MESSAGE_TYPES)}"
        if not problem and not body.strip():
            problem = "empty text"
        segments = text.segments_of(body)
        if not problem and segments > text.MAX_SEGMENTS:
            problem = f"too many segments ({segments} > {text.MAX_SEGMENTS})"
        carrier_name = self.config.routes.carrier_for(number, message_type)
        carrier = self.config.carriers[carrier_name]
        sender = printable(request.sender or carrier.sender)
        if not problem and request.sender and request.sender not in client.senders:
            problem = f"unknown sender {request.sender!r}"
        refused_by = ""
        if not problem:
            refusal = limits.destination_refusal(self.config, client, number, region)
            if refusal is not None:
                refused_by, problem = refusal.limit, refusal.description
        status = Status.FAILED if problem else Status.QUEUED
        if not problem and request.send_to is not None and request.send_to <= now:
            status, problem = Status.EXPIRED, "send_to is already past"
        log_body = body
        if message_type in OTP_TYPES and not self._settings.store_otp_body:
            log_body = text.mask_digits(body)
        description = bounds.DESCRIPTION.cut(problem or "accepted")
        message = Message(
            id=sms_id_for(client.name, client_message_id),
            client=client.name,
            message_id=client_message_id,
            phone_number=number[:32],
            type=message_type[:32],
            body=bounds.TEXT.cut(log_body),
            sender=sender,
            carrier=carrier_name,
            segments=segments,
            encoding=text.encoding_of(body),
            status=status,
            inserted_at=iso(now),
            updated_at=iso(now),
            status_changed_at=iso(now),
            description=description,
            history=[
                HistoryEntry(
                    at=iso(now), status=str(status), source="intake", description=description
                )
            ],
            callback_url=request.callback_url,
            callback_events=request.callback_events,
            origin=request.origin,
            alternate_delivery=request.alternate_delivery,
            validity_minutes=request.validity_minutes,
            send_to=iso(request.send_to) if request.send_to else "",
            expires_at=int((now + timedelta(days=self._settings.message_ttl_days)).timestamp()),
            text=body if status == Status.QUEUED else "",
            country=region,
        )
        return message, refused_by
