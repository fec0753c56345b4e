"""The message record (the SMS log, SPEC 5) and the status reports that move it."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from smsbridge.statuses import Status


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, the one timestamp format of the table."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def sms_id_for(client: str, message_id: str, route_hop: int = 0) -> str:
    """smsbridge's id of a message: derived from (client, message_id), so creating it is idempotent.

    The alternate of a message (SPEC 4.1) is hop 1 of the same client message id. The id is also
    the carrier-side reference key, the same on every try of the message.
    """
    seed = f"{client}\n{message_id}\n{route_hop}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    #: The carrier's time of the event when it gave one, else when smsbridge recorded it.
    at: str
    status: str
    gateway_status: str = ""
    source: str = ""
    gateway_error: str = ""
    description: str = ""
    #: When smsbridge received it; set only when `at` is the carrier's own time.
    received_at: str = ""
    #: The carrier id the report was about, when it is not the message's own `gateway_id`
    #: (a carrier that forwards a message sends receipts under a new id).
    gateway_id: str = ""
    #: The new carrier id of a message the carrier forwarded by itself (Vibes `fwdToMessageId`).
    gateway_forwarded_to: str = ""
    #: The carrier id a forwarded message came from (Vibes `fwdFromMessageId`).
    gateway_forwarded_from: str = ""
    #: The operator that handled the message (Concepto Móvil `carrier`).
    operator: str = ""
    #: When the carrier says it sent the message (Concepto Móvil `sendDate`).
    sent_at: str = ""
    #: A carrier time that could not be read, as received (Vibes `receiptDate`).
    carrier_time_text: str = ""

    def to_dict(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(**{key: str(value) for key, value in data.items() if key in _ENTRY_FIELDS})

    def same_event(self, other: HistoryEntry) -> bool:
        """The same report again: status, carrier status, error, carrier time (and source)."""
        return (
            self.status == other.status
            and self.gateway_status == other.gateway_status
            and self.gateway_error == other.gateway_error
            and self.carrier_time == other.carrier_time
            and self.source == other.source
            and self.gateway_id == other.gateway_id
        )

    @property
    def carrier_time(self) -> str:
        return self.at if self.received_at else self.carrier_time_text


_ENTRY_FIELDS = frozenset(f.name for f in fields(HistoryEntry))


@dataclass(frozen=True, slots=True)
class Origin:
    """Who handed the message in and where its status goes back to."""

    kind: str = "json"
    app_host: str = ""
    app_port: str = ""
    app_url: str = ""

    def to_dict(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if value}


@dataclass(slots=True, kw_only=True)
class Message:
    """One message of the SMS log. The fields are in the order the JSON API shows them; the
    table's item holds each under its own name (`repository.message_to_item`)."""

    id: str
    client: str
    message_id: str
    phone_number: str
    type: str
    #: The SMS log's copy of the text (OTP digits masked unless STORE_OTP_BODY).
    body: str
    sender: str
    carrier: str
    segments: int
    encoding: str
    status: Status
    description: str = ""
    gateway_id: str = ""
    gateway_status: str = ""
    gateway_error: str = ""
    status_changed_at: str
    inserted_at: str
    updated_at: str
    submitted_at: str = ""
    delivered_at: str = ""
    attempts: int = 0
    history: list[HistoryEntry] = field(default_factory=list)
    #: How many history entries were dropped from the middle to keep the history bounded.
    history_dropped: int = 0
    #: The operator that handled the message, as the carrier reports it (Concepto Móvil).
    operator: str = ""
    forwarded_to: str = ""
    forwarded_from: str = ""
    submitter_message_id: str = ""
    callback_url: str = ""
    callback_events: str = "final"
    origin: Origin = field(default_factory=Origin)
    alternate_delivery: bool = False
    validity_minutes: int | None = None
    #: OFSC `send_to`: the latest send time (ISO), '' when none.
    send_to: str = ""
    # --- not shown by the JSON API (INTERNAL_FIELDS) ---
    #: TTL (epoch seconds).
    expires_at: int = 0
    #: The text to send; kept only while the message is open, removed when it is final.
    text: str = ""
    #: Region of the number (ISO 3166 alpha-2), for carriers that want it.
    country: str = ""
    #: Optimistic-lock counter of the history (each write of it adds one).
    history_rev: int = 0
    #: Poller bookkeeping: when the open message is next looked at, how often it was polled,
    #: and how often it was queued again while waiting for dispatch.
    next_check_at: int | None = None
    poll_count: int = 0
    requeue_count: int = 0
    #: Status changes so far (an alternate continues its original's count), so the statuses
    #: of one client message are numbered in the order they happened (notify orders by it).
    status_seq: int = 0

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def latest_send_time(self) -> datetime | None:
        """When a still-queued message must expire instead of going out late."""
        deadlines: list[datetime] = []
        if self.validity_minutes:
            deadlines.append(parse_iso(self.inserted_at) + timedelta(minutes=self.validity_minutes))
        if self.send_to:
            deadlines.append(parse_iso(self.send_to))
        return min(deadlines) if deadlines else None

    def public_view(self) -> dict[str, Any]:
        """The record as the JSON API shows it (no internal fields, no pending text)."""
        view: dict[str, Any] = {}
        for f in fields(self):
            value = plain(getattr(self, f.name))
            if f.name in INTERNAL_FIELDS or value in ("", None):
                continue
            if f.name == "history_dropped" and not value:
                continue
            view[f.name] = value
        return view


