"""The bench's one summary table: every figure of the run beside its baseline or floor, measured
in the same run (machines are shared and noisy, so ratios travel better than absolute times)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import awscalls, coldimport, coldstart, permessage
from bench.tables import render


@dataclass(slots=True)
class Found:
    cold: coldimport.ColdImportReport | None = None
    cold_start: coldstart.ColdStartReport | None = None
    calls: awscalls.CallsReport | None = None
    per_message: permessage.PerMessageReport | None = None
    throughput: dict[str, float] = field(default_factory=dict)


def local_throughput(messages: int) -> dict[str, float]:
    """A fault-free soak as fast as the intake answers, with the backend's own rate beside it."""
    from tools.chaos import FaultRates
    from tools.soak import run

    none = FaultRates(**dict.fromkeys(FaultRates.__dataclass_fields__, 0.0))
    result = run(messages, rates=none, rate=0.0, measure_backend=True, settle_seconds=60)
    return {
        "messages": float(result.accepted),
        "messages_per_second": result.accepted / max(result.flow_seconds, 1e-9),
        "backend_calls_per_second": result.backend_calls_per_second,
        "backend_threads": 4.0,
        "lost": float(len(result.lost)),
    }


def calls_gap(calls: awscalls.CallsReport | None) -> permessage.Gap | None:
    """AWS calls per message against the floor, for the batch scenario (the usual path)."""
    if calls is None or not calls.scenarios:
        return None
    scenario = calls.scenarios[-1]
    total = sum(len(step.aws_calls) for step in scenario.steps) / scenario.messages
    floor = sum(step.floor_per_message for step in scenario.steps)
    return permessage.Gap("AWS calls per message (batch intake + dispatch)", total, floor)


def format_summary(found: Found) -> list[str]:
    rows: list[list[str]] = []
    gaps: list[permessage.Gap] = []
    if found.cold is not None:
        base = found.cold.timings[coldimport.BASELINE].median
        for name, timing in found.cold.timings.items():
            if name != coldimport.BASELINE and not timing.error:
                rows.append(
                    [
                        f"cold import: {name}",
                        f"{timing.median:.0f} ms",
                        f"{base:.0f} ms (import boto3 + a client)",
                        f"{timing.median / base:.2f}x",
                    ]
                )
    start = found.cold_start
    if start is not None:
        for name, row in start.rows.items():
            if row.target.floor and row.samples:
                floor = start.rows[row.target.floor]
                rows.append(
                    [
                        f"cold start: {row.target.label}",
                        f"{row.cold_ms:.0f} ms",
                        f"{floor.cold_ms:.0f} ms ({floor.target.label.removeprefix('floor: ')})",
                        f"{start.ratio(name):.2f}x",
                    ]
                )
    gap = calls_gap(found.calls)
    if gap is not None:
        gaps.append(gap)
    per = found.per_message
    if per is not None:
        for step in per.steps:
            rows.append(
                [
                    f"warm CPU: {step.name}",
                    f"{step.cpu_us:,.0f} µs/msg",
                    f"{per.baseline_us:.1f} µs (1 KB JSON round trip)",
                    f"{step.cpu_us / per.baseline_us:,.0f}x",
                ]
            )
        n = per.flow_messages
        units = permessage.write_units(per.message_item_bytes)
        gaps += [
            permessage.Gap(
                "DynamoDB write units per delivered message (table)",
                per.flow.wcu / n,
                5 * units + 1,
            ),
            permessage.Gap("DynamoDB read units per delivered message", per.flow.rcu / n, 1.0),
        ]
        before, after = per.flow.before_log_bytes / n, per.flow.log_bytes / n
        rows.append(
            [
                "log bytes per delivered message",
                f"{after:,.0f} B",
                f"{before:,.0f} B (one EMF document per data point)",
                f"{after / before:.2f}x" if before else "-",
            ]
        )
        _, total = permessage.cost_rows(per)
        rows.append(["cost per million delivered messages", f"USD {total:.2f}", "-", "-"])
    t = found.throughput
    if t and per is not None:
        calls = per.flow.dynamodb_calls / per.flow_messages
        capacity = t["backend_calls_per_second"] / max(calls, 1e-9)
        share = t["messages_per_second"] / capacity if capacity else 0.0
        rows.append(
            [
                "local end-to-end throughput",
                f"{t['messages_per_second']:.1f} msg/s",
                f"{capacity:.1f} msg/s (backend calls/s / {calls:.1f} calls per message)",
                f"{share:.0%}",
            ]
        )
        gaps.append(
            permessage.Gap(
                "local throughput (what the backend can take / achieved)",
                capacity,
                t["messages_per_second"],
            )
        )
    rows += [[g.name, f"{g.value:.2f}", f"{g.floor:.2f} (floor)", f"{g.ratio:.2f}x"] for g in gaps]
    lines = ["Summary: every figure of this run against its baseline or floor", ""]
    lines += render(["figure", "measured", "baseline / floor", "ratio"], rows, "lrrr")
    if gaps:
        worst = max(gaps, key=lambda g: g.ratio)
        lines += ["", f"LARGEST GAP TO ITS FLOOR: {worst.name}: {worst.ratio:.2f}x its floor"]
    slowest = start.worst() if start is not None else None
    if start is not None and slowest is not None:
        lines += [
            "",
            f"WORST COLD START (import + first answer): {slowest.target.label}: "
            f"{start.ratio(slowest.target.name):.2f}x its floor",
        ]
    return lines
