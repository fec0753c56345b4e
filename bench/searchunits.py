"""Read units of one search page (SPEC 3.4), over a Messages table of N messages in moto.

`python -m bench.searchunits [--messages 10000] [--limit 50]` stores N messages of three clients
(one number with `--hits` of them, the rest spread over other numbers) through the repository,
as intake does, then runs one page of each kind of search through `smsbridge.search.Search`:

- a client's search by number, and support staff's (every client's shards);
- a client's search by time, and support staff's.

It prints, per search, the Query and BatchGetItem calls, the units moto reports
(`ReturnConsumedCapacity`: moto charges 1 per Query and 1 per key read, whatever the size), and
the units DynamoDB bills, computed from the sizes of what was read: a Query costs 0.5 per 4 KB of
the entries it returns (eventually consistent index reads; an index entry is its key attributes
plus 100 bytes), a BatchGetItem 0.5 per item per 4 KB (eventually consistent). Neither figure
depends on how many messages the table holds: only key conditions are used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "shared") not in sys.path:
    sys.path.insert(0, str(ROOT / "shared"))

from smsbridge.config import AppConfig, ClientConfig, parse_config  # noqa: E402
from smsbridge.models import Message, iso  # noqa: E402
from smsbridge.repository import IndexPage, MessageRepository  # noqa: E402
from smsbridge.search import Search  # noqa: E402
from smsbridge.statuses import Status  # noqa: E402

NUMBER = "+380671234501"
INDEX_ENTRY_OVERHEAD = 100


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value as DynamoDB counts them."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = str(Decimal(str(inner)).normalize()).lstrip("-").replace(".", "")
        return math.ceil(len(digits) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in inner.items())
    return len(str(inner).encode())


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


@dataclass
class Recorded:
    queries: list[int] = field(default_factory=list)  # bytes returned per Query
    gets: list[int] = field(default_factory=list)  # bytes per item read
    moto_units: float = 0.0


class MeasuringRepository(MessageRepository):
    """The repository, recording what each search call read."""

    def __init__(self, client: Any, table: str, secret: str) -> None:
        super().__init__(client, table, search_secret=lambda: secret)
        self.dynamodb = client
        self.table = table
        self.recorded = Recorded()

    def search_index(self, index: str, key_name: str, partition: str, **kwargs: Any) -> IndexPage:
        page = super().search_index(index, key_name, partition, **kwargs)
        entry = len("id") + 32 + len(key_name) + len(partition) + len("inserted_at") + 24
        self.recorded.queries.append(len(page.entries) * (entry + INDEX_ENTRY_OVERHEAD))
        self.recorded.moto_units += page.read_units
        return page

    def read_messages(self, sms_ids: Iterable[str]) -> tuple[dict[str, Message], float]:
        found, units = super().read_messages(sms_ids)
        for sms_id in found:
            item = self.dynamodb.get_item(TableName=self.table, Key={"id": {"S": sms_id}})
            self.recorded.gets.append(item_size(item["Item"]))
        self.recorded.moto_units += units
        return found, units


def billed(recorded: Recorded) -> float:
    queries = sum(0.5 * math.ceil(size / 4096) for size in recorded.queries)
    return queries + sum(0.5 * math.ceil(size / 4096) for size in recorded.gets)


def _message(n: int, client: str, number: str, at: datetime) -> Message:
    statuses = (Status.DELIVERED, Status.DELIVERED, Status.UNDELIVERABLE, Status.ENROUTE)
    stamp = iso(at)
    return Message(
        id=f"{n:032x}",
        client=client,
        message_id=f"bench-{n}",
        phone_number=number,
        type="text",
        body="Your appointment is confirmed for tomorrow at 10:30. Reply STOP to opt out.",
        sender="SMSBRIDGE",
        carrier="ip2sms",
        segments=1,
        encoding="GSM-7",
        status=statuses[n % len(statuses)],
        description="delivered",
        gateway_id=f"gw-{n}",
        gateway_status="Delivered",
        status_changed_at=stamp,
        inserted_at=stamp,
        updated_at=stamp,
        submitted_at=stamp,
        history=[],
    )


def measure(messages: int, hits: int, limit: int) -> list[tuple[str, Recorded]]:
    import boto3
    from moto import mock_aws

    from local.cloudformation import deploy

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[key] = "testing"
    os.environ.pop("AWS_ENDPOINT_URL", None)
    documents = json.loads((ROOT / "local" / "config.json").read_text())
    secrets = json.loads((ROOT / "local" / "secrets.example.json").read_text())
    config: AppConfig = parse_config(documents, secrets)
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        resources = deploy(session, parameters={"PublicBaseUrl": "http://127.0.0.1:9"})
        table = resources.table_name("MessagesTable")
        dynamodb = session.client("dynamodb")
        repository = MeasuringRepository(dynamodb, table, config.search_index_secret)
        now = datetime.now(UTC)
        clients = ["demo", "partner", "ofsc"]

        def store(n: int) -> None:
            at = now - timedelta(seconds=(messages - n) * 30)
            if n % (messages // hits) == 0:
                message = _message(n, clients[(n // (messages // hits)) % 2], NUMBER, at)
            else:
                message = _message(n, clients[n % 3], f"+3806712{n % 100000:05d}", at)
            repository.create(message, next_check_at=None)

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(store, range(messages)))
        print(f"stored {messages} messages in {time.monotonic() - started:.0f}s", file=sys.stderr)
        clock = lambda: now + timedelta(seconds=1)  # noqa: E731
        search = Search(repository, config, clock)
        demo, support = config.clients["demo"], config.clients["support"]
        since = iso(now - timedelta(days=2))
        cases: list[tuple[str, ClientConfig, list[tuple[str, str]]]] = [
            ("client, by number", demo, [("to", NUMBER)]),
            ("support, by number", support, [("to", NUMBER)]),
            ("client, by time", demo, [("since", since)]),
            ("support, by time", support, [("since", since)]),
        ]
        results = []
        for name, viewer, params in cases:
            repository.recorded = Recorded()
            page = search.find(viewer, [*params, ("limit", str(limit))])
            results.append((f"{name} ({len(page.records)} records)", repository.recorded))
        return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.searchunits")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--hits", type=int, default=120, help="messages to the searched number")
    parser.add_argument("--limit", type=int, default=50)
    args = parser.parse_args(argv)
    print(f"one search page of {args.limit} over {args.messages} messages")
    print(f"{'search':40} {'queries':>7} {'items':>5} {'moto RCU':>8} {'billed RCU':>10}")
    for name, recorded in measure(args.messages, args.hits, args.limit):
        print(
            f"{name:40} {len(recorded.queries):7} {len(recorded.gets):5} "
            f"{recorded.moto_units:8.1f} {billed(recorded):10.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
