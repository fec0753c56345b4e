"""Per-message figures: warm CPU per handler, DynamoDB units, log bytes, cost per million.

In one process under moto (in-process), with the carrier simulator answering: each handler module
is imported by path and invoked with the events AWS would deliver, as `bench.awscalls` does.

- CPU: `time.thread_time()` of the invoking thread, minus the time inside each AWS request
  (from botocore's `before-call` to its `after-call`: moto's backend and the response parsing),
  so AWS is as good as stubbed. The carrier simulator runs in its own threads and is not
  counted. Each figure is the median over repeated warm invocations, and is also shown against
  a baseline measured in the same run (see `baseline_us`).
- DynamoDB units: computed from item sizes as DynamoDB bills them on demand (writes: 1 unit per
  started KB of the larger of the item before and after, failed conditions included; reads: half
  a unit per started 4 KB, eventually consistent), for the base table, plus one unit per write
  that touches a global secondary index's keys or projection (an approximation: a key change
  costs two).
- Log bytes: everything the handlers write to stdout (Powertools logs and EMF metrics). The
  "before" figure replaces each invocation's aggregated EMF documents by one document per data
  point, as the old `single_metric` sink wrote them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import statistics
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from bench.awscalls import moto_stack
from bench.tables import render
from local.api import http_event
from local.drivers import sqs_event
from local.runtime import LambdaContext, load_module

REGION = "eu-west-1"
AUTH_JSON = {"authorization": "Bearer demo-token", "content-type": "application/json"}
OFSC_HEADERS = {"authorization": "Basic b2ZzYzpvZnNjLXNlY3JldA==", "content-type": "text/xml"}
#: Routed to smartswitch; the simulator accepts and would deliver it.
PHONE = "+4915112345601"

# ---- AWS list prices, eu-west-1 (Ireland), as published on 2025-06-01 (USD) -------------------
#: Lambda (x86_64): per request and per GB-second.
LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_PER_GB_SECOND = 0.0000166667
#: DynamoDB on demand (after the 2024-11-01 price cut): per write / read request unit.
DYNAMODB_PER_WRU = 0.7068 / 1e6
DYNAMODB_PER_RRU = 0.1413 / 1e6
#: SQS standard queue: per request (each 64 KB chunk of a payload is one request).
SQS_PER_REQUEST = 0.40 / 1e6
#: API Gateway HTTP API: per request (first 300 million a month).
HTTP_API_PER_REQUEST = 1.11 / 1e6
#: CloudWatch Logs: ingestion per GB (standard class); each log event is billed with 26 bytes
#: of overhead, and Lambda adds START/END/REPORT lines (~300 bytes) per invocation.
LOGS_PER_GB = 0.57
LOG_EVENT_OVERHEAD_BYTES = 26
LAMBDA_PLATFORM_LOG_BYTES = 300
#: Latencies the handlers wait for in AWS (not measured here, stated): a DynamoDB/SQS request
#: and a carrier submission.
AWS_REQUEST_MS = 6.0
CARRIER_REQUEST_MS = 150.0


def baseline_us(rounds: int = 2000) -> float:
    """CPU µs of one reference unit: a 1 KB JSON document serialised and parsed once (the
    least any handler does with a message), median of 5 timings of `rounds` each."""
    document = {"message_id": "m" * 16, "to": PHONE, "text": "x" * 900, "type": "text"}
    samples = []
    for _ in range(5):
        start = time.thread_time()
        for _ in range(rounds):
            json.loads(json.dumps(document))
        samples.append((time.thread_time() - start) / rounds * 1e6)
    return statistics.median(samples)


# --------------------------------------------------------------------------------------------
# DynamoDB item sizes and units


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return max(1, (len(str(inner).lstrip("-").replace(".", "")) + 1) // 2 + 1)
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(str(inner)) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v)) for v in inner)
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item as DynamoDB sizes it (attribute names plus values)."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool = False) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


#: Attributes a write can change that some index keys or projects.
INDEX_ATTRIBUTES = {
    "OpenByNextCheck": ("open_shard", "next_check_at"),
    "LogByDay": (
        "log_partition",
        "inserted_at",
        "carrier",
        "type",
        "status",
        "delivered_at",
        "status_changed_at",
        "forwarded_to",
        "forwarded_from",
    ),
    # Keys only, written with the message's first write and never changed.
    "SearchByNumber": ("search_number",),
    "SearchByTime": ("search_time",),
}


@dataclass(slots=True)
class Usage:
    """What the handlers used while a step ran."""

    cpu_s: float = 0.0
    aws_cpu_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    wcu: float = 0.0
    #: Write units the global secondary indexes add (approximate, see the module docstring).
    wcu_index: float = 0.0
    rcu: float = 0.0
    log_bytes: int = 0
    log_lines: int = 0
    emf_bytes: int = 0
    emf_lines: int = 0
    single_metric_bytes: int = 0
    single_metric_lines: int = 0
    invocations: Counter[str] = field(default_factory=Counter)
    #: CPU seconds (AWS subtracted) and AWS requests by handler.
    cpu_by: Counter[str] = field(default_factory=Counter)
    calls_by: Counter[str] = field(default_factory=Counter)

    def add(self, other: Usage) -> None:
        self.cpu_by.update(other.cpu_by)
        self.calls_by.update(other.calls_by)
        self.cpu_s += other.cpu_s
        self.aws_cpu_s += other.aws_cpu_s
        self.calls.update(other.calls)
        self.wcu += other.wcu
        self.wcu_index += other.wcu_index
        self.rcu += other.rcu
        self.log_bytes += other.log_bytes
        self.log_lines += other.log_lines
        self.emf_bytes += other.emf_bytes
        self.emf_lines += other.emf_lines
        self.single_metric_bytes += other.single_metric_bytes
        self.single_metric_lines += other.single_metric_lines
        self.invocations.update(other.invocations)

    @property
    def dynamodb_calls(self) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith("DynamoDB"))

    @property
    def sqs_calls(self) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith("SQS"))

    @property
    def before_log_bytes(self) -> int:
        return self.log_bytes - self.emf_bytes + self.single_metric_bytes

    @property
    def before_log_lines(self) -> int:
        return self.log_lines - self.emf_lines + self.single_metric_lines


class Meter:
    """botocore hooks on the handlers' clients: time inside AWS, calls, DynamoDB units."""

    def __init__(self, raw_dynamodb: Any) -> None:
        self._raw = raw_dynamodb
        self._local = threading.local()
        self.usage = Usage()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before, unique_id="bench-pm-before")
        client.meta.events.register("after-call", self._after, unique_id="bench-pm-after")

    def take(self) -> Usage:
        with self._lock:
            usage, self.usage = self.usage, Usage()
        return usage

    def _before(
        self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        context["bench_pm_start"] = time.thread_time()
        service = str(model.service_model.service_id)
        if service != "DynamoDB":
            return
        request = json.loads(params.get("body") or b"{}")
        context["bench_pm_request"] = request
        if model.name in ("UpdateItem", "DeleteItem", "PutItem"):
            context["bench_pm_before_size"] = self._size_of(request)

    def _after(self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        service = str(model.service_model.service_id)
        operation = f"{service} {model.name}"
        wcu, rcu, index = 0.0, 0.0, 0.0
        if service == "DynamoDB":
            request = context.get("bench_pm_request") or {}
            wcu, rcu = self._units(model.name, request, parsed, context)
            if wcu and "Error" not in parsed and model.name in ("PutItem", "UpdateItem"):
                index = float(self._index_writes(request))
        started = context.get("bench_pm_start")
        spent = time.thread_time() - started if started is not None else 0.0
        handler = getattr(self._local, "handler", None)
        if handler is not None:
            self._local.aws += spent
        with self._lock:
            self.usage.calls[operation] += 1
            self.usage.wcu += wcu
            self.usage.wcu_index += index
            self.usage.rcu += rcu
            self.usage.aws_cpu_s += spent
            if handler is not None:
                self.usage.calls_by[handler] += 1

    def _size_of(self, request: dict[str, Any]) -> int:
        key = request.get("Key") or {}
        if not key and "Item" in request:
            key = {"id": request["Item"]["id"]}
        if not key:
            return 0
        answer = self._raw.get_item(TableName=request["TableName"], Key=key, ConsistentRead=True)
        return item_size(answer.get("Item"))

    def _units(
        self,
        operation: str,
        request: dict[str, Any],
        parsed: dict[str, Any],
        context: dict[str, Any],
    ) -> tuple[float, float]:
        consistent = bool(request.get("ConsistentRead"))
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            before = int(context.get("bench_pm_before_size") or 0)
            after = item_size(request.get("Item")) if operation == "PutItem" else 0
            if operation == "UpdateItem":
                after = item_size(parsed.get("Attributes")) or self._size_of(request)
            failed = "Error" in parsed
            return float(write_units(max(before, 0 if failed else after))), 0.0
        if operation == "BatchWriteItem":
            units = 0
            for requests_ in request.get("RequestItems", {}).values():
                for entry in requests_:
                    item = (entry.get("PutRequest") or {}).get("Item")
                    units += write_units(item_size(item))
            return float(units), 0.0
        if operation == "TransactWriteItems":
            return 2.0 * len(request.get("TransactItems", [])), 0.0
        if operation == "GetItem":
            return 0.0, read_units(item_size(parsed.get("Item")), consistent)
        if operation == "BatchGetItem":
            total = 0.0
            for items in (parsed.get("Responses") or {}).values():
                total += sum(read_units(item_size(item)) for item in items)
            return 0.0, total
        if operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in parsed.get("Items") or [])
            return 0.0, read_units(size, consistent)
        return 0.0, 0.0

    @staticmethod
    def _index_writes(request: dict[str, Any]) -> int:
        text = json.dumps(
            [request.get("UpdateExpression", ""), request.get("ExpressionAttributeNames", {})]
        )
        item = request.get("Item") or {}
        return sum(
            1
            for attributes in INDEX_ATTRIBUTES.values()
            if any(a in item or a in text for a in attributes)
        )

    @contextlib.contextmanager
    def measuring(self, handler: str) -> Iterator[None]:
        """Count the CPU of the current thread, the time inside AWS requests subtracted."""
        self._local.handler = handler
        self._local.aws = 0.0
        start = time.thread_time()
        try:
            yield
        finally:
            net = time.thread_time() - start - self._local.aws
            self._local.handler = None
            with self._lock:
                self.usage.cpu_s += net
                self.usage.cpu_by[handler] += net
                self.usage.invocations[handler] += 1


class _Switch(io.TextIOBase):
    """stdout of the handlers: the lines they write, counted per step."""

    def __init__(self) -> None:
        self.buffer_: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        self.buffer_.extend(line for line in lines if line)
        return len(text)

    def take(self) -> list[str]:
        lines, self.buffer_ = self.buffer_, []
        return lines


class PointTee:
    """Wraps a handler's metrics sink: every data point is also kept (for the "before" bytes)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.points: list[tuple[str, float, str, dict[str, str]]] = []

    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        self.points.append((name, value, unit, dimensions))
        self.sink.add(name, value, unit, **dimensions)

    def flush(self) -> None:
        self.sink.flush()


def single_metric_document(name: str, value: float, unit: str, dimensions: dict[str, str]) -> str:
    """One EMF document for one data point (what `single_metric` wrote per point)."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

    provider = AmazonCloudWatchEMFProvider(namespace="smsbridge")
    for key, val in dimensions.items():
        if val:
            provider.add_dimension(name=key, value=val)
    provider.add_metric(name=name, unit=unit, value=value)
    return json.dumps(provider.serialize_metric_set(), separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# The harness


class Handlers:
    """The handler modules, their clients metered, invoked like Lambda does."""

    def __init__(self, root: Path, meter: Meter, out: _Switch, queue_arn: str) -> None:
        self.meter = meter
        self.out = out
        self.queue_arn = queue_arn
        self.modules: dict[str, ModuleType] = {}
        self.tees: dict[str, PointTee] = {}
        for name in ("send_message", "dispatch", "dlr_webhook", "status_poller", "notify"):
            path = root / "functions" / name / "app.py"
            if not path.exists():
                continue
            module = load_module(path, f"bench_pm_{name}")
            runtime = module.runtime
            meter.attach(runtime.dynamodb)
            meter.attach(runtime.sqs)
            for extra in ("notify_sqs",):
                client = getattr(runtime, extra, None)
                if client is not None:
                    meter.attach(client)
            tee = PointTee(runtime.metrics)
            runtime.metrics = tee
            self.tees[name] = tee
            self.modules[name] = module

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        module = self.modules[name]
        with self.meter.measuring(name):
            return module.lambda_handler(event, LambdaContext(function_name=name))

    def settle_logs(self, usage: Usage) -> None:
        """Move the lines written since the last call into `usage`."""
        for line in self.out.take():
            size = len(line.encode()) + 1
            usage.log_bytes += size
            usage.log_lines += 1
            if line.startswith('{"_aws"'):
                usage.emf_bytes += size
                usage.emf_lines += 1
        for tee in self.tees.values():
            for name, value, unit, dims in tee.points:
                usage.single_metric_bytes += (
                    len(single_metric_document(name, value, unit, dims)) + 1
                )
                usage.single_metric_lines += 1
            tee.points.clear()


@dataclass(slots=True)
class Step:
    name: str
    handler: str
    messages: int
    usage: Usage
    samples_us: list[float]

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.samples_us) if self.samples_us else 0.0


@dataclass(slots=True)
class PerMessageReport:
    baseline_us: float
    steps: list[Step]
    flow: Usage
    flow_messages: int
    message_item_bytes: int
    memory_mb: dict[str, int]
    throughput: dict[str, float] = field(default_factory=dict)


class Scenario:
    """Runs the steps and the delivered-message flow against one set of handlers."""

    def __init__(self, handlers: Handlers, sqs: Any, queue_url: str, dynamodb: Any) -> None:
        self.h = handlers
        self.sqs = sqs
        self.queue_url = queue_url
        self.dynamodb = dynamodb
        self.serial = 0

    def _ids(self, count: int, prefix: str) -> list[str]:
        first = self.serial
        self.serial += count
        return [f"{prefix}-{n:06d}" for n in range(first, first + count)]

    def post_json(self, messages: list[dict[str, Any]], single: bool = False) -> list[str]:
        body = messages[0] if single else {"messages": messages}
        event = http_event("POST", "/v1/messages", body=json.dumps(body), headers=AUTH_JSON)
        answer = self.h.invoke("send_message", event)
        if answer.get("statusCode") != 202:
            raise RuntimeError(f"intake answered {answer.get('statusCode')}: {answer.get('body')}")
        document = json.loads(answer["body"])
        items = [document] if single else document["messages"]
        return [str(item["external_id"]) for item in items]

    def post_ofsc(self, ids: list[str]) -> None:
        from tools.soak import Planned, ofsc_envelope

        planned = [Planned("ofsc", i, PHONE, "text", "smartswitch", "", PHONE) for i in ids]
        event = http_event("POST", "/ofsc", body=ofsc_envelope(planned), headers=OFSC_HEADERS)
        answer = self.h.invoke("send_message", event)
        if answer.get("statusCode") != 200:
            raise RuntimeError(f"OFSC intake answered {answer.get('statusCode')}")

    def drain(self) -> list[dict[str, Any]]:
        """Every record on the dispatch queue (as the event source takes them)."""
        records: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=900,
                MessageSystemAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                return records
            records.extend(messages)

    def dispatch(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            event = sqs_event(records[start : start + 10], self.h.queue_arn, REGION)
            answer = self.h.invoke("dispatch", event)
            if answer.get("batchItemFailures"):
                raise RuntimeError(f"dispatch failures: {answer['batchItemFailures']}")
        self.sqs_usage_for_batches(len(records))

    def sqs_usage_for_batches(self, records: int) -> None:
        """The event source's own SQS calls: one receive and one delete batch per 10 records."""
        batches = math.ceil(records / 10)
        self.h.meter.usage.calls["SQS ReceiveMessage (event source)"] += batches
        self.h.meter.usage.calls["SQS DeleteMessageBatch (event source)"] += batches

    def gateway_ids(self, message_ids: list[str]) -> list[str]:
        found = []
        for message_id in message_ids:
            item = self.dynamodb.get_item(
                TableName=os.environ["MESSAGES_TABLE"], Key={"id": {"S": message_id}}
            )["Item"]
            found.append(item["gateway_id"]["S"])
        return found

    def receipts(self, gateway_ids: list[str], state: str) -> None:
        """One smartswitch DLR request carrying one group per gateway id."""
        pairs: list[tuple[str, str]] = []
        for gateway_id in gateway_ids:
            pairs += [("message_id", gateway_id), ("message_state", state)]
        query = urlencode([*pairs, ("_login", "smartswitch"), ("_password", "smartswitch-secret")])
        event = http_event(
            "POST",
            "/dlr/smartswitch",
            query=query,
            route="/dlr/{carrier}",
            path_parameters={"carrier": "smartswitch"},
        )
        answer = self.h.invoke("dlr_webhook", event)
        if answer.get("statusCode") != 200:
            raise RuntimeError(f"DLR answered {answer.get('statusCode')}: {answer.get('body')}")

    def message(self, n: int, prefix: str) -> dict[str, Any]:
        return {"message_id": f"{prefix}-{n}", "to": PHONE, "text": f"Your code is {n:06d}"}

    # ---- steps

    def measure(
        self,
        name: str,
        handler: str,
        repeats: int,
        per: int,
        action: Callable[[], None],
        warm_up: Callable[[], None] | None = None,
    ) -> Step:
        print(f"  bench: {name} ...", file=sys.stderr, flush=True)
        usage = Usage()
        samples: list[float] = []
        (warm_up or action)()  # not counted
        self.h.meter.take()
        self.h.settle_logs(Usage())
        for _ in range(repeats):
            action()
            taken = self.h.meter.take()
            self.h.settle_logs(taken)
            samples.append(taken.cpu_s / per * 1e6)
            usage.add(taken)
        return Step(name, handler, per * repeats, usage, samples)

    def intake_single(self) -> None:
        (mid,) = self._ids(1, "s")
        self.post_json([self.message(0, mid)], single=True)

    def intake_batch(self) -> None:
        ids = self._ids(100, "b")
        self.post_json([self.message(n, mid) for n, mid in enumerate(ids)])

    def ofsc_batch(self) -> None:
        ids = [str(8_000_000_000 + n) for n in range(self.serial, self.serial + 100)]
        self.serial += 100
        self.post_ofsc(ids)

    def queued_then_dispatched(self, count: int) -> list[str]:
        """count messages taken in and dispatched (setup; not measured)."""
        ids = self._ids(count, "q")
        message_ids: list[str] = []
        for start in range(0, count, 100):
            chunk = ids[start : start + 100]
            message_ids += self.post_json([self.message(n, m) for n, m in enumerate(chunk)])
        self.dispatch(self.drain())
        return message_ids


def run(root: Path, memory_mb: dict[str, int] | None = None) -> PerMessageReport:
    """Every step and the flow of 100 delivered messages, in one process under moto."""
    import boto3

    out = _Switch()
    base = baseline_us()
    env = {"POLLER_BATCH_LIMIT": "1000", "STATUS_TIMEOUT_SECONDS": "60"}
    with moto_stack(root, env, out) as stack:
        resources = stack.resources
        raw = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        meter = Meter(raw)
        queue_url = resources.queue_url("DispatchQueue")
        handlers = Handlers(root, meter, out, resources.queue_arn("DispatchQueue"))
        memory = memory_mb or {
            Path(fn.code_uri).name: fn.memory_size for fn in resources.functions.values()
        }
        scenario = Scenario(handlers, sqs, queue_url, raw)
        return _steps(scenario, base, memory)


def _steps(s: Scenario, base: float, memory: dict[str, int]) -> PerMessageReport:
    steps: list[Step] = []
    steps.append(s.measure("intake, single JSON message", "send_message", 10, 1, s.intake_single))
    steps.append(s.measure("intake, JSON batch of 100", "send_message", 2, 100, s.intake_batch))
    steps.append(s.measure("intake, OFSC batch of 100", "send_message", 2, 100, s.ofsc_batch))
    s.sqs.purge_queue(QueueUrl=s.queue_url)  # the records queued so far are not needed
    s.h.meter.take()
    s.h.settle_logs(Usage())

    def dispatch_ten() -> None:
        ids = s._ids(10, "d")
        s.post_json([s.message(n, m) for n, m in enumerate(ids)])
        records = s.drain()
        s.h.meter.take()
        s.h.settle_logs(Usage())
        s.dispatch(records)

    steps.append(s.measure("dispatch, SQS batch of 10", "dispatch", 3, 10, dispatch_ten))

    def receipts_hundred() -> None:
        message_ids = s.queued_then_dispatched(100)
        gateway_ids = s.gateway_ids(message_ids)
        s.h.meter.take()
        s.h.settle_logs(Usage())
        s.receipts(gateway_ids, "delivered")

    steps.append(
        s.measure("receipt, in a DLR batch of 100", "dlr_webhook", 1, 100, receipts_hundred)
    )

    def receipt_single() -> None:
        (message_id,) = s.queued_then_dispatched(1)
        (gateway_id,) = s.gateway_ids([message_id])
        s.h.meter.take()
        s.h.settle_logs(Usage())
        s.receipts([gateway_id], "delivered")

    steps.append(s.measure("receipt, alone in its request", "dlr_webhook", 3, 1, receipt_single))

    def poller_thousand() -> None:
        _due_copies(s, s.queued_then_dispatched(1)[0], 1000)
        s.h.meter.take()
        s.h.settle_logs(Usage())
        summary = s.h.invoke("status_poller", {"source": "aws.scheduler"})
        if summary.get("due", 0) < 1000:
            raise RuntimeError(f"the poller saw {summary.get('due')} due messages, not 1000")

    steps.append(
        s.measure(
            "poller run over 1,000 due messages",
            "status_poller",
            1,
            1000,
            poller_thousand,
            warm_up=lambda: s.h.invoke("status_poller", {"source": "aws.scheduler"}),
        )
    )
    flow, flow_messages, item_bytes = _flow(s)
    return PerMessageReport(base, steps, flow, flow_messages, item_bytes, memory)


def _due_copies(s: Scenario, model_id: str, count: int) -> list[str]:
    """`count` copies of a submitted message, all due: half past their status time-out (the
    run terminates them), half due for a check only (the run reschedules them)."""
    table = os.environ["MESSAGES_TABLE"]
    model = s.dynamodb.get_item(TableName=table, Key={"id": {"S": model_id}})["Item"]
    now = int(time.time())
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 3600))
    ids: list[str] = []
    for n in range(count):
        s.serial += 1
        message_id = f"{model_id[:20]}{s.serial:012d}"
        item = dict(model)
        item["id"] = {"S": message_id}
        item["message_id"] = {"S": f"due-{s.serial}"}
        item["open_shard"] = {"S": f"{zlib.crc32(message_id.encode()) % 16:02d}"}
        item["next_check_at"] = {"N": str(now - 5)}
        if n % 2 == 0:
            item["submitted_at"] = {"S": old}
        s.dynamodb.put_item(TableName=table, Item=item)
        ids.append(message_id)
    return ids


