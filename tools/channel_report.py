"""SMS channel report from the Messages table (the SMS log): delivery rate and time to delivered.

Reads the table through its `LogByDay` index, one Query per day partition and shard
(`YYYY-MM-DD#n`, sorted by `inserted_at`), never a Scan, and prints per carrier and per type:
messages, outcomes, delivered, delivery rate, p50/p95 time to delivered, terminated and forwarded
counts, and the status mix, as aligned plain text. A PNG chart (delivery rate and p50/p95 time to
delivered per carrier) goes to `reports/sms-report-<timestamp>.png` (git-ignored); its path is
printed last.

An operator's command-line tool, outside the local stack: it reads any Messages table, local or
deployed. Usage (`make report ARGS="..."` runs `python -m tools.channel_report ...`):

    # the local stack: `make run` prints its moto endpoint ("moto (AWS services)  http://...")
    make report ARGS="--endpoint-url http://127.0.0.1:PORT"
    # AWS: the table's physical name (stack output MessagesTableName), the usual profile/region
    AWS_PROFILE=ops make report ARGS="--since 7d --table smsbridge-MessagesTable-1A2B3C"

Options: `--since 24h` (window up to now; Nm, Nh or Nd), `--table NAME` (default `MessagesTable`,
the name the local stack gives the table), `--endpoint-url URL` (else AWS_ENDPOINT_URL, else AWS
itself), `--region` (else AWS_REGION / AWS_DEFAULT_REGION; eu-west-1 for a local endpoint),
`--out PATH` (the PNG), `--no-chart`, `--progress` (a progress bar on stderr; shown by default only
when stderr is a terminal). A loopback endpoint gets dummy credentials, never real ones.

Definitions:
- outcome: a final status other than `cancelled` (the client withdrew the message). By carrier, a
  `forwarded` hop is an outcome (that carrier did not deliver it); by type and overall it is not,
  since its alternate (its own item) carries the message's outcome.
- delivery rate: delivered / outcomes.
- time to delivered: `delivered_at - inserted_at` of delivered items (an alternate from its own
  insert).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bench.tables import render
from smsbridge.delivery_stats import is_outcome
from smsbridge.repository import LOG_INDEX, LOG_INDEX_SHARDS  # tools/__init__ adds the layer
from smsbridge.statuses import FINAL, Status

REPO_ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

DEFAULT_TABLE = "MessagesTable"
DEFAULT_SINCE = "24h"
LOCAL_REGION = "eu-west-1"
REPORTS_DIR = REPO_ROOT / "reports"
#: Shown for items without a carrier or type (refused before routing).
NONE = "-"
ALL = "all"

_WINDOW = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


# ------------------------------------------------------------------------------------ aggregation


def parse_window(text: str) -> timedelta:
    """`90m`, `24h`, `7d` as a timedelta (ValueError for anything else or zero)."""
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"window {text!r}: expected a number and m, h or d (e.g. 24h)")
    amount = int(match.group(1))
    if amount <= 0:
        raise ValueError(f"window {text!r} is empty")
    return timedelta(**{_WINDOW_UNITS[match.group(2)]: amount})


def parse_time(value: str) -> datetime:
    """An ISO 8601 timestamp of the table (UTC, `Z`) as an aware datetime."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """The table's timestamp format: ISO 8601 UTC with milliseconds and a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(slots=True)
class GroupStats:
    """Counts for one carrier, one type, or everything."""

    name: str
    messages: int = 0
    open: int = 0
    outcomes: int = 0
    delivered: int = 0
    terminated: int = 0
    forwarded: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """Delivered / outcomes; None without outcomes."""
        return self.delivered / self.outcomes if self.outcomes else None

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latencies_ms, 0.95)


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    by_carrier: dict[str, GroupStats]
    by_type: dict[str, GroupStats]
    total: GroupStats
    #: Items left out: inserted outside the window, or without a readable `inserted_at`/`status`.
    skipped: int = 0


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else ""


