"""AWS requests per accepted-and-submitted message, counted with botocore event hooks.

In one process under moto: the Messages table and the dispatch queue are created from
template.yaml, the configuration document and the secrets are seeded from local/, and the carrier
simulator answers the submissions. The send_message and dispatch handler modules are imported by
path and invoked with the events AWS would deliver. A `before-call` hook on the handlers' own
clients (the configuration's SSM and Secrets Manager clients too) records every API call.

Configuration reads are shown apart: they are cached per container, so they do not scale with
messages. Each handler module is loaded afresh, so its first invocation reads the configuration
as a fresh container of that function does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from unittest import mock

from bench.tables import ratio, render
from local.api import http_event
from local.drivers import sqs_event
from local.runtime import LambdaContext, load_module

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: Services whose calls are configuration reads (cached per container).
CONFIG_SERVICES = frozenset({"SSM", "Secrets Manager"})
AUTHORIZATION = {"authorization": "Bearer demo-token"}
REGION = "eu-west-1"
#: A valid UK mobile routed to smartswitch; its last two digits (56) make the simulator accept it.
#: (+447700900123 is in Ofcom's drama range, which phonenumbers does not take as a valid number.)
PHONE_NUMBER = "+447911123456"
BATCH_SIZE = 100
DISPATCH_BATCH = 10
#: Receipts are not part of this count: the simulator would post them only after this long, to an
#: address where nothing listens.
RECEIPT_DELAY_MS = 600_000
NO_LISTENER_URL = "http://127.0.0.1:9"
#: How many lines of the handlers' own output to show when a scenario fails.
LOG_TAIL_LINES = 40


class BenchFailure(Exception):
    """A handler did not do what the scenario needs; `log` holds the handlers' output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


@dataclass(slots=True)
class Call:
    """One API call a client made."""

    service: str
    operation: str
    #: DynamoDB: the kind of item the call addresses (message, gateway, rate); else "".
    item: str = ""
    #: The error code when the call failed (ConditionalCheckFailedException, ...).
    error: str = ""

    @property
    def label(self) -> str:
        return f"{self.operation} ({self.item})" if self.item else self.operation


def _item_kind(body: Any) -> str:
    """message, gateway or rate: what the key of a DynamoDB request points at."""
    try:
        request = json.loads(body) if isinstance(body, bytes | str) else {}
    except ValueError:
        return ""
    key = request.get("Key") or request.get("Item") or {}
    item_id = str(key.get("id", {}).get("S", "")) if isinstance(key, dict) else ""
    if not item_id:
        return "batch" if "RequestItems" in request else ""
    if item_id.startswith("gw#"):
        return "gateway"
    if item_id.startswith("rate#"):
        return "rate"
    return "message"


class CallRecorder:
    """Records the calls of every client it is attached to, in order."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._hook_id = f"smsbridge-bench-{id(self)}"

    def attach(self, client: Any) -> None:
        """Register the hooks on one boto3 client (idempotent)."""
        client.meta.events.register("before-call", self._before, unique_id=self._hook_id + "-b")
        client.meta.events.register("after-call", self._after, unique_id=self._hook_id + "-a")

    def _before(self, model: Any, params: Mapping[str, Any], context: Any, **_: Any) -> None:
        service = str(model.service_model.service_id)
        item = _item_kind(params.get("body")) if service == "DynamoDB" else ""
        context["smsbridge_bench_call"] = len(self._calls)
        self._calls.append(Call(service, str(model.name), item))

    def _after(self, http_response: Any, parsed: Any, context: Any, **_: Any) -> None:
        index = context.get("smsbridge_bench_call")
        if index is None or http_response is None or http_response.status_code < 300:
            return
        error = parsed.get("Error", {}).get("Code", "") if isinstance(parsed, dict) else ""
        self._calls[index].error = str(error) or f"HTTP {http_response.status_code}"

    def take(self) -> list[Call]:
        """The calls since the last take."""
        calls, self._calls = self._calls, []
        return calls


@dataclass(slots=True)
class Step:
    """One handler's share of the work on the scenario's messages."""

    name: str
    handler: str
    calls: list[Call]
    floor_per_message: float

    @property
    def aws_calls(self) -> list[Call]:
        return [call for call in self.calls if call.service not in CONFIG_SERVICES]

    @property
    def config_calls(self) -> list[Call]:
        return [call for call in self.calls if call.service in CONFIG_SERVICES]


@dataclass(slots=True)
class Scenario:
    title: str
    messages: int
    steps: list[Step]
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CallsReport:
    scenarios: list[Scenario]


# ------------------------------------------------------------------------------ the harness


def receive(sqs: SQSClient, queue_url: str, count: int) -> list[dict[str, Any]]:
    """Exactly `count` records from the queue, as the event source would take them."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, count - len(got)),
            VisibilityTimeout=900,
            MessageSystemAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            raise BenchFailure(f"expected {count} records on the dispatch queue, found {len(got)}")
        got.extend(dict(message) for message in messages)
    return got


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchFailure(message)


