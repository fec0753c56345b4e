"""Cold start as the caller feels it: a fresh process imports a handler and answers its first event.

The stack is the local one without its front and drivers, so that nothing else runs while a
sample is timed: a moto server (the local stack's) with the tables and queues of template.yaml,
the configuration document in SSM and the secrets in Secrets Manager (from local/), and the
carrier simulator (its receipts held back). Each function's environment is the one `make run`
writes for `sam local --env-vars` (the template's variables and `AWS_ENDPOINT_URL`), written to
a file of the same shape and read back from it.

Every sample is a fresh interpreter running `bench/coldprobe.py` with ten events of one route
(built with `local.api.http_event` and `local.drivers.sqs_event`), each on data of its own. The
floors are fresh processes too: `import boto3`, one client and one DynamoDB call per answer (the
HTTP routes); the same with `requests` and one HTTP call to the simulator (dispatch, notify).
Floors and routes are interleaved and their order rotates every round; one untimed round first
fills the bytecode caches. Every answer is checked, so a probe that stops answering correctly
fails the bench instead of timing an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import coldprobe
from bench.tables import ratio, render

PROBE = Path(coldprobe.__file__).resolve()
PROBE_TIMEOUT_SECONDS = 120
#: Answers per sample: the first is the cold one; the second and the tenth are reported too.
ANSWERS = 10
REGION = "eu-west-1"
#: Routed to smartswitch; its last two digits (56) make the simulator accept it.
PHONE = "+447911123456"
AUTH_JSON = {"authorization": "Bearer demo-token", "content-type": "application/json"}
OFSC_HEADERS = {"authorization": "Basic b2ZzYzpvZnNjLXNlY3JldA==", "content-type": "text/xml"}
#: The simulator posts receipts only this late (after the bench), to an address where nothing
#: listens.
RECEIPT_DELAY_MS = 3_600_000
NO_LISTENER_URL = "http://127.0.0.1:9"
FLOOR = "floor"
FLOOR_CARRIER = "floor_carrier"


class ProbeFailure(Exception):
    """A probe did not run, or an answer was not the one its route must give."""


@dataclass(slots=True)
class ColdStack:
    """The local stack's AWS side and simulator, quiet (no HTTP front, no drivers)."""

    root: Path
    endpoint: str
    clients: Any
    resources: Any
    simulator: Any
    sim_url: str
    #: `sam local --env-vars` shape: {function logical id: {variable: value}}.
    env_file: Path
    #: Prepared data, taken by the samples in turn.
    queued: list[dict[str, Any]] = field(default_factory=list)
    #: (sms id, carrier id) of submitted messages, for the receipts.
    submitted: list[tuple[str, str]] = field(default_factory=list)
    #: sms ids of submitted messages, for the notifications.
    threads: list[str] = field(default_factory=list)
    serial: int = 0

    def logical_id(self, folder: str) -> str:
        """The function whose code is functions/<folder>."""
        for fn in self.resources.functions.values():
            if fn.code_uri.name == folder:
                return str(fn.logical_id)
        raise ProbeFailure(f"template.yaml has no function in functions/{folder}")

    def environment(self, folder: str) -> dict[str, str]:
        """A Lambda-like process environment: this process's minus AWS_*, PYTHON* and
        POWERTOOLS_*, dummy credentials, then the function's entry of the env-vars file."""
        logical_id = self.logical_id(folder)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "PYTHON", "POWERTOOLS_"))
        }
        env.update(
            {
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_LAMBDA_FUNCTION_NAME": logical_id,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            }
        )
        env_vars: dict[str, dict[str, str]] = json.loads(self.env_file.read_text("utf-8"))
        env.update(env_vars[logical_id])
        return env

    def table(self) -> str:
        return str(self.resources.table_name("MessagesTable"))

    def next_ids(self, prefix: str, count: int = ANSWERS) -> list[str]:
        first = self.serial
        self.serial += count
        return [f"{prefix}-{n:05d}" for n in range(first, first + count)]


def _env_vars(resources: Any, endpoint: str) -> dict[str, dict[str, str]]:
    """What `LocalStack.sam_env_vars` writes, for loopback: each function's template variables
    and the moto endpoint."""
    return {
        fn.logical_id: {**fn.environment, "AWS_ENDPOINT_URL": endpoint}
        for fn in resources.functions.values()
    }


@contextlib.contextmanager
def cold_stack(root: Path) -> Iterator[ColdStack]:
    """Start moto, deploy template.yaml, store the local configuration and secrets, start the
    simulator; stop them all on exit."""
    from local import aws
    from local.cloudformation import STACK_NAME, deploy
    from local.simulator import Simulator

    shared = str(root / "shared")
    if shared not in sys.path:
        sys.path.insert(0, shared)  # the notify jobs are the layer's own

    config_text = (root / "local" / "config.json").read_text(encoding="utf-8")
    secrets_text = (root / "local" / "secrets.example.json").read_text(encoding="utf-8")
    moto = aws.MotoServer(aws.LOOPBACK)
    simulator = Simulator(
        NO_LISTENER_URL,
        json.loads(config_text),
        json.loads(secrets_text),
        delay_ms=RECEIPT_DELAY_MS,
    )
    with tempfile.TemporaryDirectory(prefix="smsbridge-coldstart-") as folder:
        try:
            endpoint = moto.start()
            sim_url = simulator.start(aws.LOOPBACK, 0).rstrip("/")
            clients = aws.clients(endpoint, REGION)
            resources = deploy(
                clients,
                root / "template.yaml",
                parameters={"PublicBaseUrl": NO_LISTENER_URL, "LocalEndpointUrl": endpoint},
                stack_name=STACK_NAME,
                root=root,
            )
            text = config_text.replace("${SIM_URL}", sim_url).replace("${API_URL}", NO_LISTENER_URL)
            clients.ssm.put_parameter(
                Name=resources.config_parameter,
                Value=text,
                Type="String",
                Overwrite=True,
                Tier="Advanced" if len(text.encode()) > 4096 else "Standard",
            )
            clients.secretsmanager.put_secret_value(
                SecretId=resources.secrets_id, SecretString=secrets_text
            )
            env_file = Path(folder) / "sam-env.json"
            env_file.write_text(json.dumps(_env_vars(resources, endpoint), indent=2), "utf-8")
            yield ColdStack(root, endpoint, clients, resources, simulator, sim_url, env_file)
        finally:
            simulator.stop()
            moto.stop()


# ------------------------------------------------------------------------------ one probe


@dataclass(slots=True)
class Sample:
    import_ms: float
    answers_ms: list[float]
    cold_ms: float
    cold_cpu_ms: float
    results: list[Any]


def run_probe(stack: ColdStack, spec: dict[str, Any], folder: str) -> Sample:
    """One fresh interpreter running coldprobe.py with `spec`, in `folder`'s environment."""
    done = subprocess.run(
        [sys.executable, "-P", str(PROBE)],
        cwd=stack.root,
        env=stack.environment(folder),
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
        check=False,
    )
    lines = done.stdout.splitlines()
    found = [line for line in lines if line.startswith(coldprobe.RESULT_PREFIX)]
    if done.returncode != 0 or not found:
        tail = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ProbeFailure("\n".join(tail[-12:]) or f"exit status {done.returncode}")
    report = json.loads(found[-1].removeprefix(coldprobe.RESULT_PREFIX))
    return Sample(
        report["import_ms"],
        report["answers_ms"],
        report["cold_ms"],
        report["cold_cpu_ms"],
        report["results"],
    )


def _handler_spec(stack: ColdStack, folder: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "handler",
        "handler": str(stack.root / "functions" / folder / "app.py"),
        "shared": str(stack.root / "shared"),
        "function_name": stack.logical_id(folder),
        "events": events,
    }


def _expect(condition: bool, what: str, result: Any) -> None:
    if not condition:
        raise ProbeFailure(f"{what}; the answer was {str(result)[:400]}")


def _status_of(stack: ColdStack, sms_id: str) -> str:
    item = stack.clients.dynamodb.get_item(TableName=stack.table(), Key={"id": {"S": sms_id}})
    return str(item.get("Item", {}).get("status", {}).get("S", "(no item)"))


# ------------------------------------------------------------------------------ the routes


@dataclass(slots=True)
class Target:
    """One row: a route (or a floor), how to make its events and how to check its answers."""

    name: str
    label: str
    #: functions/<folder> whose environment the process gets (and whose handler it imports).
    folder: str
    #: The floor this row is held against (empty for a floor).
    floor: str
    #: (stack) -> the spec of one sample.
    spec: Callable[[ColdStack], dict[str, Any]]
    #: (stack, spec, results) -> None, ProbeFailure when an answer is wrong.
    check: Callable[[ColdStack, dict[str, Any], list[Any]], None]


def _floor_spec(kind: str) -> Callable[[ColdStack], dict[str, Any]]:
    def spec(stack: ColdStack) -> dict[str, Any]:
        events = [{"id": sms_id} for sms_id in stack.next_ids("cold-floor")]
        return {"kind": kind, "table": stack.table(), "sim_url": stack.sim_url, "events": events}

    return spec


def _floor_check(stack: ColdStack, spec: dict[str, Any], results: list[Any]) -> None:
    for result in results:
        _expect(result.get("statusCode", 200) == 200, "the floor's HTTP call failed", result)


def _json_spec(stack: ColdStack) -> dict[str, Any]:
    from local.api import http_event

    events = [
        http_event(
            "POST",
            "/v1/messages",
            body=json.dumps({"message_id": message_id, "to": PHONE, "text": "Your code is 1234"}),
            headers=AUTH_JSON,
        )
        for message_id in stack.next_ids("cold-json")
    ]
    return _handler_spec(stack, "send_message", events)


def _json_check(stack: ColdStack, spec: dict[str, Any], results: list[Any]) -> None:
    for event, result in zip(spec["events"], results, strict=True):
        _expect(result.get("statusCode") == 202, "POST /v1/messages did not answer 202", result)
        answer = json.loads(result["body"])
        sent = json.loads(event["body"])
        _expect(answer.get("message_id") == sent["message_id"], "wrong message_id", result)
        status = _status_of(stack, str(answer.get("external_id")))
        _expect(status == "queued", f"the message is {status!r}, not queued", result)


def _ofsc_spec(stack: ColdStack) -> dict[str, Any]:
    from local.api import http_event
    from tools.soak import Planned, ofsc_envelope

    events = [
        http_event(
            "POST",
            "/ofsc",
            body=ofsc_envelope([Planned("ofsc", message_id, PHONE, "text", "", "", PHONE)]),
            headers=OFSC_HEADERS,
        )
        for message_id in stack.next_ids("cold-ofsc")
    ]
    return _handler_spec(stack, "send_message", events)


def _ofsc_check(stack: ColdStack, spec: dict[str, Any], results: list[Any]) -> None:
    for result in results:
        body = str(result.get("body", ""))
        _expect(result.get("statusCode") == 200, "POST /ofsc did not answer 200", result)
        _expect(
            "send_message_response" in body and "Fault" not in body,
            "POST /ofsc did not answer a send_message response",
            result,
        )
        _expect(":status>sending<" in body, "the message is not sending", result)


def _dlr_spec(stack: ColdStack) -> dict[str, Any]:
    from local.api import http_event

    if len(stack.submitted) < ANSWERS:
        raise ProbeFailure("no submitted messages left for the receipts (prepare more)")
    taken, stack.submitted = stack.submitted[:ANSWERS], stack.submitted[ANSWERS:]
    events = [
        http_event(
            "POST",
            "/dlr/smartswitch",
            query=urlencode(
                {
                    "message_id": gateway_id,
                    "message_state": "delivered",
                    "_login": "smartswitch",
                    "_password": "smartswitch-secret",
                }
            ),
            route="/dlr/{carrier}",
            path_parameters={"carrier": "smartswitch"},
        )
        for _, gateway_id in taken
    ]
    spec = _handler_spec(stack, "dlr_webhook", events)
    spec["sms_ids"] = [sms_id for sms_id, _ in taken]
    return spec


def _dlr_check(stack: ColdStack, spec: dict[str, Any], results: list[Any]) -> None:
    for result in results:
        _expect(result.get("statusCode") == 200, "POST /dlr/smartswitch did not answer 200", result)
    for sms_id, result in zip(spec["sms_ids"], results, strict=True):
        status = _status_of(stack, sms_id)
        _expect(status == "delivered", f"the receipt left the message {status!r}", result)


def _missing_spec(stack: ColdStack) -> dict[str, Any]:
    from local.api import http_event

    events = [
        http_event(
            "GET",
            f"/v1/messages/{message_id}",
            headers=AUTH_JSON,
            route="/v1/messages/{message_id}",
            path_parameters={"message_id": message_id},
        )
        for message_id in stack.next_ids("cold-missing")
    ]
    return _handler_spec(stack, "send_message", events)


def _missing_check(stack: ColdStack, spec: dict[str, Any], results: list[Any]) -> None:
    for result in results:
        _expect(result.get("statusCode") == 404, "GET of an unknown message: not 404", result)


def _dispatch_spec(stack: ColdStack) -> dict[str, Any]:
    from local.drivers import sqs_event

    if len(stack.queued) < ANSWERS:
        raise ProbeFailure("no queued messages left for dispatch (prepare more)")
    taken, stack.queued = stack.queued[:ANSWERS], stack.queued[ANSWERS:]
    arn = stack.resources.queue_arn("DispatchQueue")
    events = [sqs_event([message], arn, REGION) for message in taken]
    return _handler_spec(stack, "dispatch", events)


def _dispatch_check(stack: ColdStack, spec: dict[str, Any], results: list[Any]) -> None:
    for event, result in zip(spec["events"], results, strict=True):
        _expect(result == {"batchItemFailures": []}, "dispatch reported failures", result)
        sms_id = json.loads(event["Records"][0]["body"])["id"]
        status = _status_of(stack, sms_id)
        _expect(status == "submitted", f"after dispatch the message is {status!r}", result)


def _notify_spec(stack: ColdStack) -> dict[str, Any]:
    from local.drivers import sqs_event
    from smsbridge.notify import KIND_JSON, Job

    if len(stack.threads) < ANSWERS:
        raise ProbeFailure("no messages left to notify about (prepare more)")
    taken, stack.threads = stack.threads[:ANSWERS], stack.threads[ANSWERS:]
    url = stack.resources.queue_url("NotifyQueue")
    arn = stack.resources.queue_arn("NotifyQueue")
    events = []
    for thread in taken:
        job = Job(
            kind=KIND_JSON,
            client="demo",
            thread=thread,
            seq=1,
            after=0,
            message_id=f"bench-{thread}",
            status="delivered",
            word="delivered",
            description="",
            gateway_status="",
            status_changed_at="2026-01-01T00:00:00Z",
            delivered_at="2026-01-01T00:00:00Z",
            forwarded_to="",
            forwarded_from="",
            callback_url=f"{stack.sim_url}/_sim/callback/{thread}",
        )
        events.append(sqs_event(_through_queue(stack, url, [job.to_json()]), arn, REGION))
    spec = _handler_spec(stack, "notify", events)
    spec["threads"] = taken
    return spec


def _notify_check(stack: ColdStack, spec: dict[str, Any], results: list[Any]) -> None:
    for result in results:
        _expect(result == {"batchItemFailures": []}, "notify reported failures", result)
    told = {call["path"] for call in stack.simulator.callbacks()}
    missing = [t for t in spec["threads"] if f"/_sim/callback/{t}" not in told]
    _expect(not missing, f"no callback reached the simulator for {missing}", results)


def _through_queue(stack: ColdStack, url: str, bodies: list[str]) -> list[dict[str, Any]]:
    """Send `bodies` to the queue and receive them back, as the event source would."""
    sqs = stack.clients.sqs
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    return _drain(stack, url, len(bodies))


def _drain(stack: ColdStack, url: str, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        answer = stack.clients.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, count - len(got)),
            VisibilityTimeout=3600,
            MessageSystemAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            raise ProbeFailure(f"expected {count} records on {url}, found {len(got)}")
        got.extend(dict(message) for message in messages)
    return got


TARGETS = (
    Target(
        "floor",
        "floor: boto3 + 1 DynamoDB call",
        "send_message",
        "",
        _floor_spec(FLOOR),
        _floor_check,
    ),
    Target("json", "POST /v1/messages", "send_message", FLOOR, _json_spec, _json_check),
    Target("ofsc", "POST /ofsc", "send_message", FLOOR, _ofsc_spec, _ofsc_check),
    Target("dlr", "POST /dlr/smartswitch", "dlr_webhook", FLOOR, _dlr_spec, _dlr_check),
    Target(
        "missing",
        "GET /v1/messages/{id} (404)",
        "send_message",
        FLOOR,
        _missing_spec,
        _missing_check,
    ),
    Target(
        "floor_carrier",
        "floor: boto3 + requests, 1 DynamoDB + 1 HTTP call",
        "dispatch",
        "",
        _floor_spec(FLOOR_CARRIER),
        _floor_check,
    ),
    Target(
        "dispatch",
        "dispatch (1 record)",
        "dispatch",
        FLOOR_CARRIER,
        _dispatch_spec,
        _dispatch_check,
    ),
    Target("notify", "notify (1 job)", "notify", FLOOR_CARRIER, _notify_spec, _notify_check),
)


def prepare(stack: ColdStack, samples: int) -> None:
    """Data for `samples` samples of each route that needs some: queued messages for dispatch,
    submitted ones (with their carrier ids) for receipts and notifications. Made by the
    handlers themselves, in one untimed process each."""
    from local.api import http_event
    from local.drivers import sqs_event

    count = samples * ANSWERS
    messages = [
        {"message_id": message_id, "to": PHONE, "text": "Your code is 1234"}
        for message_id in stack.next_ids("cold-prep", 2 * count)
    ]
    events = [
        http_event(
            "POST",
            "/v1/messages",
            body=json.dumps({"messages": messages[start : start + 100]}),
            headers=AUTH_JSON,
        )
        for start in range(0, len(messages), 100)
    ]
    sample = run_probe(stack, _handler_spec(stack, "send_message", events), "send_message")
    for result in sample.results:
        _expect(result.get("statusCode") == 202, "preparing: POST /v1/messages failed", result)
    records = _drain(stack, stack.resources.queue_url("DispatchQueue"), 2 * count)
    stack.queued, to_submit = records[:count], records[count:]
    arn = stack.resources.queue_arn("DispatchQueue")
    events = [
        sqs_event(to_submit[start : start + 10], arn, REGION) for start in range(0, count, 10)
    ]
    sample = run_probe(stack, _handler_spec(stack, "dispatch", events), "dispatch")
    for result in sample.results:
        _expect(result == {"batchItemFailures": []}, "preparing: dispatch failed", result)
    for record in to_submit:
        sms_id = json.loads(record["Body"])["id"]
        item = stack.clients.dynamodb.get_item(TableName=stack.table(), Key={"id": {"S": sms_id}})
        gateway_id = item.get("Item", {}).get("gateway_id", {}).get("S")
        _expect(bool(gateway_id), "preparing: a dispatched message has no carrier id", item)
        stack.submitted.append((sms_id, str(gateway_id)))
        stack.threads.append(sms_id)


def probe_once(stack: ColdStack, target: Target) -> Sample:
    """One sample of `target`, its answers checked (ProbeFailure when one is wrong)."""
    spec = target.spec(stack)
    sample = run_probe(stack, spec, target.folder)
    target.check(stack, spec, sample.results)
    return sample


# ------------------------------------------------------------------------------ the bench


@dataclass(slots=True)
class Row:
    target: Target
    samples: list[Sample] = field(default_factory=list)
    error: str = ""

    def median(self, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.samples) if self.samples else 0.0

    @property
    def cold_ms(self) -> float:
        return self.median(lambda s: s.cold_ms)


@dataclass(slots=True)
class ColdStartReport:
    runs: int
    rows: dict[str, Row]
    load: str = ""

    @property
    def failed(self) -> bool:
        return any(row.error for row in self.rows.values())

    def ratio(self, name: str) -> float:
        """Import + first answer against the row's floor (wall time)."""
        row = self.rows[name]
        floor = self.rows[row.target.floor].cold_ms if row.target.floor else 0.0
        return row.cold_ms / floor if floor and row.samples else 0.0

    def cpu_ratio(self, name: str) -> float:
        """The same in CPU time: steadier than wall time on a busy machine."""
        row = self.rows[name]
        if not row.target.floor or not row.samples:
            return 0.0
        floor = self.rows[row.target.floor].median(lambda s: s.cold_cpu_ms)
        return row.median(lambda s: s.cold_cpu_ms) / floor if floor else 0.0

    def worst(self) -> Row | None:
        routes = [r for r in self.rows.values() if r.target.floor and r.samples]
        return max(routes, key=lambda r: self.ratio(r.target.name)) if routes else None


def _load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return ""


def measure(root: Path, runs: int) -> ColdStartReport:
    """`runs` timed rounds after one untimed round, every target once a round, order rotating."""
    rows = {target.name: Row(target) for target in TARGETS}
    with cold_stack(root) as stack:
        prepare(stack, runs + 1)
        for round_no in range(runs + 1):
            shift = round_no % len(TARGETS)
            for target in TARGETS[shift:] + TARGETS[:shift]:
                row = rows[target.name]
                if row.error:
                    continue
                try:
                    sample = probe_once(stack, target)
                except (ProbeFailure, subprocess.TimeoutExpired) as exc:
                    row.error = str(exc)
                    continue
                if round_no > 0:
                    row.samples.append(sample)
    return ColdStartReport(runs, rows, _load())


def format_report(report: ColdStartReport) -> list[str]:
    lines = [
        f"Cold start: import + first answer, median of {report.runs} fresh processes each "
        f"(interpreter start-up excluded; {report.load} at the end)",
        "Each process answers ten events of its route; CPU: the whole process (every thread)",
        "over import + first answer. Floors and routes interleaved, order rotating.",
        "",
    ]
    rows: list[list[str]] = []
    for row in report.rows.values():
        label = row.target.label
        if row.error:
            rows.append([label, "FAILED", *["-"] * 7])
            continue
        rows.append(
            [
                label,
                f"{row.median(lambda s: s.import_ms):.0f}",
                f"{row.median(lambda s: s.answers_ms[0]):.0f}",
                f"{row.cold_ms:.0f}",
                f"{row.median(lambda s: s.cold_cpu_ms):.0f}",
                f"{row.median(lambda s: s.answers_ms[1]):.1f}",
                f"{row.median(lambda s: s.answers_ms[-1]):.1f}",
                ratio(row.cold_ms, report.rows[row.target.floor].cold_ms)
                if row.target.floor
                else "(floor)",
                f"{report.cpu_ratio(row.target.name):.2f}x" if row.target.floor else "(floor)",
            ]
        )
    lines += render(
        [
            "route",
            "import ms",
            "1st answer ms",
            "import+1st ms",
            "CPU ms",
            "2nd ms",
            "10th ms",
            "vs floor",
            "CPU vs floor",
        ],
        rows,
        "lrrrrrrrr",
    )
    worst = report.worst()
    if worst is not None:
        lines += [
            "",
            f"WORST COLD START: {worst.target.label}: "
            f"{report.ratio(worst.target.name):.2f}x its floor "
            f"(CPU {report.cpu_ratio(worst.target.name):.2f}x)",
        ]
    for row in report.rows.values():
        if row.error:
            lines += [
                "",
                f"  {row.target.label}: FAILED",
                *("    " + s for s in row.error.splitlines()),
            ]
    return lines
