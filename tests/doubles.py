"""Test doubles of the layer's interfaces (kept out of the deployed layer)."""

from __future__ import annotations


class RecordingMetrics:
    """A `smsbridge.telemetry.MetricSink` that keeps data points in memory."""

    def __init__(self) -> None:
        self.points: list[tuple[str, float, dict[str, str]]] = []
        self.flushes = 0

    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        self.points.append((name, value, dimensions))

    def flush(self) -> None:
        self.flushes += 1

    def count(self, name: str, **dimensions: str) -> float:
        return sum(
            value
            for point, value, dims in self.points
            if point == name and all(dims.get(k) == v for k, v in dimensions.items())
        )