class Harness:
    """moto, the simulator and the two handler modules, set up once for both scenarios."""

    def __init__(
        self,
        root: Path,
        recorder: CallRecorder,
        dynamodb: DynamoDBClient,
        sqs: SQSClient,
        simulator: Any,
        queue_url: str,
        queue_arn: str,
    ) -> None:
        self.root = root
        self.recorder = recorder
        self.dynamodb = dynamodb
        self.sqs = sqs
        self.simulator = simulator
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        functions = root / "functions"
        self.send = load_module(functions / "send_message" / "app.py", "bench_send_message_app")
        self.dispatch = load_module(functions / "dispatch" / "app.py", "bench_dispatch_app")
        for module in (self.send, self.dispatch):
            runtime = module.runtime
            for client in (runtime.dynamodb, runtime.sqs, runtime.ssm, runtime.secretsmanager):
                recorder.attach(client)

    def _invoke(self, name: str, module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = module.lambda_handler(event, LambdaContext(function_name=name))
        return answer

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/messages; the decoded 202 answer."""
        headers = {"content-type": "application/json", **AUTHORIZATION}
        event = http_event("POST", "/v1/messages", body=json.dumps(body), headers=headers)
        answer = self._invoke("send_message", self.send, event)
        _check(
            answer.get("statusCode") == 202,
            f"POST /v1/messages answered {answer.get('statusCode')}: {answer.get('body')}",
        )
        decoded: dict[str, Any] = json.loads(answer["body"])
        return decoded

    def dispatch_records(self, records: list[dict[str, Any]]) -> None:
        """Invoke dispatch with one SQS event; every record must succeed."""
        answer = self._invoke("dispatch", self.dispatch, sqs_event(records, self.queue_arn, REGION))
        failures = answer.get("batchItemFailures")
        _check(not failures, f"dispatch reported failed records: {failures}")

    def status_of(self, sms_id: str) -> str:
        item = self.dynamodb.get_item(
            TableName=os.environ["MESSAGES_TABLE"], Key={"id": {"S": sms_id}}
        ).get("Item", {})
        return str(item.get("status", {}).get("S", "(no item)"))

    def submissions(self) -> int:
        return len(self.simulator.submissions())


def _accepted(answer: Mapping[str, Any]) -> str:
    """The smsbridge id of an accepted message (BenchFailure when it was not accepted)."""
    _check(
        answer.get("status") not in ("failed", "expired", "cancelled"),
        f"message not accepted: {answer}",
    )
    return str(answer["external_id"])


def scenario_single(harness: Harness) -> Scenario:
    """One message: one POST, its one record dispatched, then the same record again."""
    recorder = harness.recorder
    recorder.take()
    answer = harness.post({"to": PHONE_NUMBER, "text": "hello", "message_id": "bench-1"})
    sms_id = _accepted(answer)
    intake = Step("intake", "send_message", recorder.take(), floor_per_message=2.0)
    records = receive(harness.sqs, harness.queue_url, 1)
    before = harness.submissions()
    harness.dispatch_records(records)
    dispatch = Step("dispatch", "dispatch", recorder.take(), floor_per_message=2.0)
    status = harness.status_of(sms_id)
    _check(status == "submitted", f"after dispatch the message is {status!r}, not 'submitted'")
    harness.dispatch_records(records)
    repeat = recorder.take()
    submitted = harness.submissions() - before
    _check(
        submitted == 1,
        f"the carrier got {submitted} submissions for one message delivered twice (expected 1)",
    )
    repeat_ops = Counter(
        f"{c.service} {c.operation}" + (f" ({c.error})" if c.error else "") for c in repeat
    )
    return Scenario(
        title="A: one message (1 POST /v1/messages, its 1 SQS record dispatched)",
        messages=1,
        steps=[intake, dispatch],
        notes=[
            "second delivery of the same SQS record, AWS calls:",
            "  " + (", ".join(f"{op} x{n}" for op, n in repeat_ops.items()) or "none"),
            f"carrier submissions for the message delivered twice: {submitted} (asserted: 1)",
        ],
    )


def scenario_batch(harness: Harness) -> Scenario:
    """100 messages in one POST, their records dispatched 10 per invocation."""
    recorder = harness.recorder
    recorder.take()
    messages = [
        {"to": PHONE_NUMBER, "text": f"hello {n}", "message_id": f"bench-batch-{n:03d}"}
        for n in range(BATCH_SIZE)
    ]
    answer = harness.post({"messages": messages})
    ids = [_accepted(item) for item in answer["messages"]]
    _check(len(ids) == BATCH_SIZE, f"{len(ids)} answers for {BATCH_SIZE} messages")
    enqueue_calls = -(-BATCH_SIZE // 10)
    intake = Step(
        "intake",
        "send_message",
        recorder.take(),
        floor_per_message=(BATCH_SIZE + enqueue_calls) / BATCH_SIZE,
    )
    records = receive(harness.sqs, harness.queue_url, BATCH_SIZE)
    before = harness.submissions()
    for start in range(0, len(records), DISPATCH_BATCH):
        harness.dispatch_records(records[start : start + DISPATCH_BATCH])
    dispatch = Step("dispatch", "dispatch", recorder.take(), floor_per_message=2.0)
    submitted = harness.submissions() - before
    _check(submitted == BATCH_SIZE, f"{submitted} carrier submissions for {BATCH_SIZE} messages")
    not_submitted = [mid for mid in ids if harness.status_of(mid) != "submitted"]
    _check(not not_submitted, f"{len(not_submitted)} messages not 'submitted' after dispatch")
    return Scenario(
        title=(
            f"B: a batch of {BATCH_SIZE} messages (1 POST, records dispatched "
            f"{DISPATCH_BATCH} per invocation)"
        ),
        messages=BATCH_SIZE,
        steps=[intake, dispatch],
        notes=[f"carrier submissions: {submitted} for {BATCH_SIZE} messages"],
    )


@contextlib.contextmanager
def _aws_environment(values: dict[str, str]) -> Iterator[None]:
    """Dummy credentials and the handlers' variables, restored afterwards."""
    with mock.patch.dict(os.environ):
        for key in [key for key in os.environ if key.startswith(("AWS_", "POWERTOOLS_"))]:
            del os.environ[key]
        os.environ.update(values)
        yield


@dataclass(frozen=True, slots=True)
class MotoStack:
    """The template deployed in in-process moto, configured for the simulator."""

    resources: Any
    simulator: Any


@contextlib.contextmanager
def moto_stack(root: Path, env: dict[str, str], stdout: Any) -> Iterator[MotoStack]:
    """Deploy `template.yaml` into in-process moto with the local configuration and secrets,
    the simulator answering submissions (its receipts held back: the bench posts its own), and
    the functions' environment exported; stdout (the handlers' logs) goes to `stdout`."""
    import boto3
    from moto import mock_aws

    from local.cloudformation import deploy, store_documents
    from local.simulator import Simulator

    shared = str(root / "shared")
    if shared not in sys.path:
        sys.path.insert(0, shared)
    config_text = (root / "local" / "config.json").read_text(encoding="utf-8")
    secrets_text = (root / "local" / "secrets.example.json").read_text(encoding="utf-8")
    simulator = Simulator(
        NO_LISTENER_URL,
        json.loads(config_text),
        json.loads(secrets_text),
        delay_ms=RECEIPT_DELAY_MS,
    )
    sim_url = simulator.start()
    dummy = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_SERVICE_NAME": "smsbridge",
    }
    env = dummy | env
    try:
        with _aws_environment(env), mock_aws(), contextlib.redirect_stdout(stdout):
            resources = deploy(boto3.Session(), root / "template.yaml")
            for function in resources.functions.values():  # the template's environment
                os.environ.update({k: v for k, v in function.environment.items() if k not in env})
            store_documents(
                boto3.Session(), resources, config_text.replace("${SIM_URL}", sim_url), secrets_text
            )
            yield MotoStack(resources, simulator)
    finally:
        simulator.stop()


