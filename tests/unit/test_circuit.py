"""The circuit breaker per carrier (SPEC 4.3) against its table item (moto), with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cloudformation import deploy
from smsbridge.circuit import CircuitBreaker, CircuitCache, carrier_circuits
from smsbridge.config import CarrierConfig, Settings
from smsbridge.repository import MessageRepository
from tests.doubles import RecordingMetrics

CARRIER = CarrierConfig(name="smartswitch", format="smartswitch", read_timeout=1.5)
SETTINGS = Settings(circuit_failures=5, circuit_window_seconds=60, circuit_open_seconds=30)


class Calls:
    """DynamoDB operations made through one client, by name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def writes(self) -> int:
        return sum(name in ("UpdateItem", "PutItem") for name in self.names)

    def reads(self) -> int:
        return sum(name in ("GetItem", "BatchGetItem") for name in self.names)


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MessageRepository, Calls]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        resources = deploy(session)
        client = session.client("dynamodb")
        calls = Calls()
        client.meta.events.register("before-call.dynamodb.*", calls)
        yield MessageRepository(client, resources.table_name("MessagesTable")), calls


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def breaker(
    repository: MessageRepository, clock: Clock, metrics: RecordingMetrics | None = None
) -> CircuitBreaker:
    return CircuitBreaker(
        repository, SETTINGS, metrics or RecordingMetrics(), CircuitCache(), clock
    )


def fail(circuit: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        admission = circuit.admit(CARRIER)
        assert admission.allowed
        circuit.failed(CARRIER.name, admission)


def test_a_healthy_carrier_at_100_per_second_writes_nothing_and_reads_once_a_second(
    table: tuple[MessageRepository, Calls],
) -> None:
    repository, calls = table
    clock = Clock()
    circuit = breaker(repository, clock)
    for _ in range(300):  # three seconds at 100 messages a second
        admission = circuit.admit(CARRIER)
        assert admission.allowed
        circuit.succeeded(CARRIER.name, admission)
        clock.now += 0.01
    assert calls.writes() == 0
    assert calls.reads() <= 4


def test_five_unwell_failures_open_it_then_one_probe_closes_it(
    table: tuple[MessageRepository, Calls],
) -> None:
    repository, _ = table
    clock, metrics = Clock(), RecordingMetrics()
    circuit = breaker(repository, clock, metrics)
    fail(circuit, 4)
    assert carrier_circuits(repository, ["smartswitch"], clock.now)["smartswitch"] == {
        "circuit": "closed",
        "since": "1970-01-12T13:46:40.000Z",
        "failures": 4,
    }
    fail(circuit, 1)
    assert metrics.count("CircuitOpened", carrier="smartswitch") == 1
    state = carrier_circuits(repository, ["smartswitch"], clock.now)["smartswitch"]
    assert state["circuit"] == "open"
    closed = circuit.admit(CARRIER)
    assert (closed.allowed, closed.wait) == (False, 30)
    clock.now += 30
    # Another invocation (its own cache) and this one race for the probe: one wins.
    other = breaker(repository, clock)
    probe = circuit.admit(CARRIER)
    assert (probe.allowed, probe.probe) == (True, True)
    assert not other.admit(CARRIER).allowed
    assert carrier_circuits(repository, ["smartswitch"], clock.now)["smartswitch"]["circuit"] == (
        "half-open"
    )
    circuit.succeeded(CARRIER.name, probe)
    assert metrics.count("CircuitClosed", carrier="smartswitch") == 1
    state = carrier_circuits(repository, ["smartswitch"], clock.now)["smartswitch"]
    assert (state["circuit"], state["failures"]) == ("closed", 0)
    assert circuit.admit(CARRIER).allowed


def test_a_failed_probe_opens_it_again_for_the_same_time(
    table: tuple[MessageRepository, Calls],
) -> None:
    repository, _ = table
    clock, metrics = Clock(), RecordingMetrics()
    circuit = breaker(repository, clock, metrics)
    fail(circuit, 5)
    clock.now += 31
    probe = circuit.admit(CARRIER)
    assert probe.probe
    circuit.failed(CARRIER.name, probe)
    assert metrics.count("CircuitOpened", carrier="smartswitch") == 2
    again = circuit.admit(CARRIER)
    assert (again.allowed, again.wait) == (False, 30)


def test_a_success_between_failures_starts_the_count_again(
    table: tuple[MessageRepository, Calls],
) -> None:
    repository, _ = table
    clock = Clock()
    circuit = breaker(repository, clock)
    fail(circuit, 4)
    admission = circuit.admit(CARRIER)
    circuit.succeeded(CARRIER.name, admission)
    fail(circuit, 4)
    assert circuit.admit(CARRIER).allowed


def test_failures_outside_the_window_do_not_add_up(
    table: tuple[MessageRepository, Calls],
) -> None:
    repository, _ = table
    clock = Clock()
    circuit = breaker(repository, clock)
    fail(circuit, 4)
    clock.now += 61
    fail(circuit, 4)
    assert circuit.admit(CARRIER).allowed
    state = carrier_circuits(repository, ["smartswitch"], clock.now)["smartswitch"]
    assert (state["circuit"], state["failures"]) == ("closed", 4)


def test_a_lost_probe_is_taken_over_when_its_lease_ends(
    table: tuple[MessageRepository, Calls],
) -> None:
    repository, _ = table
    clock = Clock()
    circuit = breaker(repository, clock)
    fail(circuit, 5)
    clock.now += 30
    assert circuit.admit(CARRIER).probe  # and its invocation dies: no success, no failure
    clock.now += 1
    assert not circuit.admit(CARRIER).allowed
    clock.now += 10  # past the lease: connect + read time-out and a second
    assert circuit.admit(CARRIER).probe


def test_carriers_never_written_read_closed(table: tuple[MessageRepository, Calls]) -> None:
    repository, _ = table
    assert carrier_circuits(repository, ["vibes", "ip2sms"]) == {
        "vibes": {"circuit": "closed", "since": None, "failures": 0},
        "ip2sms": {"circuit": "closed", "since": None, "failures": 0},
    }
