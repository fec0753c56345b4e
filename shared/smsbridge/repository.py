"""The only module that talks to DynamoDB: the Messages table and its item shapes.

Item kinds in the table (attribute `item_type`):
- `message`: one per (client, message_id) per route hop, keyed by smsbridge's id.
- `gateway`: keyed `gw#{carrier}#{gateway_id}`; points at the message a carrier id belongs to, or
  holds receipts that arrived before the submission's answer (orphans). One strongly consistent
  item closes the race between a receipt and the dispatch that records the carrier id.

Open messages carry `open_shard` and `next_check_at`, the keys of the sparse index the poller reads;
both are removed when the message becomes final.
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from smsbridge.models import HistoryEntry, Message, Origin, StatusReport, iso
from smsbridge.statuses import Status, decide

logger = logging.getLogger("smsbridge.repository")

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

#: Partitions of the open-messages index: at ~280 new messages a second, each written to the index
#: a few times, 16 shards keep every partition far below DynamoDB's 1,000 writes a second.
OPEN_INDEX_SHARDS = 16
OPEN_INDEX = "OpenByNextCheck"
#: The SMS log by day (reports): partition `YYYY-MM-DD#n`, sorted by `inserted_at`.
LOG_INDEX = "LogByDay"
LOG_INDEX_SHARDS = 4
_MAX_APPLY_TRIES = 16
#: The history keeps its first entries (how the message started) and its latest ones; what lies
#: between is dropped and counted in `history_dropped`, so a carrier that repeats itself cannot
#: push the item towards DynamoDB's 400 KB limit. At most ~60 entries of at most ~1.5 KB.
HISTORY_HEAD = 10
HISTORY_TAIL = 50
#: Orphan receipts kept per carrier id at most (a carrier repeating itself cannot grow the item).
MAX_ORPHANS = 50
#: Longest text kept in one history entry field (carrier descriptions can be long).
HISTORY_FIELD_CHARS = 300

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

NextCheck = Callable[[Message, Status], int | None]
Transform = Callable[[Message, StatusReport], StatusReport]


class MessageNotFound(LookupError):
    pass


def open_shard_of(message_id: str) -> str:
    return f"{zlib.crc32(message_id.encode()) % OPEN_INDEX_SHARDS:02d}"


def log_partition_of(message_id: str, inserted_at: str) -> str:
    return f"{inserted_at[:10]}#{zlib.crc32(message_id.encode()) % LOG_INDEX_SHARDS}"


def gateway_key(carrier: str, gateway_id: str) -> str:
    return f"gw#{carrier}#{gateway_id}"


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    #: The message after the write.
    message: Message
    #: The message the decision was made on (it still holds the pending text).
    before: Message
    #: The report as applied (after any transform).
    report: StatusReport
    changed: bool
    #: How many reports brought a final that disagrees with the one held (`ConflictingFinal`).
    conflicts: int = 0

    @property
    def conflicting(self) -> bool:
        return self.conflicts > 0

    @property
    def previous(self) -> Status:
        return self.before.status


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """`linked` False: the carrier id belongs to `holder`, another message (nothing changed)."""

    linked: bool
    holder: str | None
    #: Receipts that waited for this link (only when `linked`).
    orphans: list[StatusReport] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """`message` is set when the claim succeeded; otherwise `current` tells why it did not."""

    message: Message | None
    current: Message | None


@dataclass(slots=True)
class _Fold:
    """What a run of reports does to one message: the attributes to set and the new history."""

    status: Status
    history: list[HistoryEntry]
    dropped: int
    last_report: StatusReport
    fields: dict[str, Any] = field(default_factory=dict)
    history_changed: bool = False
    conflicts: int = 0

    @property
    def writes(self) -> bool:
        return self.history_changed or bool(self.fields)


def history_entry(report: StatusReport, now: datetime, own_gateway_id: str = "") -> HistoryEntry:
    """The history entry of one report (long carrier texts cut to HISTORY_FIELD_CHARS)."""

    def cut(text: str) -> str:
        return text[:HISTORY_FIELD_CHARS]

    return HistoryEntry(
        at=iso(report.at or now),
        status=str(report.status),
        gateway_status=cut(report.gateway_status),
        source=report.source,
        gateway_error=cut(report.gateway_error),
        description=cut(report.description),
        received_at=iso(now) if report.at else "",
        gateway_id="" if report.gateway_id == own_gateway_id else cut(report.gateway_id),
        gateway_forwarded_to=cut(report.gateway_forwarded_to),
        gateway_forwarded_from=cut(report.gateway_forwarded_from),
        operator=cut(report.operator),
        sent_at=cut(report.sent_at),
        carrier_time_text=cut(report.carrier_time_text),
    )


def bounded(history: list[HistoryEntry], dropped: int) -> tuple[list[HistoryEntry], int]:
    """Keep the first HISTORY_HEAD and the latest HISTORY_TAIL entries; count the others."""
    excess = len(history) - HISTORY_HEAD - HISTORY_TAIL
    if excess <= 0:
        return history, dropped
    return history[:HISTORY_HEAD] + history[HISTORY_HEAD + excess :], dropped + excess


def _fold(
    current: Message,
    reports: Sequence[StatusReport],
    *,
    now: datetime,
    transform: Transform | None,
) -> _Fold:
    """Decide `reports` in order from `current`; pure (no I/O)."""
    plan = _Fold(
        status=current.status,
        history=list(current.history),
        dropped=current.history_dropped,
        last_report=reports[-1],
    )
    state = current
    for original in reports:
        report = transform(state, original) if transform else original
        plan.last_report = report
        decision = decide(plan.status, report.status)
        if decision.conflicting:
            plan.conflicts += 1
        entry = history_entry(report, now, current.gateway_id)
        repeat = any(entry.same_event(seen) for seen in plan.history)
        if not repeat or decision.changes:
            plan.history.append(entry)
            plan.history_changed = True
        if report.operator and report.operator != state.operator:
            plan.fields["operator"] = report.operator[:HISTORY_FIELD_CHARS]
            state = replace(state, operator=report.operator)
        if decision.new_status is None:
            continue
        new = decision.new_status
        plan.status = new
        fields = plan.fields
        fields["status"] = str(new)
        fields["status_changed_at"] = iso(report.at or now)
        fields["description"] = (report.description or str(new))[:HISTORY_FIELD_CHARS]
        if report.gateway_status:
            fields["gateway_status"] = report.gateway_status[:HISTORY_FIELD_CHARS]
        if report.gateway_error:
            fields["gateway_error"] = report.gateway_error[:HISTORY_FIELD_CHARS]
        if report.forwarded_to:
            fields["forwarded_to"] = report.forwarded_to
        if report.forwarded_from and not current.forwarded_from:
            fields["forwarded_from"] = report.forwarded_from
        if new == Status.DELIVERED:
            fields["delivered_at"] = iso(report.at or now)
        state = replace(state, status=new)
    if plan.history_changed:
        plan.history, plan.dropped = bounded(plan.history, plan.dropped)
    return plan


def _to_av(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(value))


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def message_to_item(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": message.id,
        "item_type": "message",
        "client": message.client,
        "message_id": message.message_id,
        "phone_number": message.phone_number,
        "type": message.type,
        "body": message.body,
        "sender": message.sender,
        "carrier": message.carrier,
        "segments": message.segments,
        "encoding": message.encoding,
        "status": str(message.status),
        "description": message.description,
        "gateway_id": message.gateway_id,
        "gateway_status": message.gateway_status,
        "gateway_error": message.gateway_error,
        "status_changed_at": message.status_changed_at,
        "inserted_at": message.inserted_at,
        "updated_at": message.updated_at,
        "submitted_at": message.submitted_at,
        "delivered_at": message.delivered_at,
        "attempts": message.attempts,
        "history": [entry.to_dict() for entry in message.history],
        "history_dropped": message.history_dropped,
        "history_rev": message.history_rev,
        "operator": message.operator,
        "forwarded_to": message.forwarded_to,
        "forwarded_from": message.forwarded_from,
        "submitter_message_id": message.submitter_message_id,
        "callback_url": message.callback_url,
        "callback_events": message.callback_events,
        "origin": message.origin.to_dict(),
        "alternate_delivery": message.alternate_delivery,
        "validity_minutes": message.validity_minutes,
        "send_to": message.send_to,
        "expires_at": message.expires_at,
        "text": message.text,
        "country": message.country,
        "status_seq": message.status_seq or None,
    }
    return {key: _to_av(value) for key, value in data.items() if value not in ("", None)}


def message_from_item(item: dict[str, Any]) -> Message:
    data = _from_item(item)
    return Message(
        id=data["id"],
        client=data.get("client", ""),
        message_id=data.get("message_id", ""),
        phone_number=data.get("phone_number", ""),
        type=data.get("type", "text"),
        body=data.get("body", ""),
        sender=data.get("sender", ""),
        carrier=data.get("carrier", ""),
        segments=int(data.get("segments", 0)),
        encoding=data.get("encoding", ""),
        status=Status(data["status"]),
        inserted_at=data.get("inserted_at", ""),
        updated_at=data.get("updated_at", ""),
        status_changed_at=data.get("status_changed_at", ""),
        description=data.get("description", ""),
        gateway_id=data.get("gateway_id", ""),
        gateway_status=data.get("gateway_status", ""),
        gateway_error=data.get("gateway_error", ""),
        submitted_at=data.get("submitted_at", ""),
        delivered_at=data.get("delivered_at", ""),
        attempts=int(data.get("attempts", 0)),
        history=[HistoryEntry.from_dict(entry) for entry in data.get("history", [])],
        history_dropped=int(data.get("history_dropped", 0)),
        history_rev=int(data.get("history_rev", 0)),
        operator=data.get("operator", ""),
        forwarded_to=data.get("forwarded_to", ""),
        forwarded_from=data.get("forwarded_from", ""),
        submitter_message_id=data.get("submitter_message_id", ""),
        callback_url=data.get("callback_url", ""),
        callback_events=data.get("callback_events", "final"),
        origin=Origin(**data.get("origin", {})),
        alternate_delivery=bool(data.get("alternate_delivery", False)),
        validity_minutes=int(data["validity_minutes"]) if "validity_minutes" in data else None,
        send_to=data.get("send_to", ""),
        expires_at=int(data.get("expires_at", 0)),
        text=data.get("text", ""),
        country=data.get("country", ""),
        next_check_at=int(data["next_check_at"]) if "next_check_at" in data else None,
        poll_count=int(data.get("poll_count", 0)),
        status_seq=int(data.get("status_seq", 0)),
    )


def message_from_image(image: dict[str, Any] | None) -> Message | None:
    """A message from a stream record's image (None for other item kinds or no image)."""
    if not image or image.get("item_type", {}).get("S") != "message" or "status" not in image:
        return None
    return message_from_item(image)


