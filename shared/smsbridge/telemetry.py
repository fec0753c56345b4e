"""Metrics (CloudWatch EMF, namespace `smsbridge`) behind a small interface the domain can use.

Dimensions are per data point (`carrier`, `status`, `type`), never per message.
"""

from __future__ import annotations

from typing import Protocol


class MetricSink(Protocol):
    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None: ...


class EmfMetrics:
    """Writes one EMF document per data point through Powertools' `single_metric`."""

    def __init__(self, namespace: str = "smsbridge") -> None:
        self._namespace = namespace

    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(
            name=name,
            unit=MetricUnit(unit),
            value=value,
            namespace=self._namespace,
            default_dimensions={key: val for key, val in dimensions.items() if val},
        ):
            pass


class RecordingMetrics:
    """Keeps data points in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.points: list[tuple[str, float, dict[str, str]]] = []

    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        self.points.append((name, value, dimensions))

    def count(self, name: str, **dimensions: str) -> float:
        return sum(
            value
            for point, value, dims in self.points
            if point == name and all(dims.get(k) == v for k, v in dimensions.items())
        )