def _add(
    stats: GroupStats, status: str, latency_ms: float | None, *, forwarded_is_outcome: bool
) -> None:
    stats.messages += 1
    stats.statuses[status] += 1
    if status == Status.TERMINATED:
        stats.terminated += 1
    if status == Status.FORWARDED:
        stats.forwarded += 1
    if status not in FINAL:
        stats.open += 1
    elif is_outcome(status, forwarded_is_outcome=forwarded_is_outcome):
        stats.outcomes += 1
    if status == Status.DELIVERED:
        stats.delivered += 1
        if latency_ms is not None:
            stats.latencies_ms.append(latency_ms)


def aggregate(items: Iterable[Mapping[str, Any]], *, since: datetime, until: datetime) -> Report:
    """Per-carrier, per-type and overall statistics of SMS log items inserted in [since, until).

    Items are plain dicts with the table's attribute names (`carrier`, `type`, `status`,
    `inserted_at`, `delivered_at`); other attributes are ignored.
    """
    by_carrier: dict[str, GroupStats] = {}
    by_type: dict[str, GroupStats] = {}
    total = GroupStats(ALL)
    skipped = 0
    for item in items:
        status = _text(item, "status")
        try:
            inserted = parse_time(_text(item, "inserted_at"))
        except ValueError:
            skipped += 1
            continue
        if not status or not since <= inserted < until:
            skipped += 1
            continue
        latency_ms: float | None = None
        delivered_at = _text(item, "delivered_at")
        if status == Status.DELIVERED and delivered_at:
            try:
                elapsed = parse_time(delivered_at) - inserted
            except ValueError:
                elapsed = None
            if elapsed is not None:
                latency_ms = max(0.0, elapsed.total_seconds() * 1000)
        carrier = _text(item, "carrier") or NONE
        kind = _text(item, "type") or NONE
        carrier_stats = by_carrier.setdefault(carrier, GroupStats(carrier))
        _add(carrier_stats, status, latency_ms, forwarded_is_outcome=True)
        type_stats = by_type.setdefault(kind, GroupStats(kind))
        _add(type_stats, status, latency_ms, forwarded_is_outcome=False)
        _add(total, status, latency_ms, forwarded_is_outcome=False)
    return Report(
        since=since,
        until=until,
        by_carrier=dict(sorted(by_carrier.items())),
        by_type=dict(sorted(by_type.items())),
        total=total,
        skipped=skipped,
    )


# ---------------------------------------------------------------------------------------- reading


def log_partitions(since: datetime, until: datetime) -> list[str]:
    """Every `LogByDay` partition key (`YYYY-MM-DD#n`) of the UTC days the window touches."""
    first: date = since.astimezone(UTC).date()
    last: date = until.astimezone(UTC).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [f"{day.isoformat()}#{shard}" for day in days for shard in range(LOG_INDEX_SHARDS)]


def read_log(
    client: DynamoDBClient,
    table: str,
    *,
    since: datetime,
    until: datetime,
    on_partition: Callable[[int], None] | None = None,
    page_size: int | None = None,
) -> Iterator[dict[str, Any]]:
    """SMS log items inserted in the window, as plain dicts: Query per partition, never Scan.

    `on_partition(items_read)` is called after each partition (for a progress bar); `page_size`
    limits the items of one Query (DynamoDB's 1 MB pages otherwise).
    """
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    paginator = client.get_paginator("query")
    for partition in log_partitions(since, until):
        read = 0
        pages = paginator.paginate(
            TableName=table,
            IndexName=LOG_INDEX,
            KeyConditionExpression="log_partition = :p AND inserted_at BETWEEN :a AND :b",
            ExpressionAttributeValues={
                ":p": {"S": partition},
                ":a": {"S": iso(since)},
                ":b": {"S": iso(until)},
            },
            PaginationConfig={"PageSize": page_size} if page_size else {},
        )
        for page in pages:
            for raw in page.get("Items", []):
                read += 1
                yield {key: deserializer.deserialize(value) for key, value in raw.items()}
        if on_partition is not None:
            on_partition(read)