def _flow(s: Scenario) -> tuple[Usage, int, int]:
    """100 messages from intake to delivered the usual way: one JSON batch, dispatch 10 a time,
    an enroute and a delivered receipt each posted alone (as carriers do)."""
    count = 100
    s.h.meter.take()
    s.h.settle_logs(Usage())
    ids = s._ids(count, "f")
    message_ids = s.post_json([s.message(n, m) for n, m in enumerate(ids)])
    s.dispatch(s.drain())
    gateway_ids = s.gateway_ids(message_ids)
    flow = s.h.meter.take()
    s.h.settle_logs(flow)
    for state in ("enroute", "delivered"):
        for gateway_id in gateway_ids:
            s.receipts([gateway_id], state)
    receipts = s.h.meter.take()
    s.h.settle_logs(receipts)
    flow.add(receipts)
    delivered = sum(
        1
        for message_id in message_ids
        if s.dynamodb.get_item(
            TableName=os.environ["MESSAGES_TABLE"], Key={"id": {"S": message_id}}
        )["Item"]["status"]["S"]
        == "delivered"
    )
    if delivered != count:
        raise RuntimeError(f"{delivered} of {count} messages delivered in the flow")
    item = s.dynamodb.get_item(
        TableName=os.environ["MESSAGES_TABLE"], Key={"id": {"S": message_ids[0]}}
    )["Item"]
    return flow, count, item_size(item)


