"""EMF metrics: aggregated per invocation, one document per dimension set, values as arrays."""

from __future__ import annotations

import json
from typing import Any

import pytest

from smsbridge.runtime import Runtime
from smsbridge.telemetry import EmfMetrics
from tests.doubles import RecordingMetrics


def emf_documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if '"_aws"' in line]


@pytest.fixture(autouse=True)
def _service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "smsbridge")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


def test_nothing_is_written_before_the_flush(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = EmfMetrics()
    metrics.add("MessagesAccepted", type="text", carrier="smartswitch")
    assert emf_documents(capsys.readouterr().out) == []


def test_a_batch_of_data_points_is_one_document_per_dimension_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = EmfMetrics()
    for _ in range(60):
        metrics.add("MessagesAccepted", type="text", carrier="smartswitch")
    metrics.add("DeliveryOutcome", 1, carrier="vibes")
    metrics.add("DeliveryOutcome", 0, carrier="vibes")
    metrics.add("DeliveryLatency", 1500, "Milliseconds", carrier="smartswitch", type="text")

    metrics.flush()

    documents = emf_documents(capsys.readouterr().out)
    assert len(documents) == 2
    by_carrier = {doc["carrier"]: doc for doc in documents}
    smartswitch, vibes = by_carrier["smartswitch"], by_carrier["vibes"]
    assert smartswitch["MessagesAccepted"] == [1.0] * 60
    assert smartswitch["DeliveryLatency"] == [1500.0]
    assert smartswitch["service"] == "smsbridge"
    assert smartswitch["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "smsbridge"
    # DeliveryOutcome keeps one value per outcome: its Average is the delivery rate.
    assert vibes["DeliveryOutcome"] == [1.0, 0.0]
    assert "type" not in vibes


def test_empty_dimensions_are_left_out_and_a_flush_starts_afresh(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = EmfMetrics()
    metrics.add("DeliveryOutcome", 1, carrier="")
    metrics.flush()
    metrics.flush()

    documents = emf_documents(capsys.readouterr().out)
    assert len(documents) == 1
    assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_more_than_100_values_still_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = EmfMetrics()
    for _ in range(150):
        metrics.add("ReceiptsApplied", carrier="smartswitch")
    metrics.flush()

    values = [v for doc in emf_documents(capsys.readouterr().out) for v in doc["ReceiptsApplied"]]
    assert len(values) == 150


def test_the_handler_decorator_flushes_when_the_handler_raises() -> None:
    recording = RecordingMetrics()
    runtime = Runtime(settings=None, dynamodb=None, metrics=recording)  # type: ignore[arg-type]

    @runtime.publishes_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        recording.add("MessagesAccepted")
        raise RuntimeError(event["boom"])

    with pytest.raises(RuntimeError):
        handler({"boom": "x"}, None)
    assert recording.flushes == 1


def test_the_namespace_is_the_stacks_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """template.yaml sets POWERTOOLS_METRICS_NAMESPACE per stack (SPEC 6.1)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "smsbridge/smsbridge-staging")
    metrics = EmfMetrics()
    metrics.add("Submitted", carrier="vibes")
    metrics.flush()
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "smsbridge/smsbridge-staging"
