"""tools/channel_report.py: SMS log aggregation, the text table, the chart, and Query-only reads."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from smsbridge.models import Message, iso
from smsbridge.repository import MessageRepository
from smsbridge.statuses import Status
from tests.support import a_message
from tools import channel_report as report
from tools.channel_report import aggregate, format_report, log_partitions, parse_window, percentile

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNTIL = datetime(2025, 3, 2, 6, 0, tzinfo=UTC)
SINCE = UNTIL - timedelta(hours=24)


def at(hours_before_until: float) -> str:
    return iso(UNTIL - timedelta(hours=hours_before_until))


def item(
    carrier: str,
    status: str,
    *,
    inserted: str,
    delivered_after_s: float | None = None,
    kind: str = "text",
    **extra: str,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "carrier": carrier,
        "type": kind,
        "status": status,
        "inserted_at": inserted,
        **extra,
    }
    if delivered_after_s is not None:
        sent = datetime.fromisoformat(inserted.replace("Z", "+00:00"))
        data["delivered_at"] = iso(sent + timedelta(seconds=delivered_after_s))
    return data


def sample_items() -> list[dict[str, Any]]:
    """smartswitch: 4 delivered (1, 2, 3, 5 s), undeliverable, enroute, terminated, cancelled;
    vibes (2FA): forwarded to vibes-longcode, which delivered; plus items outside the window."""
    return [
        *(
            item("smartswitch", "delivered", inserted=at(10 + n), delivered_after_s=n)
            for n in (1, 2, 3, 5)
        ),
        item("smartswitch", "undeliverable", inserted=at(9)),
        item("smartswitch", "enroute", inserted=at(1)),
        item("smartswitch", "terminated", inserted=at(20), kind="verification"),
        item("smartswitch", "cancelled", inserted=at(2)),
        item("vibes", "forwarded", inserted=at(5), kind="2FA", forwarded_to="alt-1"),
        item(
            "vibes-longcode",
            "delivered",
            inserted=at(4.9),
            delivered_after_s=30,
            kind="2FA",
            forwarded_from="orig-1",
        ),
        item("smartswitch", "delivered", inserted=at(25), delivered_after_s=1),  # before since
        item("smartswitch", "delivered", inserted=at(-1), delivered_after_s=1),  # after until
        item("smartswitch", "delivered", inserted="not a time"),
    ]


# ---------------------------------------------------------------------------------- pure parts


def test_parse_window() -> None:
    assert parse_window("24h") == timedelta(hours=24)
    assert parse_window("90m") == timedelta(minutes=90)
    assert parse_window("7d") == timedelta(days=7)
    for bad in ("24", "0h", "h", "1w", "-2h", ""):
        with pytest.raises(ValueError, match="window"):
            parse_window(bad)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
    assert percentile([float(n) for n in range(1, 101)], 0.95) == pytest.approx(95.05)


def test_aggregate_by_carrier() -> None:
    result = aggregate(sample_items(), since=SINCE, until=UNTIL)

    assert list(result.by_carrier) == ["smartswitch", "vibes", "vibes-longcode"]
    smartswitch = result.by_carrier["smartswitch"]
    assert smartswitch.messages == 8
    assert smartswitch.open == 1
    assert smartswitch.outcomes == 6  # cancelled is not an outcome
    assert smartswitch.delivered == 4
    assert smartswitch.rate == pytest.approx(4 / 6)
    assert smartswitch.p50_ms == pytest.approx(2500)
    assert smartswitch.p95_ms == pytest.approx(4700)
    assert smartswitch.terminated == 1
    assert smartswitch.statuses == {
        "delivered": 4,
        "undeliverable": 1,
        "enroute": 1,
        "terminated": 1,
        "cancelled": 1,
    }
    vibes = result.by_carrier["vibes"]  # the short-code hop failed: counts against vibes
    assert (vibes.messages, vibes.outcomes, vibes.delivered, vibes.forwarded) == (1, 1, 0, 1)
    assert vibes.rate == 0
    assert vibes.p50_ms is None
    longcode = result.by_carrier["vibes-longcode"]
    assert longcode.rate == 1
    assert longcode.p95_ms == pytest.approx(30_000)


def test_aggregate_by_type_and_overall_count_the_alternate_not_the_forwarded_hop() -> None:
    result = aggregate(sample_items(), since=SINCE, until=UNTIL)

    two_fa = result.by_type["2FA"]
    assert (two_fa.messages, two_fa.outcomes, two_fa.delivered, two_fa.forwarded) == (2, 1, 1, 1)
    assert two_fa.rate == 1
    assert result.by_type["verification"].terminated == 1
    assert result.by_type["verification"].rate == 0
    total = result.total
    assert total.messages == 10
    assert total.outcomes == 6 + 1  # smartswitch's outcomes and the alternate
    assert total.delivered == 5
    assert total.rate == pytest.approx(5 / 7)
    assert sorted(total.latencies_ms) == [1000, 2000, 3000, 5000, 30_000]
    assert total.statuses["forwarded"] == 1


def test_aggregate_keeps_to_the_window() -> None:
    result = aggregate(sample_items(), since=SINCE, until=UNTIL)
    assert result.skipped == 3  # before since, after until, unreadable inserted_at

    narrow = aggregate(sample_items(), since=UNTIL - timedelta(hours=3), until=UNTIL)
    assert narrow.total.messages == 2  # enroute (1 h ago) and cancelled (2 h ago)
    assert narrow.total.outcomes == 0
    assert narrow.total.rate is None


def test_aggregate_groups_items_without_carrier_or_type() -> None:
    result = aggregate([{"status": "rejected", "inserted_at": at(1)}], since=SINCE, until=UNTIL)
    assert list(result.by_carrier) == ["-"]
    assert list(result.by_type) == ["-"]
    assert result.total.outcomes == 1


def test_log_partitions_cover_every_day_and_shard() -> None:
    assert log_partitions(SINCE, UNTIL) == [
        *(f"2025-03-01#{n}" for n in range(4)),
        *(f"2025-03-02#{n}" for n in range(4)),
    ]
    assert len(log_partitions(UNTIL - timedelta(hours=1), UNTIL)) == 4


def test_format_report_prints_aligned_tables() -> None:
    text = format_report(aggregate(sample_items(), since=SINCE, until=UNTIL), table="Messages")

    lines = text.splitlines()
    assert lines[0].startswith("SMS report from Messages: 10 messages inserted 2025-03-01T06:00")
    header = next(line for line in lines if line.startswith("carrier "))
    row = next(line for line in lines if line.startswith("smartswitch "))
    assert header.split() == [
        "carrier",
        "messages",
        "open",
        "outcomes",
        "delivered",
        "rate",
        "p50",
        "p95",
        "terminated",
        "forwarded",
    ]
    assert row.split() == ["smartswitch", "8", "1", "6", "4", "66.7%", "2.5s", "4.7s", "1", "0"]
    assert len(row) == len(header)  # right-aligned under the header
    all_row = next(line for line in lines if line.startswith("all ") and "%" in line)
    assert all_row.split()[1:6] == ["10", "1", "7", "5", "71.4%"]
    mix_header = next(line for line in lines if line.startswith("status by carrier"))
    assert mix_header.split()[3:] == [
        "enroute",
        "delivered",
        "undeliverable",
        "terminated",
        "forwarded",
        "cancelled",
    ]
    assert "left out" in lines[-1]


def test_format_report_without_messages() -> None:
    text = format_report(aggregate([], since=SINCE, until=UNTIL))
    assert "0 messages" in text
    assert "no messages" in text


def test_format_duration() -> None:
    assert report.format_duration(None) == "-"
    assert report.format_duration(850) == "850ms"
    assert report.format_duration(4_240) == "4.2s"
    assert report.format_duration(185_000) == "3m05s"
    assert report.format_duration(7_620_000) == "2h07m"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_write_chart_writes_a_png(tmp_path: Path) -> None:
    result = aggregate(sample_items(), since=SINCE, until=UNTIL)
    path = report.write_chart(result, tmp_path / "charts" / "report.png")
    assert path == tmp_path / "charts" / "report.png"
    width, height = _png_size(path)
    assert width > height > 100


def test_write_chart_without_messages(tmp_path: Path) -> None:
    path = report.write_chart(aggregate([], since=SINCE, until=UNTIL), tmp_path / "empty.png")
    assert _png_size(path)[0] > 0


def test_matplotlib_is_imported_only_for_the_chart() -> None:
    code = "import sys, tools.channel_report; print('matplotlib' in sys.modules)"
    answer = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "False"


def test_progress_bar_only_when_enabled() -> None:
    shown, hidden = io.StringIO(), io.StringIO()
    for stream, enabled in ((shown, True), (hidden, False)):
        progress = report.Progress(2, stream, enabled=enabled, width=4)
        progress.advance(3)
        progress.advance(2)
        progress.close()
    assert shown.getvalue() == (
        "\rreading [##..] 1/2 partitions, 3 messages\rreading [####] 2/2 partitions, 5 messages\n"
    )
    assert hidden.getvalue() == ""


def test_default_chart_path_is_under_reports() -> None:
    path = report.default_chart_path(UNTIL)
    assert path == REPO_ROOT / "reports" / "sms-report-20250302T060000Z.png"


def test_bad_window_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--since", "yesterday"]) == 2
    assert "window" in capsys.readouterr().err


# --------------------------------------------------------------------- reading through moto


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that reads CloudFormation tags (`!Ref`, `!Sub`, ...) as their plain values."""


