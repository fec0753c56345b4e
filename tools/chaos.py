"""Faults the local stack and the simulator can inject (`make soak`), each at a stated rate.

Nothing here touches the deployed code paths: the faults sit in the local moto front
(DynamoDB throttling, in the moto process), the local SQS driver (a record delivered twice),
botocore hooks that each execution environment process puts on its handler's own clients (a lost
enqueue, a crash before the dispatch write) and the carrier simulator (5xx, time-outs after
taking the message, duplicate, reordered and early receipts). The stack's `Faults` object holds
the rates, the on/off switch and the counts; the moto process and each environment draw from
generators seeded from it and report what they injected (`add`).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: `User-Agent` suffix of the local stack's own clients, which faults spare (drivers, audit).
EXEMPT_USER_AGENT = "smsbridge-local"
#: DynamoDB data-plane operations that can be throttled.
THROTTLED_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "TransactGetItems",
    }
)
THROTTLE_BODY = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
).encode()


class SimulatedCrash(Exception):
    """The invocation dies here (raised by a fault hook inside a handler)."""


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probabilities per event (see `make soak` for the defaults)."""

    carrier_5xx: float = 0.05
    carrier_timeout: float = 0.02
    dynamodb_throttle: float = 0.02
    sqs_duplicate: float = 0.05
    receipt_duplicate: float = 0.05
    receipt_reorder: float = 0.10
    receipt_before_answer: float = 0.01
    crash_before_enqueue: float = 0.01
    crash_before_dispatch_write: float = 0.01
    callback_failing: float = 0.05

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def rows(self) -> list[tuple[str, float, str]]:
        """(fault, rate, where and per what) for the report."""
        return [
            ("carrier 5xx", self.carrier_5xx, "simulator, per submission (not taken)"),
            (
                "carrier time-out after taking",
                self.carrier_timeout,
                "simulator, per submission (answered after the client's read time-out)",
            ),
            (
                "DynamoDB throttling",
                self.dynamodb_throttle,
                "moto front, per read or write request (ProvisionedThroughputExceeded)",
            ),
            ("SQS record delivered twice", self.sqs_duplicate, "SQS driver, per record"),
            ("duplicate receipt", self.receipt_duplicate, "simulator, per message"),
            ("reordered receipts", self.receipt_reorder, "simulator, per message"),
            (
                "receipts before the submit answer",
                self.receipt_before_answer,
                "simulator, per message",
            ),
            (
                "crash between intake write and enqueue",
                self.crash_before_enqueue,
                "send_message's SQS client, per enqueue call (the send is lost)",
            ),
            (
                "crash after the carrier call, before the dispatch write",
                self.crash_before_dispatch_write,
                "dispatch's DynamoDB client, per message (the invocation raises)",
            ),
            (
                "callback endpoint failing for a while",
                self.callback_failing,
                "soak client, per callback_url (?fail=N)",
            ),
        ]


@dataclass
class Faults:
    """Seeded decisions, counted by name; `enabled` turns every fault off at once."""

    rates: FaultRates = field(default_factory=FaultRates)
    seed: int = 11
    enabled: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _once: set[tuple[str, str]] = field(default_factory=set, init=False)
    #: Called with the new value by `set_enabled` (the moto process follows the switch).
    on_enabled: list[Callable[[bool], None]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def reseed(self, salt: int) -> None:
        """A generator of its own for a copy of this object in another process."""
        with self._lock:
            self._random = random.Random(self.seed * 1_000_003 + salt)

    def set_enabled(self, enabled: bool) -> None:
        """Turn every fault on or off, here and in the processes that follow this object."""
        self.enabled = enabled
        for listener in list(self.on_enabled):
            listener(enabled)

    def add(self, counts: dict[str, int]) -> None:
        """Count what another process injected."""
        with self._lock:
            self.counts.update(counts)

    def roll(self, name: str, rate: float) -> bool:
        """True (and counted) with probability `rate` while enabled."""
        if not self.enabled or rate <= 0:
            return False
        with self._lock:
            hit = self._random.random() < rate
            if hit:
                self.counts[name] += 1
        return hit

    def once(self, name: str, key: str, rate: float) -> bool:
        """Like `roll`, decided on the first call for `key` only (later calls: False)."""
        with self._lock:
            if (name, key) in self._once:
                return False
            self._once.add((name, key))
        return self.roll(name, rate)

    def shuffle(self, items: list[Any]) -> None:
        with self._lock:
            self._random.shuffle(items)

    # ---- receipts (simulator)

    def receipts(self, states: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
        """The receipts to post for one message and whether they go before the submit answer."""
        posted = list(states)
        if len(posted) > 1 and self.roll("receipt_reorder", self.rates.receipt_reorder):
            # The final first, the rest after it (a late enroute after the final).
            posted = posted[::-1]
        if posted and self.roll("receipt_duplicate", self.rates.receipt_duplicate):
            with self._lock:
                index = self._random.randrange(len(posted))
            posted.insert(index + 1, posted[index])
        early = bool(posted) and self.roll(
            "receipt_before_answer", self.rates.receipt_before_answer
        )
        return tuple(posted), early

    # ---- botocore hooks (an execution environment process)

    def attach(self, function: str, module: Any) -> None:
        """Hooks on a freshly loaded handler module's own clients (`module.runtime`)."""
        runtime = getattr(module, "runtime", None)
        if runtime is None:
            return
        if function == "SendMessageFunction":
            runtime.sqs.meta.events.register("before-call.sqs.SendMessageBatch", self._lost_enqueue)
        if function == "DispatchFunction":
            runtime.dynamodb.meta.events.register(
                "before-call.dynamodb.UpdateItem", self._crash_before_dispatch_write
            )

    def _lost_enqueue(self, params: dict[str, Any], **_: Any) -> Any:
        """The enqueue never reaches SQS (the process died after the table write)."""
        if not self.roll("crash_before_enqueue", self.rates.crash_before_enqueue):
            return None
        import hashlib
        import uuid

        request = json.loads(params.get("body") or b"{}")
        successful = [
            {
                "Id": entry["Id"],
                "MessageId": str(uuid.uuid4()),
                "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),  # noqa: S324
            }
            for entry in request.get("Entries", [])
        ]
        return _FakeHttp(), {"Successful": successful, "Failed": [], "ResponseMetadata": {}}

    def _crash_before_dispatch_write(self, params: dict[str, Any], **_: Any) -> None:
        """The write that records the carrier's answer (it sets `submitted_at`) dies once."""
        body = params.get("body") or b""
        text = body.decode() if isinstance(body, bytes) else str(body)
        if "submitted_at" not in text:
            return
        try:
            key = str(json.loads(text)["Key"]["id"]["S"])
        except (ValueError, KeyError, TypeError):
            return
        if self.once("crash_before_dispatch_write", key, self.rates.crash_before_dispatch_write):
            raise SimulatedCrash("crash after the carrier call, before the dispatch write")

    # ---- moto front

    def throttles(self, environ: dict[str, Any]) -> bool:
        """True when this DynamoDB request is to be answered as throttled."""
        if not self.enabled or EXEMPT_USER_AGENT in str(environ.get("HTTP_USER_AGENT", "")):
            return False
        operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]
        if operation not in THROTTLED_OPERATIONS:
            return False
        return self.roll("dynamodb_throttle", self.rates.dynamodb_throttle)


class _FakeHttp:
    """The HTTP response botocore expects beside a short-circuited answer."""

    status_code = 200
    headers: dict[str, str] = {}
    content = b""
    raw = None
