"""The only module that talks to DynamoDB: the Messages table and its item shapes.

Item kinds in the table (attribute `item_type`):
- `message`: one per (client, message_id) per route hop, keyed by smsbridge's id (`sms_id` in the
  code, attribute `id`; `message_id` is always the client's id).
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, get_type_hints

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from smsbridge import search_keys
from smsbridge.models import (
    CircuitRecord,
    HistoryEntry,
    Message,
    Origin,
    StatusReport,
    iso,
    plain,
)
from smsbridge.statuses import Status

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
#: Orphan receipts kept per carrier id at most (a carrier repeating itself cannot grow the item).
MAX_ORPHANS = 50
#: BatchGetItem takes at most 100 keys a call.
BATCH_GET_KEYS = 100
#: Tries of one BatchGetItem call while keys come back unprocessed; the first wait (seconds),
#: doubled at each retry and capped at 1 s.
BATCH_GET_ROUNDS = 8
BATCH_GET_BACKOFF = 0.05

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class MessageNotFound(LookupError):
    pass


class BatchReadIncomplete(RuntimeError):
    """DynamoDB left keys unprocessed through every retry (the table is throttled)."""

    def __init__(self, unprocessed: int) -> None:
        super().__init__(f"{unprocessed} keys still unprocessed after {BATCH_GET_ROUNDS} tries")


def open_shard_of(sms_id: str) -> str:
    return f"{zlib.crc32(sms_id.encode()) % OPEN_INDEX_SHARDS:02d}"


def log_partition_of(sms_id: str, inserted_at: str) -> str:
    return f"{inserted_at[:10]}#{zlib.crc32(sms_id.encode()) % LOG_INDEX_SHARDS}"


def gateway_key(carrier: str, gateway_id: str) -> str:
    return f"gw#{carrier}#{gateway_id}"


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """`linked` False: the carrier id belongs to `holder`, another message (nothing changed)."""

    linked: bool
    holder: str | None
    #: Receipts that waited for this link (only when `linked`).
    orphans: list[StatusReport] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OrphanQuota:
    """At most `limit` carrier ids of one carrier wait with orphan receipts (ORPHAN_LIMIT).

    Counted without a scan: one counter item per carrier and day (`orphans#{carrier}#{day}`,
    attribute `orphan_ids`) counts the ids that started waiting that day and were not linked
    since. An orphan lives `window_days` (its TTL), so the counters of today and the
    `window_days` days before it hold every id still waiting (and, near a day's end, a few that
    expired already: the count errs on the safe side). Earlier days only ever go down, so a
    conditional add to today's counter keeps the sum within `limit` under concurrent writers.
    """

    limit: int
    #: Today, in days since the epoch (UTC).
    day: int
    window_days: int
    #: TTL of today's counter item.
    expires_at: int
    #: The earlier days' count per carrier, read once per quota (it only ever goes down, so a
    #: copy read earlier errs on the safe side).
    earlier: dict[str, int] = field(default_factory=dict)


class OrphanLimitReached(Exception):
    """The carrier already has `OrphanQuota.limit` ids waiting: the receipt was not kept."""


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """`message` is set when the claim succeeded; otherwise `current` tells why it did not."""

    message: Message | None
    current: Message | None


def _to_av(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(value))


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


#: Message fields the mapping leaves out: poller bookkeeping, written only with the open index.
_NOT_MAPPED = frozenset({"next_check_at", "poll_count", "requeue_count"})
#: Stored only once set (an item without it reads as 0).
_OMITTED_WHEN_ZERO = frozenset({"status_seq"})
#: Read for a missing attribute where the field has no default of its own.
_MISSING: dict[str, Any] = {"type": "text"}
_FIELD_TYPES = get_type_hints(Message)
_MAPPED = tuple(f for f in fields(Message) if f.name not in _NOT_MAPPED)


#: What `originator.view_of` reads of a message (with `item_type` to tell messages apart).
VIEW_ATTRIBUTES = (
    "id",
    "item_type",
    "status",
    "message_id",
    "submitter_message_id",
    "forwarded_from",
    "forwarded_to",
    "description",
    "gateway_status",
    "status_changed_at",
    "delivered_at",
)
_VIEW_NAMES = {f"#{name}": name for name in VIEW_ATTRIBUTES}
_VIEW_PROJECTION = ", ".join(_VIEW_NAMES)
_STATUS_NAMES = {f"#{name}": name for name in ("id", "item_type", "status", "forwarded_to")}
_STATUS_PROJECTION = ", ".join(_STATUS_NAMES)


_READERS: dict[Any, Callable[[Any], Any]] = {
    str: str,
    int: int,
    int | None: int,
    bool: bool,
    Status: Status,
    Origin: lambda data: Origin(**data),
    list[HistoryEntry]: lambda entries: [HistoryEntry.from_dict(entry) for entry in entries],
}


def _missing(f: Field[Any]) -> Any:
    if f.name in _MISSING:
        return _MISSING[f.name]
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return _FIELD_TYPES[f.name]()


def message_to_item(message: Message) -> dict[str, Any]:
    """The item of a message: every field of the model by its own name (empty ones left out)."""
    data: dict[str, Any] = {"item_type": "message"}
    data.update({f.name: plain(getattr(message, f.name)) for f in _MAPPED})
    return {
        key: _to_av(value)
        for key, value in data.items()
        if value not in ("", None) and not (key in _OMITTED_WHEN_ZERO and value == 0)
    }


def message_from_item(item: dict[str, Any]) -> Message:
    data = _from_item(item)
    values = {
        f.name: _READERS[_FIELD_TYPES[f.name]](data[f.name]) if f.name in data else _missing(f)
        for f in fields(Message)
        if f.name not in ("id", "status")
    }
    return Message(id=data["id"], status=Status(data["status"]), **values)


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

    def request(self, condition: str) -> dict[str, Any]:
        """The UpdateItem arguments of this update, written only if `condition` holds."""
        return {
            "UpdateExpression": self.expression(),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }


@dataclass(frozen=True, slots=True)
class IndexPage:
    """One Query of a search index: (inserted_at, sms id) newest first, and whether more follow."""

    entries: list[tuple[str, str]]
    more: bool
    read_units: float


class MessageRepository:
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        search_secret: Callable[[], str] | None = None,
    ) -> None:
        self._client = client
        self._table = table_name
        self._conditional_failed = client.exceptions.ConditionalCheckFailedException
        #: The key of the number index's hashes (read when a message is created).
        self._search_secret = search_secret

    # --- messages -------------------------------------------------------------------------

    def _new_item(self, message: Message, next_check_at: int | None) -> dict[str, Any]:
        item = message_to_item(message)
        item["log_partition"] = _to_av(log_partition_of(message.id, message.inserted_at))
        secret = self._search_secret() if self._search_secret is not None else ""
        keys = search_keys.index_keys(secret, message.client, message.phone_number, message.id)
        item.update({key: _to_av(value) for key, value in keys.items()})
        if next_check_at is not None and not message.is_final:
            item["open_shard"] = _to_av(open_shard_of(message.id))
            item["next_check_at"] = _to_av(next_check_at)
        return item

    def create(self, message: Message, *, next_check_at: int | None) -> tuple[Message, bool]:
        """Store a new message once; a repeat returns the stored one and `created` False."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=self._new_item(message, next_check_at),
                ConditionExpression="attribute_not_exists(id)",
            )
        except self._conditional_failed:
            existing = self.get(message.id)
            if existing is None:  # pragma: no cover - deleted in between
                raise
            return existing, False
        return message, True

    def get(self, sms_id: str) -> Message | None:
        answer = self._client.get_item(
            TableName=self._table, Key={"id": {"S": sms_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None or item.get("item_type", {}).get("S") != "message":
            return None
        return message_from_item(item)

    def get_many(self, sms_ids: Iterable[str]) -> list[Message]:
        """Batch read; order not kept."""
        return [
            message_from_item(item)
            for item in self._batch_get(sms_ids)
            if item.get("item_type", {}).get("S") == "message"
        ]

    def get_views(self, sms_ids: Iterable[str]) -> dict[str, Message]:
        """The messages of `sms_ids` that exist, by id, with only `VIEW_ATTRIBUTES` read (the
        other fields hold their defaults): enough for `originator.view_of` and no more, so that
        a large batch of answers reads a fraction of each item. Batch reads, strongly consistent.
        """
        items = self._batch_get(sms_ids, _VIEW_PROJECTION, _VIEW_NAMES)
        return {
            item["id"]["S"]: message_from_item(item)
            for item in items
            if item.get("item_type", {}).get("S") == "message"
        }

    def statuses(self, sms_ids: Iterable[str]) -> dict[str, tuple[Status, str]]:
        """sms id -> (status, forwarded_to) of the messages that exist (batch reads of three
        attributes, strongly consistent)."""
        return {
            item["id"]["S"]: (
                Status(item["status"]["S"]),
                item.get("forwarded_to", {}).get("S", ""),
            )
            for item in self._batch_get(sms_ids, _STATUS_PROJECTION, _STATUS_NAMES)
            if item.get("item_type", {}).get("S") == "message" and "status" in item
        }

    def _batch_get(
        self, ids: Iterable[str], projection: str = "", names: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The items of `ids` (strongly consistent, `BATCH_GET_KEYS` a call); unprocessed keys
        are retried with a doubling back-off, `BATCH_GET_ROUNDS` times at most per call."""
        keys = [{"id": {"S": key}} for key in dict.fromkeys(ids)]
        while keys:
            chunk, keys = keys[:BATCH_GET_KEYS], keys[BATCH_GET_KEYS:]
            read: dict[str, Any] = {"Keys": chunk, "ConsistentRead": True}
            if projection:
                read["ProjectionExpression"] = projection
            if names:
                read["ExpressionAttributeNames"] = dict(names)
            request: dict[str, Any] = {self._table: read}
            for round_ in range(BATCH_GET_ROUNDS):
                answer = self._client.batch_get_item(RequestItems=request)
                yield from answer.get("Responses", {}).get(self._table, [])
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(BATCH_GET_BACKOFF * 2**round_, 1.0))
            else:
                raise BatchReadIncomplete(len(request[self._table]["Keys"]))

    def claim(self, sms_id: str, *, now: datetime, lease_seconds: int) -> ClaimOutcome:
        """Take a queued message for one submission try, so a second delivery of its record
        cannot submit it again while this one is under way."""
        epoch = int(now.timestamp())
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": sms_id}},
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
            return ClaimOutcome(None, self.get(sms_id))
        return ClaimOutcome(message_from_item(answer["Attributes"]), None)

    def release_claim(
        self,
        sms_id: str,
        *,
        now: datetime,
        error: str,
        next_check_at: int,
        refund_attempt: bool = False,
    ) -> None:
        """Give a queued message back after a transient failure (the record retries it).

        `refund_attempt`: the try never reached the carrier (its circuit is open), so it does
        not count against `SUBMIT_MAX_ATTEMPTS`.
        """
        update = "SET gateway_error = :error, updated_at = :now, next_check_at = :next"
        values = {
            ":error": {"S": error or "-"},
            ":now": {"S": iso(now)},
            ":next": {"N": str(next_check_at)},
            ":queued": {"S": Status.QUEUED.value},
        }
        if refund_attempt:
            update += ", attempts = attempts - :one"
            values[":one"] = {"N": "1"}
        with contextlib.suppress(self._conditional_failed):
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": sms_id}},
                UpdateExpression=update + " REMOVE claimed_until",
                ConditionExpression="#status = :queued",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )

    def update_if_unchanged(
        self,
        sms_id: str,
        *,
        expected: Message,
        set_fields: Mapping[str, Any],
        remove_fields: Iterable[str] = (),
        counters: Iterable[str] = (),
    ) -> Message | None:
        """Set and remove attributes of a message and add one to each of `counters`, if its
        status and history revision are still those of `expected`; the message after the write,
        None when another writer changed it first (or it is gone).

        Values are the model's (statuses, history entries); setting `next_check_at` puts the
        message in the open index, removing it takes the message out.
        """
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": sms_id}},
                ReturnValues="ALL_NEW",
                **self._unchanged_update(sms_id, expected, set_fields, remove_fields, counters),
            )
        except self._conditional_failed:
            return None
        return message_from_item(answer["Attributes"])

    def update_and_create(
        self,
        sms_id: str,
        *,
        expected: Message,
        set_fields: Mapping[str, Any],
        remove_fields: Iterable[str] = (),
        counters: Iterable[str] = (),
        create: Message,
        create_next_check_at: int | None,
    ) -> tuple[Message | None, bool]:
        """`update_if_unchanged` and `create` in one transaction (TransactWriteItems): both are
        written or neither, so a message is never left changed without the one it creates
        (SPEC 4.1: `forwarded` and its alternate). Returns the message after the write (None
        when another writer changed it first) and whether `create` was written now; when
        `create` already exists, only the update is written."""
        update = self._unchanged_update(sms_id, expected, set_fields, remove_fields, counters)
        writes: list[Any] = [
            {"Update": {"TableName": self._table, "Key": {"id": {"S": sms_id}}, **update}},
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._new_item(create, create_next_check_at),
                    "ConditionExpression": "attribute_not_exists(id)",
                }
            },
        ]
        try:
            self._client.transact_write_items(TransactItems=writes)
        except self._client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code", "") for r in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return None, False
            if reasons[1:2] != ["ConditionalCheckFailed"]:
                raise
            written = self.update_if_unchanged(
                sms_id,
                expected=expected,
                set_fields=set_fields,
                remove_fields=remove_fields,
                counters=counters,
            )
            return written, False
        return self.get(sms_id), True

    @staticmethod
    def _unchanged_update(
        sms_id: str,
        expected: Message,
        set_fields: Mapping[str, Any],
        remove_fields: Iterable[str],
        counters: Iterable[str],
    ) -> dict[str, Any]:
        """The arguments of an update of `set_fields`, `remove_fields` and `counters`, written
        only while the status and history revision are still those of `expected`."""
        update = _Update()
        for key, value in set_fields.items():
            update.set(key, plain(value))
        if "next_check_at" in set_fields:
            update.set("open_shard", open_shard_of(sms_id))
        removes = tuple(remove_fields)
        if removes:
            update.remove(*removes)
        if "next_check_at" in removes:
            update.remove("open_shard")
        for counter in counters:
            update.set_expression(
                f"#{counter} = if_not_exists(#{counter}, :zero) + :one",
                {f"#{counter}": counter},
                {":zero": 0, ":one": 1},
            )
        update.names["#status"] = "status"
        update.names["#history_rev"] = "history_rev"
        update.values[":expected_status"] = _to_av(str(expected.status))
        update.values[":expected_rev"] = _to_av(expected.history_rev)
        condition = "#status = :expected_status AND "
        if expected.history_rev:
            condition += "#history_rev = :expected_rev"
        else:
            condition += "(attribute_not_exists(#history_rev) OR #history_rev = :expected_rev)"
        return update.request(condition)

    def reschedule(
        self,
        sms_id: str,
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
        update.set("open_shard", open_shard_of(sms_id))
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
                TableName=self._table, Key={"id": {"S": sms_id}}, **update.request(condition)
            )
        except self._conditional_failed:
            return False
        return True

    def cancel(
        self, sms_id: str, *, now: datetime, source: str, return_message: bool = True
    ) -> tuple[bool, Message | None]:
        """Cancel a message that is still queued and not being submitted.

        (True, message) when cancelled (message None when `return_message` is False: the write
        then returns nothing); (False, current) when it is under processing or final;
        (False, None) when unknown.
        """
        entry = HistoryEntry(at=iso(now), status=Status.CANCELLED.value, source=source)
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": sms_id}},
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
                ReturnValues="ALL_NEW" if return_message else "NONE",
            )
        except self._conditional_failed:
            return False, self.get(sms_id)
        return True, message_from_item(answer["Attributes"]) if return_message else None

    def due_sms_ids(self, shard: str, *, now_epoch: int, limit: int) -> list[str]:
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

    def notified_seqs(self, sms_ids: Iterable[str]) -> dict[str, int]:
        """sms id -> the status number its originator was last told (0: none yet)."""
        return {
            item["id"]["S"]: int(item.get("notified_seq", {}).get("N", "0"))
            for item in self._batch_get(sms_ids, "id, notified_seq")
        }

    def mark_notified(self, sms_id: str, seq: int) -> bool:
        """Record that the originator heard status number `seq` (never moves backwards);
        False when a later one was recorded first or the message is gone."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": sms_id}},
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
        self, carrier: str, gateway_id: str, sms_id: str, *, expires_at: int
    ) -> LinkOutcome:
        """Point (carrier, gateway_id) at a message and hand over the receipts that arrived
        first.

        Conditional: a carrier id already linked to another message is never re-pointed (a
        receipt naming another message's id, by mistake or on purpose, must not move that
        message); the outcome then says which message holds the link. The receipts stay on the
        item (no more are added once it is linked) until its TTL: a link repeated because its
        answer was lost, or because the write that applies them failed, hands them over again,
        and applying a receipt twice changes nothing.
        """
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": gateway_key(carrier, gateway_id)}},
                UpdateExpression="SET item_type = :gateway, message_ref = :ref, expires_at = :ttl",
                ConditionExpression="attribute_not_exists(message_ref) OR message_ref = :ref",
                ExpressionAttributeValues={
                    ":gateway": {"S": "gateway"},
                    ":ref": {"S": sms_id},
                    ":ttl": {"N": str(expires_at)},
                },
                # The link leaves the orphans as they were: the item before it has them, and
                # tells whether this write is the one that ended the id's wait.
                ReturnValues="ALL_OLD",
            )
        except self._conditional_failed:
            return LinkOutcome(linked=False, holder=self.sms_id_for_gateway_id(carrier, gateway_id))
        before = _from_item(answer.get("Attributes", {}))
        orphans = [StatusReport.from_dict(dict(raw)) for raw in before.get("orphans", [])]
        if "message_ref" not in before and "orphan_day" in before:
            self._release_orphan_place(carrier, int(before["orphan_day"]))
        return LinkOutcome(linked=True, holder=sms_id, orphans=orphans)

    def sms_id_for_gateway_id(self, carrier: str, gateway_id: str) -> str | None:
        answer = self._client.get_item(
            TableName=self._table,
            Key={"id": {"S": gateway_key(carrier, gateway_id)}},
            ConsistentRead=True,
        )
        ref = answer.get("Item", {}).get("message_ref")
        return ref["S"] if ref else None

    def sms_ids_for_gateway_ids(self, carrier: str, gateway_ids: Iterable[str]) -> dict[str, str]:
        """gateway_id → sms id for the ids already linked (batch reads)."""
        prefix = len(gateway_key(carrier, ""))
        keys = (gateway_key(carrier, gid) for gid in gateway_ids)
        return {
            item["id"]["S"][prefix:]: item["message_ref"]["S"]
            for item in self._batch_get(keys, "id, message_ref")
            if "message_ref" in item
        }

    def store_orphan(
        self,
        carrier: str,
        gateway_id: str,
        report: StatusReport,
        *,
        expires_at: int,
        quota: OrphanQuota | None = None,
    ) -> str | None:
        """Keep a receipt for a carrier id not linked yet. If the link appeared meanwhile,
        store nothing and return the message id it points at.

        A carrier id that starts waiting takes a place in the carrier's `quota`
        (OrphanLimitReached when there is none); one that already waits takes the receipt
        (up to MAX_ORPHANS) without another. Orphans expire `expires_at`, counted from the
        first receipt of the id.
        """
        key = gateway_key(carrier, gateway_id)
        for _ in range(2):
            held = self._add_orphan(key, report)
            if held is None:
                return None
            if "message_ref" in held:
                return str(held["message_ref"]["S"])
            if "orphans" in held:
                logger.warning("orphan receipts of one carrier id at their limit; not kept")
                return None
            day = self._take_orphan_place(carrier, quota) if quota is not None else None
            if self._first_orphan(key, report, expires_at, day):
                return None
            if day is not None:  # another receipt for the id got there first
                self._release_orphan_place(carrier, day)
        return self.sms_id_for_gateway_id(carrier, gateway_id)

    def _add_orphan(self, key: str, report: StatusReport) -> dict[str, Any] | None:
        """Add a receipt to a carrier id that waits already; None when done, else the item as
        it is (empty when there is none)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression="SET orphans = list_append(orphans, :report)",
                ConditionExpression=(
                    "attribute_exists(orphans) AND attribute_not_exists(message_ref) "
                    "AND size(orphans) < :max"
                ),
                ExpressionAttributeValues={
                    ":report": _to_av([report.to_dict()]),
                    ":max": {"N": str(MAX_ORPHANS)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._conditional_failed as exc:
            item = exc.response.get("Item")
            return dict(item) if isinstance(item, dict) else {}
        return None

    def _first_orphan(
        self, key: str, report: StatusReport, expires_at: int, day: int | None
    ) -> bool:
        """Start a carrier id waiting with its first receipt (False: it waits or is linked)."""
        values: dict[str, Any] = {
            ":gateway": {"S": "gateway"},
            ":ttl": {"N": str(expires_at)},
            ":report": _to_av([report.to_dict()]),
        }
        update = "SET item_type = :gateway, expires_at = :ttl, orphans = :report"
        if day is not None:
            update += ", orphan_day = :day"
            values[":day"] = {"N": str(day)}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression=update,
                ConditionExpression=(
                    "attribute_not_exists(message_ref) AND attribute_not_exists(orphans)"
                ),
                ExpressionAttributeValues=values,
            )
        except self._conditional_failed:
            return False
        return True

    @staticmethod
    def _orphan_counter(carrier: str, day: int) -> str:
        return f"orphans#{carrier}#{day}"

    def _take_orphan_place(self, carrier: str, quota: OrphanQuota) -> int:
        """Count one more waiting carrier id today; OrphanLimitReached when the carrier has
        `quota.limit` waiting already."""
        waiting = quota.earlier.get(carrier)
        if waiting is None:
            earlier = (
                self._orphan_counter(carrier, quota.day - back)
                for back in range(1, quota.window_days + 1)
            )
            waiting = quota.earlier[carrier] = sum(
                int(item["orphan_ids"]["N"])
                for item in self._batch_get(earlier, "id, orphan_ids")
                if "orphan_ids" in item
            )
        room = quota.limit - waiting
        if room <= 0:
            raise OrphanLimitReached(carrier)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": self._orphan_counter(carrier, quota.day)}},
                UpdateExpression="SET item_type = :kind, expires_at = :ttl ADD orphan_ids :one",
                ConditionExpression="attribute_not_exists(orphan_ids) OR orphan_ids < :room",
                ExpressionAttributeValues={
                    ":kind": {"S": "orphan_quota"},
                    ":ttl": {"N": str(quota.expires_at)},
                    ":one": {"N": "1"},
                    ":room": {"N": str(room)},
                },
            )
        except self._conditional_failed:
            raise OrphanLimitReached(carrier) from None
        return quota.day

    def _release_orphan_place(self, carrier: str, day: int) -> None:
        """A carrier id counted on `day` waits no more (it was linked)."""
        with contextlib.suppress(self._conditional_failed):
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": self._orphan_counter(carrier, day)}},
                UpdateExpression="ADD orphan_ids :minus",
                ConditionExpression="orphan_ids > :zero",
                ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}},
            )

    # --- per-carrier rate windows ---------------------------------------------------------

    def take_rate_slot(
        self, carrier: str, window_start: int, limit: int, *, expires_at: int
    ) -> bool:
        """Count one submission in a carrier's window; False when the window is full."""
        return self._take(f"rate#{carrier}#{window_start}", "rate", limit, expires_at)

    def _take(self, item_id: str, kind: str, limit: int, expires_at: int) -> bool:
        """Add one to the counter item `item_id` unless it already holds `limit`; False when it
        does. One conditional `ADD`, so concurrent callers never take more than `limit` between
        them; the item expires (TTL) with its window."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": item_id}},
                UpdateExpression="SET item_type = :kind, expires_at = :ttl ADD taken :one",
                ConditionExpression="attribute_not_exists(taken) OR taken < :limit",
                ExpressionAttributeValues={
                    ":kind": {"S": kind},
                    ":ttl": {"N": str(expires_at)},
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                },
            )
        except self._conditional_failed:
            return False
        return True

    # --- search (SPEC 3.4) ------------------------------------------------------------------

    def search_index(
        self,
        index: str,
        key_name: str,
        partition: str,
        *,
        since: str,
        until: str,
        after: tuple[str, str] | None,
        limit: int,
    ) -> IndexPage:
        """Up to `limit` entries of one search index partition inserted in [since, until],
        newest first, after the entry `after` (its inserted_at and sms id): key conditions only
        (eventually consistent, as every index read is)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#pk = :pk AND inserted_at BETWEEN :since AND :until",
            "ExpressionAttributeNames": {"#pk": key_name},
            "ExpressionAttributeValues": {
                ":pk": {"S": partition},
                ":since": {"S": since},
                ":until": {"S": until},
            },
            "ScanIndexForward": False,
            "Limit": limit,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if after is not None:
            request["ExclusiveStartKey"] = {
                "id": {"S": after[1]},
                key_name: {"S": partition},
                "inserted_at": {"S": after[0]},
            }
        answer = self._client.query(**request)
        entries = [(item["inserted_at"]["S"], item["id"]["S"]) for item in answer.get("Items", [])]
        units = float(answer.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))
        return IndexPage(entries, "LastEvaluatedKey" in answer, units)

    def read_messages(self, sms_ids: Iterable[str]) -> tuple[dict[str, Message], float]:
        """The messages of `sms_ids` by id, eventually consistent (a search reads what the index
        read a moment ago), with the read units consumed."""
        found: dict[str, Message] = {}
        units = 0.0
        keys = [{"id": {"S": key}} for key in dict.fromkeys(sms_ids)]
        while keys:
            chunk, keys = keys[:100], keys[100:]
            request: dict[str, Any] = {self._table: {"Keys": chunk}}
            while request:
                answer = self._client.batch_get_item(
                    RequestItems=request, ReturnConsumedCapacity="TOTAL"
                )
                units += sum(
                    c.get("CapacityUnits", 0.0) for c in answer.get("ConsumedCapacity", [])
                )
                for item in answer.get("Responses", {}).get(self._table, []):
                    if item.get("item_type", {}).get("S") == "message":
                        message = message_from_item(item)
                        found[message.id] = message
                request = answer.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(0.05)
        return found, units

    def log_entries(self, since: str, until: str) -> Iterator[dict[str, Any]]:
        """SMS log entries (`LogByDay`: carrier, type, status, times) inserted in [since, until]:
        one Query per day partition and shard, never a Scan."""
        first, last = date.fromisoformat(since[:10]), date.fromisoformat(until[:10])
        for offset in range((last - first).days + 1):
            day = (first + timedelta(days=offset)).isoformat()
            for shard in range(LOG_INDEX_SHARDS):
                request: dict[str, Any] = {
                    "TableName": self._table,
                    "IndexName": LOG_INDEX,
                    "KeyConditionExpression": (
                        "log_partition = :p AND inserted_at BETWEEN :a AND :b"
                    ),
                    "ExpressionAttributeValues": {
                        ":p": {"S": f"{day}#{shard}"},
                        ":a": {"S": since},
                        ":b": {"S": until},
                    },
                }
                while True:
                    answer = self._client.query(**request)
                    yield from (_from_item(item) for item in answer.get("Items", []))
                    if "LastEvaluatedKey" not in answer:
                        break
                    request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def add_search_keys(self, message: Message, secret: str) -> bool:
        """Give a stored message its search index keys; False when it is gone."""
        keys = search_keys.index_keys(secret, message.client, message.phone_number, message.id)
        update = _Update()
        for key, value in keys.items():
            update.set(key, value)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": message.id}},
                **update.request("attribute_exists(id)"),
            )
        except self._conditional_failed:
            return False
        return True

    # --- sending-limit counters (SPEC 3.5) ------------------------------------------------

    def take_count(self, key: str, limit: int, *, expires_at: int) -> bool:
        """Take one of a sending limit's `limit` (SPEC 3.5); False when none is left."""
        return self._take(f"limit#{key}", "limit", limit, expires_at)

    def give_back_count(self, key: str) -> None:
        """Undo one `take_count` (the message it was taken for was not stored after all)."""
        with contextlib.suppress(self._conditional_failed):
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"limit#{key}"}},
                UpdateExpression="ADD taken :minus",
                ConditionExpression="taken > :zero",
                ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}},
            )

    # --- carrier circuits (SPEC 4.3) --------------------------------------------------------
    # One item per carrier, `circuit#{carrier}`. Written only when something changes (a failure,
    # an opening, a probe, a closing), never per successful submission: no hot key.

    def circuit(self, carrier: str) -> CircuitRecord | None:
        answer = self._client.get_item(
            TableName=self._table, Key={"id": {"S": f"circuit#{carrier}"}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else _circuit_of(carrier, item)

    def circuits(self, carriers: Iterable[str]) -> dict[str, CircuitRecord]:
        """The stored circuits of `carriers` (one batch read); a carrier never written is absent."""
        found: dict[str, CircuitRecord] = {}
        for item in self._batch_get(f"circuit#{carrier}" for carrier in carriers):
            carrier = str(item["id"]["S"]).removeprefix("circuit#")
            found[carrier] = _circuit_of(carrier, item)
        return found

    def count_circuit_failure(
        self, carrier: str, *, now: datetime, window_seconds: int
    ) -> CircuitRecord | None:
        """Count one carrier-unwell failure of a closed circuit; a window that has passed starts
        again at one. None when the circuit is not closed (failures then count nothing)."""
        epoch = int(now.timestamp())
        key = {"id": {"S": f"circuit#{carrier}"}}
        names = {"#state": "state"}
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="ADD failures :one",
                ConditionExpression="#state = :closed AND window_start >= :cutoff",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":closed": {"S": "closed"},
                    ":cutoff": {"N": str(epoch - window_seconds)},
                },
                ReturnValues="ALL_NEW",
            )
            return _circuit_of(carrier, answer["Attributes"])
        except self._conditional_failed:
            pass
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=(
                    "SET item_type = :kind, #state = :closed, failures = :one, "
                    "window_start = :epoch, since = if_not_exists(since, :now)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(#state) OR "
                    "(#state = :closed AND (attribute_not_exists(window_start) "
                    "OR window_start < :cutoff))"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":kind": {"S": "circuit"},
                    ":closed": {"S": "closed"},
                    ":one": {"N": "1"},
                    ":epoch": {"N": str(epoch)},
                    ":now": {"S": iso(now)},
                    ":cutoff": {"N": str(epoch - window_seconds)},
                },
                ReturnValues="ALL_NEW",
            )
        except self._conditional_failed:
            return None
        return _circuit_of(carrier, answer["Attributes"])

    def open_circuit(
        self, carrier: str, *, now: datetime, open_until: int, from_state: str, min_failures: int
    ) -> CircuitRecord | None:
        """Open a circuit that is `from_state` (closed with at least `min_failures` failures, or
        half-open after a failed probe). None when another invocation changed it first."""
        condition = "#state = :from"
        values: dict[str, Any] = {
            ":open": {"S": "open"},
            ":from": {"S": from_state},
            ":now": {"S": iso(now)},
            ":until": {"N": str(open_until)},
        }
        if from_state == "closed":
            condition += " AND failures >= :min"
            values[":min"] = {"N": str(min_failures)}
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"circuit#{carrier}"}},
                UpdateExpression="SET #state = :open, since = :now, open_until = :until",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._conditional_failed:
            return None
        return _circuit_of(carrier, answer["Attributes"])

    def take_circuit_probe(
        self, carrier: str, *, now: datetime, probe_until: int
    ) -> CircuitRecord | None:
        """Make an open circuit whose open time is over half-open, for one probe (or take over
        a probe whose lease ran out). The condition lets exactly one invocation win."""
        epoch = int(now.timestamp())
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"circuit#{carrier}"}},
                UpdateExpression="SET #state = :half, since = :now, probe_until = :until",
                ConditionExpression=(
                    "(#state = :open AND open_until <= :epoch) OR "
                    "(#state = :half AND probe_until <= :epoch)"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":half": {"S": "half-open"},
                    ":open": {"S": "open"},
                    ":now": {"S": iso(now)},
                    ":until": {"N": str(probe_until)},
                    ":epoch": {"N": str(epoch)},
                },
                ReturnValues="ALL_NEW",
            )
        except self._conditional_failed:
            return None
        return _circuit_of(carrier, answer["Attributes"])

    def close_circuit(self, carrier: str, *, now: datetime, from_state: str) -> bool:
        """Close a half-open circuit (its probe went through), or clear the failures of a closed
        one after a success. False when the circuit was not `from_state` (nothing written)."""
        condition = "#state = :from"
        values: dict[str, Any] = {
            ":from": {"S": from_state},
            ":closed": {"S": "closed"},
            ":zero": {"N": "0"},
        }
        update = "SET #state = :closed, failures = :zero, window_start = :zero"
        if from_state == "closed":
            condition += " AND failures > :zero"
        else:
            update += ", since = :now"
            values[":now"] = {"S": iso(now)}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": f"circuit#{carrier}"}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except self._conditional_failed:
            return False
        return True


def _circuit_of(carrier: str, item: dict[str, Any]) -> CircuitRecord:
    data = _from_item(item)
    return CircuitRecord(
        carrier=carrier,
        state=str(data.get("state", "closed")),
        since=str(data.get("since", "")),
        failures=int(data.get("failures", 0)),
        window_start=int(data.get("window_start", 0)),
        open_until=int(data.get("open_until", 0)),
        probe_until=int(data.get("probe_until", 0)),
    )
