"""A fresh stack before `make config-push` (SPEC 6.1): the configuration parameter and the secret
hold the stack's starting content (no clients, no carriers). Every route answers a clear 503
that names what is missing, never a 500; queued work waits on its queue."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from local.api import http_event
from local.drivers import sqs_event
from tests.handlers.conftest import Stack

pytestmark = pytest.mark.unconfigured


def _concrete(path: str) -> tuple[str, dict[str, str]]:
    """/v1/messages/{message_id} → /v1/messages/x, with its path parameters."""
    parameters = dict.fromkeys(re.findall(r"\{(\w+)\+?\}", path), "x")
    return re.sub(r"\{\w+\+?\}", "x", path), parameters


def test_every_route_answers_503_naming_what_is_missing(stack: Stack) -> None:
    routes = stack.resources.routes()
    assert len(routes) >= 8  # every route of the template, including ones added later
    for function, route in routes:
        target, parameters = _concrete(route.path)
        method = "POST" if route.method == "ANY" else route.method
        event = http_event(
            method,
            target,
            route=route.path,
            path_parameters=parameters,
            body="{}" if method == "POST" else "",
            headers={"Authorization": "Bearer demo-token", "Content-Type": "application/json"},
        )
        answer = stack.invoke(stack.handler_once(function.code_uri.name), event)
        where = f"{route.route_key} ({function.logical_id})"
        assert answer["statusCode"] == 503, (where, answer)
        assert answer["headers"]["Retry-After"] == "60", where
        body = str(answer["body"])
        assert "not configured" in body, (where, body)
        assert "carriers" in body and "config-push" in body, (where, body)
        if target == "/ofsc":
            assert "<faultcode>" in body and "Server" in body, body
        elif function.logical_id == "SendMessageFunction":
            assert "not configured" in json.loads(body)["message"]


def test_queued_work_waits_and_the_poller_does_nothing(stack: Stack) -> None:
    dispatch = sqs_event(
        [{"MessageId": "r1", "ReceiptHandle": "h1", "Body": json.dumps({"id": "m1"})}],
        stack.resources.queue_arn("DispatchQueue"),
    )
    answer = stack.invoke(stack.handler_once("dispatch"), dispatch)
    assert answer["batchItemFailures"] == [{"itemIdentifier": "r1"}]
    jobs = sqs_event(
        [{"MessageId": "j1", "ReceiptHandle": "h2", "Body": "{}"}],
        stack.resources.queue_arn("NotifyQueue"),
    )
    assert stack.invoke(stack.handler_once("notify"), jobs)["batchItemFailures"] == [
        {"itemIdentifier": "j1"}
    ]
    summary = stack.invoke(stack.handler_once("status_poller"), {"source": "aws.scheduler"})
    assert "not configured" in summary["not_configured"]


def test_a_missing_parameter_is_named_too(stack: Stack) -> None:
    parameter = stack.resources.functions["SendMessageFunction"].environment["CONFIG_PARAMETER"]
    boto3.client("ssm").delete_parameter(Name=parameter)  # say, an older stack's name
    answer = stack.invoke(
        stack.handler_once("send_message"), http_event("GET", "/health", route="/health")
    )
    assert answer["statusCode"] == 503
    assert parameter in json.loads(answer["body"])["message"]