def run(root: Path) -> CallsReport:
    """Both scenarios; BenchFailure (with the handlers' output) when one cannot be completed."""
    import boto3

    output = io.StringIO()
    try:
        with moto_stack(root, {"POWERTOOLS_LOG_LEVEL": "WARNING"}, output) as stack:
            harness = Harness(
                root,
                CallRecorder(),
                boto3.client("dynamodb"),
                boto3.client("sqs"),
                stack.simulator,
                stack.resources.queue_url("DispatchQueue"),
                stack.resources.queue_arn("DispatchQueue"),
            )
            scenarios = [scenario_single(harness), scenario_batch(harness)]
    except BenchFailure as exc:
        raise BenchFailure(str(exc), output.getvalue()) from exc
    except Exception as exc:
        raise BenchFailure(f"{type(exc).__name__}: {exc}", output.getvalue()) from exc
    return CallsReport(scenarios)


# ------------------------------------------------------------------------------------ output


def _per_message(count: int, messages: int) -> str:
    return f"{count / messages:.2f}"


def _config_line(step: Step) -> str:
    counts = Counter(f"{call.service} {call.operation}" for call in step.config_calls)
    listed = ", ".join(f"{op} x{n}" for op, n in counts.items())
    return f"    {step.handler}: {listed or 'none (cached)'}"


