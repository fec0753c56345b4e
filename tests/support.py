"""Shared test helpers: API Gateway v2 events, SQS events, handler loading, local documents."""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parents[1]


def local_documents(sim_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The local stack's configuration document (carriers pointing at `sim_url`) and secrets."""
    config = (ROOT / "local" / "config.json").read_text().replace("${SIM_URL}", sim_url)
    secrets = (ROOT / "local" / "secrets.example.json").read_text()
    return json.loads(config), json.loads(secrets)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def load_handler(name: str) -> ModuleType:
    """Import functions/<name>/app.py afresh (its module-level runtime is rebuilt)."""
    shared = str(ROOT / "shared")
    if shared not in sys.path:
        sys.path.insert(0, shared)
    module_name = f"handler_{name}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeContext:
    function_name = "test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:test"
    memory_limit_in_mb = 512
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/test"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_event(
    method: str,
    path: str,
    *,
    route: str | None = None,
    body: str | bytes = "",
    headers: dict[str, str] | None = None,
    query: str = "",
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2.0 event."""
    is_binary = isinstance(body, bytes)
    text = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route or path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} {route or path}",
            "stage": "$default",
            "time": "22/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1795305600000,
        },
        "body": text,
        "isBase64Encoded": is_binary,
    }
    if params:
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


def sqs_event(records: list[tuple[str, str]], queue_arn: str) -> dict[str, Any]:
    """An SQS event of (receipt handle, body) pairs."""
    return {
        "Records": [
            {
                "messageId": uuid.uuid4().hex,
                "receiptHandle": handle,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795305600000",
                    "SenderId": "123456789012",
                    "ApproximateFirstReceiveTimestamp": "1795305600000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "eu-west-1",
            }
            for handle, body in records
        ]
    }


def bearer(token: str = "demo-token") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
