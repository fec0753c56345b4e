"""Finding messages (SPEC 3.4): a client's own messages, or every client's for support staff.

A search reads the search indexes (`smsbridge.search_keys`) with key conditions only: one Query
per partition of the scope (a number's or a client's shards; support staff: those of every
client), each newest first and at most one page long, merged newest first; then one
BatchGetItem for the page's messages. The filters (`status`, `carrier`, `type`) apply to what that
page read, so a filtered page may hold fewer than `limit` records (follow `next_cursor`), and no
request reads more than one page per partition, however large the table.

The cursor says where each partition stopped. It is signed (HMAC-SHA256 with a key derived from
the secrets document's `search_index_secret`) together with the viewer and the query it was issued
for, so a cursor that was altered, or that belongs to another query or another client, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from smsbridge import phone, search_keys
from smsbridge.config import MESSAGE_TYPES, AppConfig, ClientConfig
from smsbridge.models import Message, iso, sms_id_for
from smsbridge.repository import MessageRepository
from smsbridge.statuses import Status

PARAMETERS = ("to", "since", "until", "status", "carrier", "type", "limit", "cursor")
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=31)
#: Digits of a phone number support staff see (after the country code).
SUPPORT_DIGITS = 2
_LIMIT_TEXT = re.compile(r"^[0-9]{1,3}$")
_CURSOR_CONTEXT = b"smsbridge search cursor v1"
_EARLIEST, _LATEST = datetime(2000, 1, 1), datetime(9000, 1, 1)


class BadQuery(ValueError):
    """A search parameter that cannot be used: answered 400, naming the parameter."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


class SearchUnavailable(RuntimeError):
    """Search is not configured (no `search_index_secret` in the secrets document): 503."""


@dataclass(frozen=True, slots=True)
class Query:
    to: str | None
    since: str
    until: str
    status: str | None
    carrier: str | None
    type: str | None
    limit: int
    #: A digest of the parameters as given (without the cursor): what a cursor is bound to.
    binding: str


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    next_cursor: str | None
    #: Read units the page consumed (index queries and the message reads).
    read_units: float


def is_support(client: ClientConfig) -> bool:
    return client.kind == "support"


def record_view(message: Message, viewer: ClientConfig, *, history: bool) -> dict[str, Any]:
    """The record as `viewer` may see it: a support client's view is masked (the number's
    country code and last 2 digits, no body)."""
    view = message.public_view()
    if not history:
        view.pop("history", None)
        view.pop("history_dropped", None)
    if is_support(viewer):
        view["phone_number"] = phone.mask(message.phone_number, keep=SUPPORT_DIGITS)
        view.pop("body", None)
    return view