def format_scenario(scenario: Scenario) -> list[str]:
    """Per-operation counts, then calls per message against the floor."""
    n = scenario.messages
    lines = [f"Scenario {scenario.title}", ""]
    rows: list[list[str]] = []
    for step in scenario.steps:
        counts = Counter((call.service, call.label) for call in step.aws_calls)
        failed = Counter((call.service, call.label) for call in step.aws_calls if call.error)
        for (service, label), count in counts.items():
            rows.append(
                [
                    step.name,
                    service,
                    label,
                    str(count),
                    str(failed[(service, label)]),
                    _per_message(count, n),
                ]
            )
    lines += render(
        ["step", "service", "operation (item)", "calls", "failed", "per message"], rows, "lllrrr"
    )
    lines.append("")
    rows = []
    total = 0
    floor = 0.0
    for step in scenario.steps:
        count = len(step.aws_calls)
        total += count
        floor += step.floor_per_message
        rows.append(
            [
                step.name,
                _per_message(count, n),
                f"{step.floor_per_message:.2f}",
                ratio(count / n, step.floor_per_message),
            ]
        )
    rows.append(["total", _per_message(total, n), f"{floor:.2f}", ratio(total / n, floor)])
    lines += render(["step", "calls per message", "floor", "vs floor"], rows, "lrrr")
    if any(step.config_calls for step in scenario.steps):
        lines += ["", "  configuration reads (once per container, not per message):"]
    else:
        lines += ["", "  configuration reads: none (cached by the containers above)"]
    lines += [_config_line(step) for step in scenario.steps if step.config_calls]
    lines += [f"  {note}" for note in scenario.notes]
    return lines


def format_report(report: CallsReport) -> list[str]:
    """Both scenarios, with the floor they are held against."""
    lines = [
        "AWS calls per accepted-and-submitted message",
        "(moto in-process; botocore before-call hooks on the handlers' own clients)",
        "floor (SPEC minimum): intake 1 PutItem + 1 SendMessage (1/10 of a SendMessageBatch in a",
        "batch); dispatch 1 conditional claim + 1 write of the carrier's answer",
    ]
    for scenario in report.scenarios:
        lines += ["", *format_scenario(scenario)]
    return lines


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> Sequence[str]:
    """The last lines of the handlers' output (for a failure report)."""
    return log.splitlines()[-lines:]
