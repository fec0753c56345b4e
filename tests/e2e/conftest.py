"""End-to-end tests: the whole local stack (moto server, HTTP API, drivers, simulator) on free
ports, driven over HTTP only, with time-outs shortened so that every path ends in seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local.stack import LocalStack

FAST = {
    "SIM_DELAY_MS": "150",
    "SIM_LATE_MS": "2200",
    "SCHEDULE_SECONDS": "1",
    "POLL_FIRST_SECONDS": "1",
    "POLL_MAX_INTERVAL_SECONDS": "2",
    "REQUEUE_AFTER_SECONDS": "30",
    "SUBMIT_BACKOFF_SECONDS": "1",
    "STATUS_TIMEOUT_SECONDS": "12",
    "NOTIFY_MAX_ATTEMPTS": "4",
    "NOTIFY_BACKOFF_SECONDS": "1",
    "CIRCUIT_OPEN_SECONDS": "3",
}


class Client:
    """HTTP access to the running stack, with the demo credentials."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.api = stack.api_url
        self.sim = stack.sim_url
        self.http = requests.Session()

    def send(self, **message: Any) -> dict[str, Any]:
        answer = self.http.post(
            f"{self.api}/v1/messages",
            json={"text": "hello", **message},
            headers={"Authorization": "Bearer demo-token"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def get(self, message_id: str) -> dict[str, Any]:
        answer = self.http.get(
            f"{self.api}/v1/messages/{message_id}",
            headers={"Authorization": "Bearer demo-token"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def submissions(self, reference: str | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.http.get(
            f"{self.sim}/_sim/submissions", timeout=10
        ).json()
        return [r for r in rows if reference is None or r["reference"] == reference]

    def callbacks(self, path: str) -> list[dict[str, Any]]:
        """What the simulated back office received on `path` (any query), in arrival order."""
        rows: list[dict[str, Any]] = self.http.get(f"{self.sim}/_sim/callbacks", timeout=10).json()
        return [r for r in rows if r["path"] == path]

    def wait_for(
        self, message_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        record = self.get(message_id)
        while not done(record):
            if time.monotonic() > deadline:
                raise AssertionError(f"{message_id} stuck in {record['status']}: {record}")
            time.sleep(0.2)
            record = self.get(message_id)
        return record

    def wait_status(self, message_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        return self.wait_for(message_id, lambda r: r["status"] in statuses, timeout)


@pytest.fixture(scope="package")
def local_stack() -> Iterator[LocalStack]:
    """One stack for the e2e package, stopped before other packages' in-process moto tests run
    (its driver threads would otherwise reach their mocks)."""
    stack = LocalStack(port=0, sim_port=0, env=FAST)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(local_stack: LocalStack) -> Client:
    return Client(local_stack)