def _parse_time(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadQuery(name, "not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not _EARLIEST <= moment.replace(tzinfo=None) <= _LATEST:
        # Also keeps the time zone shift and the default span clear of datetime's year 1..9999.
        raise BadQuery(name, "out of range (years 2000 to 9000)")
    return moment.astimezone(UTC)


def parse_query(
    params: Sequence[tuple[str, str]], viewer: ClientConfig, config: AppConfig, now: datetime
) -> tuple[Query, str | None]:
    """The query and the cursor of a request's parameters; BadQuery for any it cannot use."""
    given: dict[str, str] = {}
    for name, value in params:
        if name not in PARAMETERS:
            raise BadQuery(name, f"unknown parameter; known: {', '.join(PARAMETERS)}")
        if name in given:
            raise BadQuery(name, "given more than once")
        given[name] = value
    to: str | None = None
    if given.get("to", "").strip():
        try:
            to = phone.to_e164(given["to"], viewer.default_country or None)
        except phone.InvalidNumber as exc:
            raise BadQuery("to", f"invalid phone number: {exc}") from None
    elif "since" not in given:
        raise BadQuery("to", "required unless since is given")
    until = _parse_time("until", given["until"]) if "until" in given else now
    since = _parse_time("since", given["since"]) if "since" in given else until - DEFAULT_SPAN
    if since > until:
        raise BadQuery("since", "after until")
    if until - since > MAX_SPAN:
        raise BadQuery("since", f"the range spans more than {MAX_SPAN.days} days")
    status = given.get("status") or None
    if status is not None and status not in {str(s) for s in Status}:
        raise BadQuery("status", f"unknown status; one of {', '.join(str(s) for s in Status)}")
    carrier = given.get("carrier") or None
    if carrier is not None and carrier not in config.carriers:
        raise BadQuery("carrier", "unknown carrier")
    kind = given.get("type") or None
    if kind is not None and kind not in MESSAGE_TYPES:
        raise BadQuery("type", f"unknown type; one of {', '.join(MESSAGE_TYPES)}")
    limit = DEFAULT_LIMIT
    if "limit" in given:
        if not _LIMIT_TEXT.match(given["limit"]) or not 1 <= int(given["limit"]) <= MAX_LIMIT:
            raise BadQuery("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(given["limit"])
    unbound = {name: value for name, value in sorted(given.items()) if name != "cursor"}
    binding = hashlib.sha256(json.dumps(unbound).encode()).hexdigest()
    query = Query(to, iso(since), iso(until), status, carrier, kind, limit, binding)
    return query, given.get("cursor")


# --- the cursor --------------------------------------------------------------------------------

#: A partition's place: not read yet, read to the end, or after (inserted_at, sms id).
Position = None | bool | tuple[str, str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    """Signs and checks cursors with a key derived from the search secret."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode("utf-8"), _CURSOR_CONTEXT, hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(
        self, viewer: str, query: Query, window: tuple[str, str], positions: list[Position]
    ) -> str:
        places = [p if isinstance(p, bool) or p is None else list(p) for p in positions]
        payload = json.dumps(
            {"v": viewer, "q": query.binding, "w": list(window), "p": places},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def read(
        self, cursor: str, viewer: str, query: Query, partitions: int
    ) -> tuple[tuple[str, str], list[Position]]:
        """The window and the positions of a cursor issued for this viewer and query."""
        refused = BadQuery("cursor", "not a cursor issued for this query")
        body, _, mac = cursor.partition(".")
        try:
            payload, signature = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise refused from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise refused
        data = json.loads(payload)
        if data.get("v") != viewer or data.get("q") != query.binding:
            raise refused
        places = data["p"]
        if len(places) != partitions:
            raise refused
        positions: list[Position] = [
            p if isinstance(p, bool) or p is None else (str(p[0]), str(p[1])) for p in places
        ]
        return (str(data["w"][0]), str(data["w"][1])), positions


# --- the search --------------------------------------------------------------------------------


class Search:
    def __init__(
        self, repository: MessageRepository, config: AppConfig, clock: Callable[[], datetime]
    ) -> None:
        self._repository = repository
        self._config = config
        self._clock = clock

    def _secret(self) -> str:
        secret = self._config.search_index_secret
        if not secret:
            raise SearchUnavailable("search is not configured: no search_index_secret in secrets")
        return secret

    def _scope(self, viewer: ClientConfig) -> list[str]:
        """The clients whose messages `viewer` may see."""
        if is_support(viewer):
            return sorted(c.name for c in self._config.clients.values() if not is_support(c))
        return [viewer.name]

    def _partitions(self, viewer: ClientConfig, query: Query) -> tuple[str, str, list[str]]:
        """(index, its partition key attribute, the partitions) a query reads."""
        scope = self._scope(viewer)
        if query.to is not None:
            secret = self._secret()
            parts = [p for c in scope for p in search_keys.number_partitions(secret, c, query.to)]
            return search_keys.NUMBER_INDEX, search_keys.NUMBER_KEY, parts
        parts = [p for c in scope for p in search_keys.time_partitions(c)]
        return search_keys.TIME_INDEX, search_keys.TIME_KEY, parts

    def find(self, viewer: ClientConfig, params: Sequence[tuple[str, str]]) -> Page:
        cursors = Cursors(self._secret())
        query, cursor = parse_query(params, viewer, self._config, self._clock())
        index, key_name, partitions = self._partitions(viewer, query)
        window = (query.since, query.until)
        positions: list[Position] = [None] * len(partitions)
        if cursor:
            window, positions = cursors.read(cursor, viewer.name, query, len(partitions))
        units = 0.0
        lists: list[list[tuple[str, str, int]]] = []
        more: list[bool] = []
        for number, (partition, position) in enumerate(zip(partitions, positions, strict=True)):
            if position is True:
                lists.append([])
                more.append(False)
                continue
            after = position if isinstance(position, tuple) else None
            page = self._repository.search_index(
                index,
                key_name,
                partition,
                since=window[0],
                until=window[1],
                after=after,
                limit=query.limit,
            )
            units += page.read_units
            lists.append([(at, sms_id, number) for at, sms_id in page.entries])
            more.append(page.more)
        merged = heapq.merge(*lists, key=lambda entry: entry[0], reverse=True)
        taken = [entry for _, entry in zip(range(query.limit), merged, strict=False)]
        consumed = [0] * len(partitions)
        for _, _, number in taken:
            consumed[number] += 1
        for number, entries in enumerate(lists):
            if positions[number] is True:
                continue
            if consumed[number] == len(entries) and not more[number]:
                positions[number] = True
            elif consumed[number]:
                at, sms_id, _ = entries[consumed[number] - 1]
                positions[number] = (at, sms_id)
        messages, read = self._repository.read_messages(sms_id for _, sms_id, _ in taken)
        units += read
        scope = set(self._scope(viewer))
        records = [
            record_view(message, viewer, history=False)
            for message in (messages.get(sms_id) for _, sms_id, _ in taken)
            if message is not None and message.client in scope and self._wanted(message, query)
        ]
        next_cursor = None
        if not all(position is True for position in positions):
            next_cursor = cursors.issue(viewer.name, query, window, positions)
        return Page(records, next_cursor, units)

    @staticmethod
    def _wanted(message: Message, query: Query) -> bool:
        return (
            (query.status is None or str(message.status) == query.status)
            and (query.carrier is None or message.carrier == query.carrier)
            and (query.type is None or message.type == query.type)
        )

    def read(self, client: str, message_id: str) -> Message | None:
        """Any client's message by its own id (support staff)."""
        if client not in self._config.clients:
            return None
        return self._repository.get(sms_id_for(client, message_id))
