"""The cold-start report: a row per route against its floor, and the worst route named."""

from __future__ import annotations

from bench import coldstart, summary


def _row(target: coldstart.Target, cold_ms: float) -> coldstart.Row:
    sample = coldstart.Sample(cold_ms / 2, [cold_ms / 2] + [1.0] * 9, cold_ms, cold_ms / 2, [])
    return coldstart.Row(target, [sample])


def test_the_report_and_the_summary_name_the_worst_route() -> None:
    times = {"floor": 100.0, "json": 150.0, "ofsc": 120.0, "dlr": 110.0, "missing": 125.0}
    times |= {"floor_carrier": 200.0, "dispatch": 320.0, "notify": 220.0}
    report = coldstart.ColdStartReport(
        5, {t.name: _row(t, times[t.name]) for t in coldstart.TARGETS}
    )

    lines = coldstart.format_report(report)
    table = summary.format_summary(summary.Found(cold_start=report))

    assert "WORST COLD START: dispatch (1 record): 1.60x its floor (CPU 1.60x)" in lines
    assert any(
        line.startswith("WORST COLD START (import + first answer): dispatch") for line in table
    )
    assert any("cold start: POST /v1/messages" in line and "1.50x" in line for line in table)
