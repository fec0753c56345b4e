"""A carrier outage through the local stack (SPEC 4.3): the simulator's outage knob makes one
carrier answer 503; its circuit opens after CIRCUIT_FAILURES unwell failures, messages go to its
failover or wait on the queue, one probe per open time, and the circuit closes once it is well."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.stack import LocalStack
from smsbridge.circuit import carrier_circuits
from smsbridge.repository import MessageRepository
from tests.e2e.conftest import FAST, Client

THRESHOLD = 5
MAX_ATTEMPTS = 5  # SUBMIT_MAX_ATTEMPTS in the template
OPEN_SECONDS = int(FAST["CIRCUIT_OPEN_SECONDS"])


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def circuit(stack: LocalStack, carrier: str) -> dict[str, Any]:
    repository = MessageRepository(stack.clients.dynamodb, stack.table_name("MessagesTable"))
    return carrier_circuits(repository, [carrier])[carrier]


def send_batch(client: Client, numbers: list[str], prefix: str) -> list[dict[str, Any]]:
    messages = [
        {"to": number, "text": "hello", "message_id": f"{prefix}-{n}"}
        for n, number in enumerate(numbers)
    ]
    answer = client.http.post(
        f"{client.api}/v1/messages",
        json={"messages": messages},
        headers={"Authorization": "Bearer demo-token"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    sent: list[dict[str, Any]] = answer.json()["messages"]
    assert [m["status"] for m in sent] == ["sending"] * len(numbers)
    return sent


def refused(client: Client, carrier: str, references: set[str]) -> list[dict[str, Any]]:
    """The submissions `carrier` refused during its outage, for these messages."""
    return [
        row
        for row in client.submissions()
        if row["carrier"] == carrier and row["reference"] in references and not row["taken"]
    ]


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def outage(client: Client) -> Iterator[Any]:
    """Start an outage of a carrier with `outage(carrier)`; every outage ends with the test."""
    started: list[str] = []

    def start(carrier: str, seconds: int = 120) -> None:
        answer = requests.post(f"{client.sim}/_sim/outage/{carrier}?seconds={seconds}", timeout=5)
        assert answer.status_code == 200, answer.text
        started.append(carrier)

    yield start
    for carrier in started:
        requests.delete(f"{client.sim}/_sim/outage/{carrier}", timeout=5)


def end_outage(client: Client, carrier: str) -> None:
    answer = requests.delete(f"{client.sim}/_sim/outage/{carrier}", timeout=5)
    assert answer.status_code == 200


def test_an_outage_opens_the_circuit_and_the_failover_carries_the_messages(
    client: Client, outage: Any
) -> None:
    stack = client.stack
    outage("smartswitch")
    began = time.monotonic()
    first = send_batch(client, [f"+4477001{n:03d}01" for n in range(THRESHOLD)], unique("out"))
    ids = {m["external_id"] for m in first}
    wait_until(
        lambda: len(refused(client, "smartswitch", ids)) >= THRESHOLD, 20, "the first failures"
    )
    wait_until(lambda: circuit(stack, "smartswitch")["circuit"] == "open", 10, "the circuit")
    later = send_batch(client, [f"+4474001{n:03d}01" for n in range(10)], unique("via"))
    ids |= {m["external_id"] for m in later}
    for message in first + later:
        record = client.wait_status(message["message_id"], "delivered", timeout=30)
        assert record["carrier"] == "conceptomovil"
        # Attempts count per route: the failover's own tries, never the sick carrier's.
        tries = [
            row for row in client.submissions(record["id"]) if row["carrier"] == "conceptomovil"
        ]
        assert record["attempts"] == len(tries), (record, tries)
        notes = [h.get("description", "") for h in record["history"]]
        assert "circuit open: via conceptomovil" in notes
        # Routing, not alternate delivery: one message, never forwarded.
        assert "forwarded_to" not in record
    sick = refused(client, "smartswitch", ids)
    probes = math.ceil((time.monotonic() - began) / OPEN_SECONDS)
    assert THRESHOLD <= len(sick) <= THRESHOLD + probes
    assert not [
        row
        for row in client.submissions()
        if row["carrier"] == "smartswitch" and row["taken"] and row["reference"] in ids
    ]

    # The carrier recovers: after the open time one message probes it and closes the circuit.
    end_outage(client, "smartswitch")
    time.sleep(OPEN_SECONDS + 0.5)
    probe = client.send(to="+447700300001", message_id=unique("probe"))
    record = client.wait_status(probe["message_id"], "delivered", timeout=20)
    assert record["carrier"] == "smartswitch"
    state = circuit(stack, "smartswitch")
    assert (state["circuit"], state["failures"]) == ("closed", 0)
    after = client.send(to="+447700300101", message_id=unique("after"))
    assert client.wait_status(after["message_id"], "delivered")["carrier"] == "smartswitch"


def test_a_carrier_without_failover_holds_its_messages_until_it_recovers(
    client: Client, outage: Any
) -> None:
    stack = client.stack
    outage("conceptomovil")
    began = time.monotonic()
    first = send_batch(client, [f"+5255120{n:03d}01" for n in range(THRESHOLD)], unique("hold"))
    ids = {m["external_id"] for m in first}
    wait_until(
        lambda: len(refused(client, "conceptomovil", ids)) >= THRESHOLD, 20, "the first failures"
    )
    wait_until(lambda: circuit(stack, "conceptomovil")["circuit"] == "open", 10, "the circuit")
    held = send_batch(client, [f"+5255121{n:03d}01" for n in range(3)], unique("held"))
    ids |= {m["external_id"] for m in held}
    # Longer than SUBMIT_MAX_ATTEMPTS (5) tries with back-off (1, 2, 4 and 8 s) last: without
    # the breaker the messages would use up their attempts against the dead carrier and fail.
    time.sleep(max(0.0, began + 18 - time.monotonic()))
    for message in first + held:
        record = client.get(message["message_id"])
        assert record["status"] == "queued", record
        assert record["attempts"] < MAX_ATTEMPTS
    end_outage(client, "conceptomovil")
    outage_seconds = time.monotonic() - began
    for message in first + held:
        record = client.wait_status(message["message_id"], "delivered", timeout=30)
        assert record["carrier"] == "conceptomovil"
        # Neither waiting on the queue nor a failed probe uses up an attempt: only failures
        # before the circuit opened and the submission that went through count.
        assert record["attempts"] < MAX_ATTEMPTS
    sick = refused(client, "conceptomovil", ids)
    assert THRESHOLD <= len(sick) <= THRESHOLD + math.ceil(outage_seconds / OPEN_SECONDS)
    assert circuit(stack, "conceptomovil")["circuit"] == "closed"