# --------------------------------------------------------------------------------------------
# Output


@dataclass(slots=True)
class Gap:
    name: str
    value: float
    floor: float

    @property
    def ratio(self) -> float:
        return self.value / self.floor if self.floor else 0.0


def cost_rows(report: PerMessageReport) -> tuple[list[list[str]], float]:
    """Cost per million delivered messages from the flow's measured counts."""
    flow, n = report.flow, report.flow_messages
    per = 1e6 / n
    invocations = sum(flow.invocations.values())
    gb_seconds = 0.0
    for handler in flow.invocations:
        aws_ms = AWS_REQUEST_MS * flow.calls_by[handler]
        carrier_ms = CARRIER_REQUEST_MS * n if handler == "dispatch" else 0.0
        seconds = flow.cpu_by[handler] + (aws_ms + carrier_ms) / 1000
        gb_seconds += seconds * report.memory_mb.get(handler, 512) / 1024
    sqs_requests = flow.sqs_calls
    http_requests = flow.invocations["send_message"] + flow.invocations["dlr_webhook"]
    log_bytes = (
        flow.log_bytes
        + flow.log_lines * LOG_EVENT_OVERHEAD_BYTES
        + invocations * LAMBDA_PLATFORM_LOG_BYTES
    )
    rows = [
        ("Lambda requests", invocations * per, LAMBDA_PER_REQUEST, "requests"),
        ("Lambda GB-seconds", gb_seconds * per, LAMBDA_PER_GB_SECOND, "GB-s"),
        (
            "DynamoDB write units (table + indexes)",
            (flow.wcu + flow.wcu_index) * per,
            DYNAMODB_PER_WRU,
            "WRU",
        ),
        ("DynamoDB read units", flow.rcu * per, DYNAMODB_PER_RRU, "RRU"),
        ("SQS requests", sqs_requests * per, SQS_PER_REQUEST, "requests"),
        ("HTTP API requests", http_requests * per, HTTP_API_PER_REQUEST, "requests"),
        ("CloudWatch Logs ingestion", log_bytes * per / 1e9, LOGS_PER_GB, "GB"),
    ]
    total = 0.0
    lines: list[list[str]] = []
    for name, quantity, price, unit in rows:
        dollars = quantity * price
        total += dollars
        lines.append(
            [name, f"{quantity:,.1f} {unit}", f"{price:.10f}".rstrip("0"), f"{dollars:.2f}"]
        )
    lines.append(["total", "", "", f"{total:.2f}"])
    return lines, total


