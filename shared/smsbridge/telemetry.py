"""Metrics (CloudWatch EMF) behind a small interface the domain can use.

The namespace is POWERTOOLS_METRICS_NAMESPACE (per stack in template.yaml: `smsbridge/<stack>`,
so a staging stack never mixes its metrics with production's), `smsbridge` when unset.

Dimensions are per data point (`carrier`, `status`, `type`), never per message. Data points are
collected during an invocation and written at its end, one EMF document per dimension set with the
values as an array, as Powertools Metrics does: a batch of 100 accepted messages costs one log
line, not 100.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

Dimensions = tuple[tuple[str, str], ...]


class MetricSink(Protocol):
    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None: ...

    def flush(self) -> None: ...


class EmfMetrics:
    """Aggregates data points per dimension set until `flush` (thread-safe: the poller adds from
    its worker threads)."""

    def __init__(self, namespace: str | None = None) -> None:
        self._namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "smsbridge"
        self._pending: dict[Dimensions, AmazonCloudWatchEMFProvider] = {}
        self._lock = threading.Lock()

    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        key: Dimensions = tuple(sorted((dim, val) for dim, val in dimensions.items() if val))
        with self._lock:
            document = self._pending.get(key)
            if document is None:
                document = self._pending[key] = self._document(key)
            # Powertools writes the document early by itself once a metric holds 100 values.
            document.add_metric(name=name, unit=unit, value=value)

    def flush(self) -> None:
        """Writes one EMF document per dimension set seen since the last flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for document in pending.values():
            if document.metric_set:
                document.flush_metrics()

    def _document(self, dimensions: Dimensions) -> AmazonCloudWatchEMFProvider:
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
            AmazonCloudWatchEMFProvider,
        )

        document = AmazonCloudWatchEMFProvider(namespace=self._namespace)
        for dimension, value in dimensions:
            document.add_dimension(name=dimension, value=value)
        return document