def _untagged(loader: _CfnLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_CfnLoader.add_multi_constructor("!", _untagged)


def messages_table_properties() -> dict[str, Any]:
    text = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    doc = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader
    properties: dict[str, Any] = doc["Resources"]["MessagesTable"]["Properties"]
    return properties


def message(number: int, carrier: str, status: Status, inserted: datetime, **extra: Any) -> Message:
    return a_message(
        id=f"msg-{number:04d}",
        message_id=f"client-{number}",
        phone_number=f"+4915100000{number:03d}",
        type=str(extra.pop("type", "text")),
        body="hello",
        sender="SMSBRIDGE",
        carrier=carrier,
        status=status,
        inserted_at=iso(inserted),
        updated_at=iso(inserted),
        status_changed_at=iso(inserted),
        **extra,
    )


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        props = messages_table_properties()
        client.create_table(
            TableName=report.DEFAULT_TABLE,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props["BillingMode"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        )
        yield client


def store(client: Any, until: datetime) -> None:
    """Messages across two days and every shard, one before the window and one on an older day."""
    repository = MessageRepository(client, report.DEFAULT_TABLE)
    for number, hours in enumerate(range(1, 24, 2), start=1):  # 12 in the window
        inserted = until - timedelta(hours=hours)
        delivered = number % 4 != 0
        repository.create(
            message(
                number,
                "smartswitch" if number % 3 else "vibes",
                Status.DELIVERED if delivered else Status.UNDELIVERABLE,
                inserted,
                delivered_at=iso(inserted + timedelta(seconds=number)) if delivered else "",
            ),
            next_check_at=None,
        )
    for old, hours_ago in ((90, 24.5), (91, 50.0)):  # before the window: same day, a day earlier
        inserted = until - timedelta(hours=hours_ago)
        repository.create(
            message(old, "smartswitch", Status.DELIVERED, inserted, delivered_at=iso(inserted)),
            next_check_at=None,
        )


def record_calls(client: Any) -> list[str]:
    calls: list[str] = []

    def hook(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.dynamodb.*", hook)
    return calls


def test_read_log_queries_every_partition_and_never_scans(dynamodb: Any) -> None:
    store(dynamodb, UNTIL)
    calls = record_calls(dynamodb)

    items = list(report.read_log(dynamodb, report.DEFAULT_TABLE, since=SINCE, until=UNTIL))
    result = aggregate(items, since=SINCE, until=UNTIL)

    assert calls == ["Query"] * 8  # 2 days x 4 shards
    assert result.total.messages == 12
    assert result.skipped == 0  # the key condition already kept to the window
    assert result.by_carrier["smartswitch"].messages == 8
    assert result.by_carrier["vibes"].messages == 4
    assert result.total.delivered == 9
    assert {key for item in items for key in item} >= {
        "carrier",
        "type",
        "status",
        "inserted_at",
        "log_partition",
    }


def test_read_log_follows_pages(dynamodb: Any) -> None:
    store(dynamodb, UNTIL)
    calls = record_calls(dynamodb)
    read: list[int] = []

    items = list(
        report.read_log(
            dynamodb,
            report.DEFAULT_TABLE,
            since=SINCE,
            until=UNTIL,
            on_partition=read.append,
            page_size=1,
        )
    )

    assert len(items) == 12
    assert len(read) == 8
    assert sum(read) == 12
    assert set(calls) == {"Query"}
    assert len(calls) > 8  # partitions with more than one message take more than one page


def test_main_prints_the_report_and_writes_the_chart(
    dynamodb: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store(dynamodb, datetime.now(UTC))
    calls = record_calls(dynamodb)
    out = tmp_path / "report.png"

    code = report.main(["--since", "24h", "--out", str(out)], client=dynamodb)

    captured = capsys.readouterr()
    assert code == 0
    assert "Scan" not in calls
    assert set(calls) == {"Query"}
    lines = captured.out.splitlines()
    assert "SMS report from MessagesTable: 12 messages" in lines[0]
    assert any(line.split()[:2] == ["smartswitch", "8"] for line in lines)
    assert lines[-1] == f"chart: {out}"
    assert _png_size(out)[0] > 0


def test_main_reports_an_unreadable_table(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = report.main(["--table", "NoSuchTable", "--no-chart"], client=dynamodb)
    assert code == 1
    assert "cannot read table NoSuchTable" in capsys.readouterr().err