def format_report(report: PerMessageReport, calls_floor: Gap | None = None) -> list[str]:
    base = report.baseline_us
    lines = [
        "Warm CPU per message, AWS stubbed (time inside AWS requests subtracted), median of the",
        f"repeats; baseline = one 1 KB JSON document serialised and parsed: {base:.1f} µs "
        "in this run",
        "",
    ]
    rows = []
    for step in report.steps:
        rows.append(
            [
                step.name,
                step.handler,
                f"{step.cpu_us:,.0f}",
                f"{step.cpu_us / base:,.0f}x",
                f"{step.usage.dynamodb_calls / step.messages:.2f}",
                f"{step.usage.wcu / step.messages:.2f}+{step.usage.wcu_index / step.messages:.2f}",
                f"{step.usage.rcu / step.messages:.2f}",
                f"{step.usage.log_bytes / step.messages:,.0f}",
            ]
        )
    lines += render(
        [
            "step",
            "handler",
            "CPU µs/msg",
            "vs baseline",
            "DDB calls/msg",
            "WRU/msg (table+idx)",
            "RRU/msg",
            "log B/msg",
        ],
        rows,
        "llrrrrrr",
    )
    flow, n = report.flow, report.flow_messages
    size_units = write_units(report.message_item_bytes)
    floor_wru = 5 * size_units + 1
    floor_rru = 2 * 0.5
    gaps = [
        Gap("DynamoDB write units per delivered message (table)", flow.wcu / n, floor_wru),
        Gap("DynamoDB read units per delivered message", flow.rcu / n, floor_rru),
    ]
    if calls_floor is not None:
        gaps.append(calls_floor)
    lines += [
        "",
        f"Delivered-message flow ({n} messages: one JSON batch, dispatch 10 per invocation, an",
        "enroute and a delivered receipt each posted alone)",
        f"  message item: {report.message_item_bytes} bytes ({size_units} write unit(s) a write)",
        f"  floor: writes = intake put + claim + submitted + enroute + delivered "
        f"({5 * size_units} WRU) + the carrier-id link (1 WRU) = {floor_wru} WRU;",
        "         reads = one eventually consistent read of the carrier-id link per receipt "
        f"= {floor_rru:.1f} RRU",
        "",
    ]
    rows = [[gap.name, f"{gap.value:.2f}", f"{gap.floor:.2f}", f"{gap.ratio:.2f}x"] for gap in gaps]
    rows.append(
        [
            "DynamoDB write units per delivered message (indexes, approx.)",
            f"{flow.wcu_index / n:.2f}",
            "-",
            "-",
        ]
    )
    before = flow.before_log_bytes / n
    after = flow.log_bytes / n
    rows.append(
        [
            "log bytes per delivered message (before -> after metric aggregation)",
            f"{before:,.0f} -> {after:,.0f}",
            "-",
            f"{after / before:.2f}x of before" if before else "-",
        ]
    )
    rows.append(
        [
            "EMF lines per delivered message (before -> after)",
            f"{flow.before_log_lines / n - (flow.log_lines - flow.emf_lines) / n:.2f} -> "
            f"{flow.emf_lines / n:.2f}",
            "-",
            "-",
        ]
    )
    lines += render(["per delivered message", "measured", "floor", "vs floor"], rows, "lrrr")
    if report.throughput:
        t = report.throughput
        calls = flow.dynamodb_calls / n
        capacity = t["backend_calls_per_second"] / max(calls, 1e-9)
        share = t["messages_per_second"] / capacity if capacity else 0.0
        gaps.append(Gap("local end-to-end throughput (capacity / achieved)", 1.0, share))
        lines += [
            "",
            "Local end-to-end throughput (moto and each environment in processes of their own)",
            f"  backend: {t['backend_calls_per_second']:.0f} DynamoDB calls per second "
            f"(moto, {t['backend_threads']:.0f} threads)",
            f"  a delivered message needs {calls:.1f} DynamoDB calls (the serialised part) -> "
            f"the backend can take {capacity:.1f} messages/s",
            f"  achieved: {t['messages_per_second']:.1f} messages/s end to end "
            f"({t['messages']:.0f} messages, no faults) = {share:.0%} of what the backend can take",
        ]
    cost, _ = cost_rows(report)
    lines += [
        "",
        "Cost per million delivered messages, AWS list prices eu-west-1 (stated in",
        "bench/permessage.py, 2025-06-01). Lambda duration = measured CPU"
        f" + {AWS_REQUEST_MS:.0f} ms per AWS request",
        f"+ {CARRIER_REQUEST_MS:.0f} ms per carrier submission, at the template's memory sizes",
        "",
    ]
    lines += render(["item", "per million", "USD per unit", "USD"], cost, "lrrr")
    worst = max((g for g in gaps if g.floor), key=lambda g: g.ratio)
    lines += [
        "",
        f"Largest gap to its floor: {worst.name}: {worst.ratio:.2f}x "
        f"({worst.value:.2f} against {worst.floor:.2f})",
    ]
    return lines