class Progress:
    """A one-line progress bar on a stream: partitions read and items so far."""

    def __init__(self, total: int, stream: IO[str], *, enabled: bool, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.done = 0
        self.items = 0

    def advance(self, items: int) -> None:
        self.done += 1
        self.items += items
        if not self.enabled:
            return
        filled = self.width * min(self.done, self.total) // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(
            f"\rreading [{bar}] {self.done}/{self.total} partitions, {self.items} messages"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


# ------------------------------------------------------------------------------------- formatting


def format_duration(ms: float | None) -> str:
    """850ms, 4.2s, 3m05s, 2h07m; '-' when there is nothing to show."""
    if ms is None:
        return NONE
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_rate(rate: float | None) -> str:
    return NONE if rate is None else f"{rate * 100:.1f}%"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text columns (the bench's renderer): the first left-aligned, the others right."""
    return "\n".join(render(header, rows, "l" + "r" * (len(header) - 1), indent=0))


_COLUMNS = (
    "messages",
    "open",
    "outcomes",
    "delivered",
    "rate",
    "p50",
    "p95",
    "terminated",
    "forwarded",
)


def _stats_row(stats: GroupStats) -> list[str]:
    return [
        stats.name,
        str(stats.messages),
        str(stats.open),
        str(stats.outcomes),
        str(stats.delivered),
        format_rate(stats.rate),
        format_duration(stats.p50_ms),
        format_duration(stats.p95_ms),
        str(stats.terminated),
        str(stats.forwarded),
    ]


def _status_order(statuses: Iterable[str]) -> list[str]:
    known = [str(status) for status in Status]
    return sorted(set(statuses), key=lambda s: (known.index(s) if s in known else len(known), s))


def _mix_table(title: str, groups: Mapping[str, GroupStats], total: GroupStats) -> str:
    columns = _status_order(total.statuses)
    rows = [[g.name, *(str(g.statuses.get(s, 0)) for s in columns)] for g in groups.values()]
    rows.append([ALL, *(str(total.statuses.get(s, 0)) for s in columns)])
    return render_table([title, *columns], rows)


def _count(messages: int) -> str:
    return f"{messages} message" if messages == 1 else f"{messages} messages"


def format_report(report: Report, *, table: str = "") -> str:
    """The report as aligned plain text."""
    window = f"{iso(report.since)} .. {iso(report.until)}"
    source = f" from {table}" if table else ""
    lines = [f"SMS report{source}: {_count(report.total.messages)} inserted {window}"]
    if not report.total.messages:
        lines.append("(no messages in the window)")
        return "\n".join(lines)
    sections = [
        render_table(
            ["carrier", *_COLUMNS],
            [_stats_row(s) for s in report.by_carrier.values()],
        ),
        render_table(
            ["type", *_COLUMNS],
            [*(_stats_row(s) for s in report.by_type.values()), _stats_row(report.total)],
        ),
        _mix_table("status by carrier", report.by_carrier, report.total),
        _mix_table("status by type", report.by_type, report.total),
    ]
    lines.extend(["", "\n\n".join(sections), ""])
    lines.append(
        "rate = delivered / outcomes: final statuses except cancelled; by type and overall a\n"
        "forwarded hop is not an outcome (its alternate is). p50/p95: from insert to delivered."
    )
    if report.skipped:
        lines.append(f"{report.skipped} items outside the window or unreadable were left out")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ chart


def write_chart(report: Report, path: Path) -> Path:
    """Two panels per carrier: delivery rate, and p50/p95 time to delivered. Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    carriers = list(report.by_carrier.values())
    names = [stats.name for stats in carriers]
    positions = list(range(len(carriers)))
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    rate_axes, latency_axes = figure.subplots(1, 2)

    rates = [(stats.rate or 0.0) * 100 for stats in carriers]
    bars = rate_axes.bar(positions, rates, color="#2a9d8f")
    rate_axes.bar_label(bars, labels=[format_rate(stats.rate) for stats in carriers], fontsize=8)
    rate_axes.set_title("Delivery rate")
    rate_axes.set_ylabel("% of outcomes delivered")
    rate_axes.set_ylim(0, 105)

    width = 0.38
    p50 = [(stats.p50_ms or 0.0) / 1000 for stats in carriers]
    p95 = [(stats.p95_ms or 0.0) / 1000 for stats in carriers]
    latency_axes.bar([x - width / 2 for x in positions], p50, width, label="p50", color="#457b9d")
    latency_axes.bar([x + width / 2 for x in positions], p95, width, label="p95", color="#e76f51")
    latency_axes.set_title("Time to delivered")
    latency_axes.set_ylabel("seconds")
    latency_axes.legend()

    for axes in (rate_axes, latency_axes):
        axes.set_xticks(positions, names, rotation=20, ha="right")
        axes.grid(axis="y", alpha=0.3)
        if not carriers:
            axes.text(0.5, 0.5, "no messages", ha="center", va="center", transform=axes.transAxes)
    figure.suptitle(
        f"smsbridge SMS report, {_count(report.total.messages)}, "
        f"{iso(report.since)} .. {iso(report.until)}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


# -------------------------------------------------------------------------------------------- CLI


def _is_loopback(endpoint_url: str) -> bool:
    return (urlsplit(endpoint_url).hostname or "") in _LOOPBACK_HOSTS


def make_client(endpoint_url: str | None, region: str | None) -> DynamoDBClient:
    """A DynamoDB client: the endpoint (dummy credentials on loopback) or AWS's usual chain."""
    import boto3

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint_url:
        if _is_loopback(endpoint_url):  # the local stack's moto: never the developer's credentials
            session = boto3.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name=region or LOCAL_REGION,
            )
        else:
            session = boto3.Session(region_name=region)
        return session.client("dynamodb", endpoint_url=endpoint_url)
    return boto3.Session(region_name=region).client("dynamodb")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.channel_report",
        description="SMS channel report from the Messages table (SMS log).",
    )
    parser.add_argument("--since", default=DEFAULT_SINCE, help="window up to now: Nm, Nh or Nd")
    parser.add_argument("--table", default=DEFAULT_TABLE, help="Messages table name")
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL") or None,
        help="DynamoDB endpoint, e.g. the local stack's moto (default: AWS_ENDPOINT_URL, else AWS)",
    )
    parser.add_argument("--region", default=None, help="AWS region")
    parser.add_argument("--out", type=Path, default=None, help="PNG path of the chart")
    parser.add_argument("--no-chart", action="store_true", help="print the table only")
    parser.add_argument(
        "--progress", action="store_true", help="show the progress bar even when not a terminal"
    )
    return parser.parse_args(argv)


def default_chart_path(now: datetime) -> Path:
    return REPORTS_DIR / f"sms-report-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.png"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None, *, client: DynamoDBClient | None = None) -> int:
    """Run the report; 0 on success, 2 for bad arguments, 1 when the table cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    args = parse_args(argv)
    try:
        window = parse_window(args.since)
    except ValueError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    until = datetime.now(UTC)
    since = until - window
    progress = Progress(
        len(log_partitions(since, until)),
        sys.stderr,
        enabled=bool(args.progress or sys.stderr.isatty()),
    )
    try:
        dynamodb = client or make_client(args.endpoint_url, args.region)
        items = read_log(
            dynamodb, args.table, since=since, until=until, on_partition=progress.advance
        )
        report = aggregate(items, since=since, until=until)
    except (BotoCoreError, ClientError) as exc:
        progress.close()
        where = f" at {args.endpoint_url}" if args.endpoint_url else ""
        print(f"report: cannot read table {args.table}{where}: {exc}", file=sys.stderr)
        return 1
    progress.close()
    print(format_report(report, table=args.table))
    if not args.no_chart:
        path = write_chart(report, args.out or default_chart_path(until))
        print(f"chart: {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
