"""One cold invocation in a fresh interpreter: import a handler, answer its first event, then more.

Run by `bench.coldstart`, never imported by it (standard library only until the clock starts):

    python -P bench/coldprobe.py < spec.json

The spec (JSON on stdin) names the target and carries the events, built by the parent with the
project's event builders. The environment is the function's own (the `sam local` env-vars
file). Clocks start after interpreter start-up and after the spec is read; the result is the
last stdout line, after RESULT_PREFIX (the handler's own log lines come before it):

- `import_ms`: importing the handler module (the floor: `import boto3` and one client);
- `answers_ms`: wall time of each answer, the first one included;
- `cold_ms`, `cold_cpu_ms`: import + first answer, wall and CPU time of the whole process
  (every thread);
- `results`: what each invocation returned, for the parent to check.

Kinds: `handler`; `floor` (boto3, one DynamoDB client, one GetItem per answer); `floor_carrier`
(the same with `requests` imported and one HTTP POST to the simulator per answer).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from typing import Any

RESULT_PREFIX = "bench-coldprobe-result: "


class Context:
    """The fields of the Python runtime's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, request_id: str, deadline: float) -> None:
        region = os.environ.get("AWS_REGION", "eu-west-1")
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "bench"
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _import_handler(path: str, shared: str) -> Any:
    """As the Lambda runtime does: the layer and the function's folder on the path, module `app`."""
    sys.path[:0] = [path.rpartition("/")[0], shared]
    spec = importlib.util.spec_from_file_location("app", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.lambda_handler


def _floor(spec: dict[str, Any], carrier: bool) -> Any:
    """The floor's "import" (boto3 and one client); returns its "handler": one GetItem (and one
    POST to the simulator)."""
    import boto3

    if carrier:
        import requests

        session = requests.Session()
    dynamodb = boto3.client("dynamodb")
    table = spec["table"]

    def answer(event: dict[str, Any], context: Any) -> Any:
        found = dynamodb.get_item(TableName=table, Key={"id": {"S": event["id"]}})
        result: dict[str, Any] = {"found": "Item" in found}
        if carrier:
            reply = session.post(f"{spec['sim_url']}/_sim/callback/bench-floor", json=event)
            result["statusCode"] = reply.status_code
        return result

    return answer


def main() -> int:
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    events: list[Any] = spec["events"]
    kind = spec["kind"]
    cpu0, start = time.process_time(), time.perf_counter()
    if kind == "handler":
        handler = _import_handler(spec["handler"], spec["shared"])
    else:
        handler = _floor(spec, carrier=kind == "floor_carrier")
    imported = time.perf_counter()
    answers_ms: list[float] = []
    results: list[Any] = []
    cold_cpu_ms = 0.0
    for number, event in enumerate(events):
        context = Context(
            spec.get("function_name", "bench"), f"bench-{number}", time.monotonic() + 60
        )
        began = time.perf_counter()
        results.append(handler(event, context))
        answers_ms.append((time.perf_counter() - began) * 1000)
        if number == 0:
            cold_cpu_ms = (time.process_time() - cpu0) * 1000
    report = {
        "import_ms": (imported - start) * 1000,
        "answers_ms": answers_ms,
        "cold_ms": (imported - start) * 1000 + answers_ms[0],
        "cold_cpu_ms": cold_cpu_ms,
        "results": results,
    }
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(report, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
