"""The cold-start bench's probe, once per route against its stack, so that it cannot rot: every
fresh process must import its handler and answer all its events correctly (no timings asserted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import coldstart

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> Iterator[coldstart.ColdStack]:
    with coldstart.cold_stack(ROOT) as started:
        coldstart.prepare(started, samples=1)
        yield started


@pytest.mark.parametrize("target", coldstart.TARGETS, ids=lambda t: t.name)
def test_probe_answers_every_event_of_its_route(
    stack: coldstart.ColdStack, target: coldstart.Target
) -> None:
    sample = coldstart.probe_once(stack, target)  # ProbeFailure on a wrong answer

    assert len(sample.results) == len(sample.answers_ms) == coldstart.ANSWERS
    assert sample.cold_ms >= sample.import_ms > 0
    assert sample.cold_cpu_ms > 0