class _Update:
    """Collects the parts of one UpdateItem expression."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def set(self, attribute: str, value: Any) -> None:
        name, placeholder = f"#{attribute}", f":{attribute}"
        self.names[name] = attribute
        self.values[placeholder] = _to_av(value)
        self.sets.append(f"{name} = {placeholder}")

    def set_expression(
        self, expression: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        self.names.update(names)
        self.values.update({key: _to_av(value) for key, value in values.items()})
        self.sets.append(expression)

    def remove(self, *attributes: str) -> None:
        for attribute in attributes:
            self.names[f"#{attribute}"] = attribute
            self.removes.append(f"#{attribute}")

    def expression(self) -> str:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        return " ".join(parts)


class MessageRepository:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._conditional_failed = client.exceptions.ConditionalCheckFailedException

    # --- messages -------------------------------------------------------------------------

    def create(self, message: Message, *, next_check_at: int | None) -> tuple[Message, bool]:
        """Store a new message once; a repeat returns the stored one and `created` False."""
        item = message_to_item(message)
        item["log_partition"] = _to_av(log_partition_of(message.id, message.inserted_at))
        if next_check_at is not None and not message.is_final:
            item["open_shard"] = _to_av(open_shard_of(message.id))
            item["next_check_at"] = _to_av(next_check_at)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(id)",
            )
        except self._conditional_failed:
            existing = self.get(message.id)
            if existing is None:  # pragma: no cover - deleted in between
                raise
            return existing, False
        return message, True

    def get(self, message_id: str) -> Message | None:
        answer = self._client.get_item(
            TableName=self._table, Key={"id": {"S": message_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None or item.get("item_type", {}).get("S") != "message":
            return None
        return message_from_item(item)

    def get_many(self, message_ids: Iterable[str]) -> list[Message]:
        """Batch read (100 a call), unprocessed keys retried; order not kept."""
        pending = [{"id": {"S": mid}} for mid in dict.fromkeys(message_ids)]
        found: list[Message] = []
        while pending:
            chunk, pending = pending[:100], pending[100:]
            request: dict[str, Any] = {self._table: {"Keys": chunk, "ConsistentRead": True}}
            while request:
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    if item.get("item_type", {}).get("S") == "message":
                        found.append(message_from_item(item))
                request = answer.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.05)
        return found

    def claim(self, message_id: str, *, now: datetime, lease_seconds: int) -> ClaimOutcome:
        """Take a queued message for one submission try, so a second delivery of its record
        cannot submit it again while this one is under way."""
        epoch = int(now.timestamp())
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": message_id}},
                UpdateExpression=(
                    "SET attempts = if_not_exists(attempts, :zero) + :one, "
                    "claimed_until = :lease, updated_at = :now"
                ),
                ConditionExpression=(
                    "item_type = :message AND #status = :queued AND "
                    "(attribute_not_exists(claimed_until) OR claimed_until < :epoch)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":lease": {"N": str(epoch + lease_seconds)},
                    ":now": {"S": iso(now)},
                    ":message": {"S": "message"},
                    ":queued": {"S": Status.QUEUED.value},
                    ":epoch": {"N": str(epoch)},
                },
                ReturnValues="ALL_NEW",
            )
        except self._conditional_failed:
            return ClaimOutcome(None, self.get(message_id))
        return ClaimOutcome(message_from_item(answer["Attributes"]), None)

    def release_claim(
        self, message_id: str, *, now: datetime, error: str, next_check_at: int
    ) -> None:
        """Give a queued message back after a transient failure (the record retries it)."""
        with contextlib.suppress(self._conditional_failed):
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": message_id}},
                UpdateExpression=(
                    "SET gateway_error = :error, updated_at = :now, next_check_at = :next "
                    "REMOVE claimed_until"
                ),
                ConditionExpression="#status = :queued",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":error": {"S": error or "-"},
                    ":now": {"S": iso(now)},
                    ":next": {"N": str(next_check_at)},
                    ":queued": {"S": Status.QUEUED.value},
                },
            )

    def apply(
        self,
        message_id: str,
        report: StatusReport,
        *,
        now: datetime,
        known: Message | None = None,
        next_check: NextCheck | None = None,
        set_fields: dict[str, Any] | None = None,
        remove_fields: tuple[str, ...] = (),
        transform: Transform | None = None,
    ) -> ApplyOutcome | None:
        """Record a report in the history and move the status by the rules of SPEC 2.1.

        One report of `apply_many`; None when the message does not exist.
        """
        return self.apply_many(
            message_id,
            [report],
            now=now,
            known=known,
            next_check=next_check,
            set_fields=set_fields,
            remove_fields=remove_fields,
            transform=transform,
        )

    def apply_many(
        self,
        message_id: str,
        reports: Sequence[StatusReport],
        *,
        now: datetime,
        known: Message | None = None,
        next_check: NextCheck | None = None,
        set_fields: dict[str, Any] | None = None,
        remove_fields: tuple[str, ...] = (),
        transform: Transform | None = None,
    ) -> ApplyOutcome | None:
        """Apply reports in order with one conditional write (SPEC 2.1).

        Each report is decided on the status the ones before it left. A report identical to one
        already in the history (status, carrier status, error, carrier time, source) that moves
        nothing adds no entry; the history keeps its first `HISTORY_HEAD` and latest
        `HISTORY_TAIL` entries and counts the rest in `history_dropped`. When nothing changes,
        nothing is written. The write is conditional on the status and the history revision it
        was decided from; when another writer got there first, everything is decided again on
        the fresh state. `next_check` gives the index time for a message that stays open;
        `transform` may rewrite a report from the current state (alternate delivery turns a
        failure into `forwarded`). None when the message does not exist.
        """
        current = known
        for _ in range(_MAX_APPLY_TRIES):
            if current is None:
                current = self.get(message_id)
                if current is None:
                    return None
            plan = _fold(current, reports, now=now, transform=transform)
            if not plan.writes and not set_fields and not remove_fields:
                return ApplyOutcome(
                    message=current,
                    before=current,
                    report=plan.last_report,
                    changed=False,
                    conflicts=plan.conflicts,
                )
            update = _Update()
            if plan.history_changed:
                update.set("history", [entry.to_dict() for entry in plan.history])
                update.set("history_dropped", plan.dropped)
            update.set_expression(
                "#history_rev = if_not_exists(#history_rev, :zero_rev) + :one_rev",
                {"#history_rev": "history_rev"},
                {":zero_rev": 0, ":one_rev": 1},
            )
            update.set("updated_at", iso(now))
            for key, value in (set_fields or {}).items():
                update.set(key, value)
            if remove_fields:
                update.remove(*remove_fields)
            for key, value in plan.fields.items():
                update.set(key, value)
            new = plan.status
            if new != current.status:
                # One write is one status change on the stream: notify orders by this number.
                update.set_expression(
                    "#status_seq = if_not_exists(#status_seq, :zero_seq) + :one_seq",
                    {"#status_seq": "status_seq"},
                    {":zero_seq": 0, ":one_seq": 1},
                )
                if new.is_final:
                    update.remove("open_shard", "next_check_at", "text", "claimed_until")
                elif next_check is not None:
                    due = next_check(current, new)
                    if due is not None:
                        update.set("next_check_at", due)
                        update.set("open_shard", open_shard_of(message_id))
            update.names["#status"] = "status"
            update.values[":current"] = _to_av(str(current.status))
            update.values[":rev"] = _to_av(current.history_rev)
            condition = "#status = :current AND "
            if current.history_rev:
                condition += "#history_rev = :rev"
            else:
                condition += "(attribute_not_exists(#history_rev) OR #history_rev = :rev)"
            try:
                answer = self._client.update_item(
                    TableName=self._table,
                    Key={"id": {"S": message_id}},
                    UpdateExpression=update.expression(),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=update.names,
                    ExpressionAttributeValues=update.values,
                    ReturnValues="ALL_NEW",
                )
            except self._conditional_failed:
                current = None
                continue
            return ApplyOutcome(
                message=message_from_item(answer["Attributes"]),
                before=current,
                report=plan.last_report,
                changed=new != current.status,
                conflicts=plan.conflicts,
            )
        raise RuntimeError(f"status of {message_id} kept changing; report not applied")

    def reschedule(
        self,
        message_id: str,
        *,
        expected: Status,
        next_check_at: int,
        expected_next_check: int | None = None,
        **fields: Any,
    ) -> bool:
        """Move an open message's next check (and set poll bookkeeping) if its status is still
        `expected` (and, when given, its next check still `expected_next_check`, so that of two
        overlapping poller runs only one acts); False when it changed meanwhile."""
        update = _Update()
        update.set("next_check_at", next_check_at)
        update.set("open_shard", open_shard_of(message_id))
        for key, value in fields.items():
            update.set(key, value)
        update.names["#status"] = "status"
        update.values[":expected"] = _to_av(str(expected))
        condition = "#status = :expected"
        if expected_next_check is not None:
            update.values[":expected_next"] = _to_av(expected_next_check)
            condition += " AND #next_check_at = :expected_next"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": message_id}},
                UpdateExpression=update.expression(),
                ConditionExpression=condition,
                ExpressionAttributeNames=update.names,
                ExpressionAttributeValues=update.values,
            )
        except self._conditional_failed:
            return False
        return True

    def cancel(self, message_id: str, *, now: datetime, source: str) -> tuple[bool, Message | None]:
        """Cancel a message that is still queued and not being submitted.

        (True, message) when cancelled; (False, current) when it is under processing or final;
        (False, None) when unknown.
        """
        entry = HistoryEntry(at=iso(now), status=Status.CANCELLED.value, source=source)
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": message_id}},
                UpdateExpression=(
                    "SET #status = :cancelled, status_changed_at = :now, updated_at = :now, "
                    "description = :description, "
                    "status_seq = if_not_exists(status_seq, :zero) + :one, "
                    "#history = list_append(if_not_exists(#history, :empty), :entry) "
                    "REMOVE open_shard, next_check_at, #text, claimed_until"
                ),
                ConditionExpression=(
                    "item_type = :message AND #status = :queued AND "
                    "(attribute_not_exists(claimed_until) OR claimed_until < :epoch)"
                ),
                ExpressionAttributeNames={
                    "#status": "status",
                    "#history": "history",
                    "#text": "text",
                },
                ExpressionAttributeValues={
                    ":cancelled": {"S": Status.CANCELLED.value},
                    ":now": {"S": iso(now)},
                    ":description": {"S": "cancelled by the originator"},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":empty": {"L": []},
                    ":entry": _to_av([entry.to_dict()]),
                    ":message": {"S": "message"},
                    ":queued": {"S": Status.QUEUED.value},
                    ":epoch": {"N": str(int(now.timestamp()))},
                },
                ReturnValues="ALL_NEW",
            )
        except self._conditional_failed:
            return False, self.get(message_id)
        return True, message_from_item(answer["Attributes"])

    def due_message_ids(self, shard: str, *, now_epoch: int, limit: int) -> list[str]:
        """Open messages of one index shard whose next check is due (eventually consistent)."""
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "open_shard = :shard AND next_check_at <= :now",
            "ExpressionAttributeValues": {":shard": {"S": shard}, ":now": {"N": str(now_epoch)}},
        }
        while len(ids) < limit:
            answer = self._client.query(Limit=limit - len(ids), **kwargs)
            ids.extend(item["id"]["S"] for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                break
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return ids

    # --- notify bookkeeping ---------------------------------------------------------------

    def notified_seqs(self, message_ids: Iterable[str]) -> dict[str, int]:
        """message id -> the status number its originator was last told (0: none yet)."""
        keys = [{"id": {"S": mid}} for mid in dict.fromkeys(message_ids)]
        found: dict[str, int] = {}
        while keys:
            chunk, keys = keys[:100], keys[100:]
            request: dict[str, Any] = {
                self._table: {
                    "Keys": chunk,
                    "ConsistentRead": True,
                    "ProjectionExpression": "id, notified_seq",
                }
            }
            while request:
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    found[item["id"]["S"]] = int(item.get("notified_seq", {}).get("N", "0"))
                request = answer.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.05)
        return found

    def mark_notified(self, message_id: str, seq: int) -> bool:
        """Record that the originator heard status number `seq` (never moves backwards);
        False when a later one was recorded first or the message is gone."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": message_id}},
                UpdateExpression="SET notified_seq = :seq",
                ConditionExpression=(
                    "attribute_exists(id) AND "
                    "(attribute_not_exists(notified_seq) OR notified_seq < :seq)"
                ),
                ExpressionAttributeValues={":seq": {"N": str(seq)}},
            )
        except self._conditional_failed:
            return False
        return True

    # --- carrier ids and orphan receipts --------------------------------------------------

    def link_gateway_id(
        self, carrier: str, gateway_id: str, message_id: str, *, expires_at: int
    ) -> LinkOutcome:
        """Point (carrier, gateway_id) at a message and take the receipts that arrived first.

        Conditional: a carrier id already linked to another message is never re-pointed (a
        receipt naming another message's id, by mistake or on purpose, must not move that
        message); the outcome then says which message holds the link.
        """
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": gateway_key(carrier, gateway_id)}},
                UpdateExpression=(
                    "SET item_type = :gateway, message_ref = :ref, expires_at = :ttl REMOVE orphans"
                ),
                ConditionExpression="attribute_not_exists(message_ref) OR message_ref = :ref",
                ExpressionAttributeValues={
                    ":gateway": {"S": "gateway"},
                    ":ref": {"S": message_id},
                    ":ttl": {"N": str(expires_at)},
                },
                ReturnValues="ALL_OLD",
            )
        except self._conditional_failed:
            return LinkOutcome(
                linked=False, holder=self.message_for_gateway_id(carrier, gateway_id)
            )
        old = _from_item(answer.get("Attributes", {}))
        orphans = [StatusReport.from_dict(dict(raw)) for raw in old.get("orphans", [])]
        return LinkOutcome(linked=True, holder=message_id, orphans=orphans)

    def message_for_gateway_id(self, carrier: str, gateway_id: str) -> str | None:
        answer = self._client.get_item(
            TableName=self._table,
            Key={"id": {"S": gateway_key(carrier, gateway_id)}},
            ConsistentRead=True,
        )
        ref = answer.get("Item", {}).get("message_ref")
        return ref["S"] if ref else None

    def message_ids_for_gateway_ids(
        self, carrier: str, gateway_ids: Iterable[str]
    ) -> dict[str, str]:
        """gateway_id → message id for the ids already linked (batch reads)."""
        keys = [{"id": {"S": gateway_key(carrier, gid)}} for gid in dict.fromkeys(gateway_ids)]
        found: dict[str, str] = {}
        prefix = len(gateway_key(carrier, ""))
        while keys:
            chunk, keys = keys[:100], keys[100:]
            request: dict[str, Any] = {
                self._table: {
                    "Keys": chunk,
                    "ConsistentRead": True,
                    "ProjectionExpression": "id, message_ref",
                }
            }
            while request:
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    if "message_ref" in item:
                        found[item["id"]["S"][prefix:]] = item["message_ref"]["S"]
                request = answer.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.05)
        return found

    def store_orphan(
        self, carrier: str, gateway_id: str, report: StatusReport, *, expires_at: int
    ) -> str | None:
        """Keep a receipt for a carrier id not linked yet. If the link appeared meanwhile,
        store nothing and return the message id it points at."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": gateway_key(carrier, gateway_id)}},
                UpdateExpression=(
                    "SET item_type = :gateway, expires_at = :ttl, "
                    "orphans = list_append(if_not_exists(orphans, :empty), :report)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(message_ref) AND "
                    "(attribute_not_exists(orphans) OR size(orphans) < :max)"
                ),
                ExpressionAttributeValues={
                    ":gateway": {"S": "gateway"},
                    ":ttl": {"N": str(expires_at)},
                    ":empty": {"L": []},
                    ":report": _to_av([report.to_dict()]),
                    ":max": {"N": str(MAX_ORPHANS)},
                },
            )
        except self._conditional_failed:
            linked = self.message_for_gateway_id(carrier, gateway_id)
            if linked is None:
                logger.warning("orphan receipts of one carrier id at their limit; not kept")
            return linked
        return None

    # --- per-carrier rate windows ---------------------------------------------------------

    def take_rate_slot(
        self, carrier: str, window_start: int, limit: int, *, expires_at: int
    ) -> bool:
        """Count one submission in a carrier's window; False when the window is full."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"rate#{carrier}#{window_start}"}},
                UpdateExpression="SET item_type = :rate, expires_at = :ttl ADD taken :one",
                ConditionExpression="attribute_not_exists(taken) OR taken < :limit",
                ExpressionAttributeValues={
                    ":rate": {"S": "rate"},
                    ":ttl": {"N": str(expires_at)},
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                },
            )
        except self._conditional_failed:
            return False
        return True