#: Fields of a message the JSON API does not show: bookkeeping and the pending text.
INTERNAL_FIELDS = frozenset(
    {
        "expires_at",
        "text",
        "country",
        "history_rev",
        "next_check_at",
        "poll_count",
        "requeue_count",
        "status_seq",
    }
)


def plain(value: Any) -> Any:
    """A model value as stored and shown: records as their dicts, statuses as their names."""
    if isinstance(value, HistoryEntry | Origin):
        return value.to_dict()
    if isinstance(value, list):
        return [plain(entry) for entry in value]
    if isinstance(value, Status):
        return str(value)
    return value


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A status for one message from any source: a receipt, a poll, dispatch or the poller."""

    status: Status
    #: Where it came from: "dispatch", "receipt:<carrier>", "poll:<carrier>", "poller", "api".
    source: str
    gateway_status: str = ""
    gateway_error: str = ""
    description: str = ""
    #: The carrier's time of the event; None: now.
    at: datetime | None = None
    forwarded_to: str = ""
    forwarded_from: str = ""
    #: Receipts only: the carrier id the receipt was for.
    gateway_id: str = ""
    #: Receipts only: the carrier's own forward (new carrier id) and the id it came from.
    gateway_forwarded_to: str = ""
    gateway_forwarded_from: str = ""
    operator: str = ""
    sent_at: str = ""
    carrier_time_text: str = ""

    def to_dict(self) -> dict[str, str]:
        """Every field by its own name (empty ones left out), `at` as ISO text."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["status"] = str(self.status)
        data["at"] = iso(self.at) if self.at else ""
        return {key: value for key, value in data.items() if value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusReport:
        at = data.get("at")
        values = {
            f.name: str(data.get(f.name, "")) for f in fields(cls) if f.name not in _REPORT_TYPED
        }
        return cls(status=Status(data["status"]), at=parse_iso(at) if at else None, **values)


#: StatusReport fields that are not plain text.
_REPORT_TYPED = frozenset({"status", "at"})


@dataclass(frozen=True, slots=True)
class CircuitRecord:
    """One carrier's circuit as stored (SPEC 4.3); `smsbridge.circuit` decides what it means."""

    carrier: str
    #: closed | open | half-open
    state: str = "closed"
    #: When the circuit entered `state` (ISO 8601 UTC; '' for a circuit never written).
    since: str = ""
    #: Consecutive carrier-unwell failures counted in the window that began at `window_start`.
    failures: int = 0
    window_start: int = 0
    #: Epoch seconds: when an open circuit may be probed.
    open_until: int = 0
    #: Epoch seconds: when a half-open circuit's probe lease ends (another may probe then).
    probe_until: int = 0
