"""Handler tests: the real handlers against moto, tables and queues created from template.yaml,
carriers played by the local simulator on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.api import http_event
from local.aws import free_port
from local.cloudformation import REPO_ROOT, LocalStackResources, deploy, store_documents
from local.drivers import sqs_event
from local.runtime import LambdaContext, load_module
from local.simulator import Simulator
from tests.support import local_documents

REGION = "eu-west-1"
#: Settings the handler tests shorten (the template's values are production ones).
FAST = {"SUBMIT_BACKOFF_SECONDS": "0", "STATUS_TIMEOUT_SECONDS": "3600"}


def load_handler(function: str) -> ModuleType:
    """functions/<function>/app.py, imported afresh (a new execution environment)."""
    return load_module(REPO_ROOT / "functions" / function / "app.py")


@dataclass
class Stack:
    resources: LocalStackResources
    simulator: Simulator
    dynamodb: Any
    sqs: Any
    loaded: dict[str, ModuleType] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return self.resources.table_name("MessagesTable")

    @property
    def queue_url(self) -> str:
        return self.resources.queue_url("DispatchQueue")

    def handler(self, name: str) -> ModuleType:
        return load_handler(name)

    def handler_once(self, name: str) -> ModuleType:
        """One module per handler for this stack, as one warm Lambda environment."""
        if name not in self.loaded:
            self.loaded[name] = load_handler(name)
        return self.loaded[name]

    def invoke(self, module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = module.lambda_handler(event, LambdaContext(function_name="test"))
        return result

    def receive(self, max_messages: int = 10) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=0
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def drain_dispatch(self, dispatch: ModuleType) -> dict[str, Any]:
        """Deliver every visible record to the dispatch handler once, deleting the done ones."""
        records = self.receive()
        if not records:
            return {"batchItemFailures": []}
        event = sqs_event(records, self.resources.queue_arn("DispatchQueue"))
        result = self.invoke(dispatch, event)
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for record, message in zip(event["Records"], records, strict=True):
            if record["messageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return result

    def item(self, message_id: str) -> dict[str, Any] | None:
        from smsbridge.repository import MessageRepository

        message = MessageRepository(self.dynamodb, self.table).get(message_id)
        return None if message is None else message.public_view()


@pytest.fixture
def stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        **FAST,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # type: ignore[no-untyped-call]
        session = boto3.Session(region_name=REGION)
        resources = deploy(session, parameters={"PublicBaseUrl": "http://127.0.0.1:9"})
        port = free_port()
        config, secrets = local_documents(f"http://127.0.0.1:{port}")
        # Receipts go nowhere here (port 9 refuses): handler tests post their own.
        marker = request.node.get_closest_marker("sim_delay_ms")
        delay_ms = int(marker.args[0]) if marker else 10_000
        simulator = Simulator(
            "http://127.0.0.1:9", config, secrets, delay_ms=delay_ms, late_ms=2_500
        )
        simulator.start(port=port)
        if request.node.get_closest_marker("unconfigured") is None:
            store_documents(session, resources, json.dumps(config), json.dumps(secrets))
        # Each function's environment as the translated template sets it (tests override some).
        for function in resources.functions.values():
            for name, value in function.environment.items():
                if name not in FAST:
                    monkeypatch.setenv(name, value)
        try:
            yield Stack(resources, simulator, session.client("dynamodb"), session.client("sqs"))
        finally:
            simulator.stop()
            parameters.clear_caches()  # type: ignore[no-untyped-call]


def dlr_event(
    carrier: str,
    *,
    query: str = "",
    body: str | bytes = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST /dlr/{carrier} as API Gateway hands it to dlr_webhook."""
    return http_event(
        "POST",
        f"/dlr/{carrier}",
        route="/dlr/{carrier}",
        query=query,
        body=body,
        headers=headers,
        path_parameters={"carrier": carrier},
    )
