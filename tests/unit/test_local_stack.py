"""LocalStack end to end on a tiny template: moto server, documents, environment, API, drivers."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack, is_tunable

TEMPLATE = """
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      ConfigParameterName: {Type: String, Default: /tiny/config}
      SecretsId: {Type: String, Default: tiny/secrets}
    Globals:
      Function:
        Runtime: python3.12
        Timeout: 5
        Environment:
          Variables:
            TABLE: !Ref Table
            QUEUE_URL: !Ref Jobs
            SEEN_URL: !Ref Seen
            CONFIG_PARAMETER: !Ref ConfigParameterName
            SECRETS_ID: !Ref SecretsId
            STATUS_TIMEOUT_SECONDS: 5
    Resources:
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          KeySchema: [{AttributeName: id, KeyType: HASH}]
          AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
          StreamSpecification: {StreamViewType: NEW_IMAGE}
      Jobs:
        Type: AWS::SQS::Queue
        Properties:
          VisibilityTimeout: 5
          RedrivePolicy: {deadLetterTargetArn: !GetAtt JobsDead.Arn, maxReceiveCount: 3}
      JobsDead:
        Type: AWS::SQS::Queue
      Seen:
        Type: AWS::SQS::Queue
      Api:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/api/
          Handler: app.handler
          Events:
            Post: {Type: HttpApi, Properties: {Path: /jobs, Method: POST}}
            Env: {Type: HttpApi, Properties: {Path: /env, Method: GET}}
      Worker:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/worker/
          Handler: app.handler
          Events:
            Jobs:
              Type: SQS
              Properties:
                Queue: !GetAtt Jobs.Arn
                FunctionResponseTypes: [ReportBatchItemFailures]
            Tick:
              Type: ScheduleV2
              Properties: {ScheduleExpression: rate(5 minutes)}
      Watcher:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/watcher/
          Handler: app.handler
          Events:
            Changes:
              Type: DynamoDB
              Properties:
                Stream: !GetAtt Table.StreamArn
                StartingPosition: LATEST
                FilterCriteria:
                  Filters:
                    - Pattern: '{"dynamodb": {"NewImage": {"id": {"S": [{"prefix": "job-"}]}}}}'
"""

API = """
import json
import os

import boto3

sqs = boto3.client("sqs")
ssm = boto3.client("ssm")
NAMES = ("TABLE", "QUEUE_URL", "STATUS_TIMEOUT_SECONDS", "AWS_ENDPOINT_URL", "PUBLIC_BASE_URL",
         "CUSTOM", "AWS_PROFILE")


def handler(event, context):
    if event["rawPath"] == "/env":
        config = ssm.get_parameter(Name=os.environ["CONFIG_PARAMETER"])["Parameter"]["Value"]
        body = {name: os.environ.get(name) for name in NAMES}
        body["config"] = json.loads(config)
        return {"statusCode": 200, "body": json.dumps(body)}
    sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=event["body"])
    return {"statusCode": 202, "body": "queued"}
"""

WORKER = """
import os

import boto3

dynamodb = boto3.client("dynamodb")


def handler(event, context):
    if "Records" not in event:
        dynamodb.put_item(TableName=os.environ["TABLE"], Item={"id": {"S": "tick"}})
        return None
    for record in event["Records"]:
        dynamodb.put_item(TableName=os.environ["TABLE"], Item={"id": {"S": record["body"]}})
    return {"batchItemFailures": []}
"""

WATCHER = """
import json
import os

import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    for record in event["Records"]:
        key = record["dynamodb"]["Keys"]["id"]["S"]
        sqs.send_message(QueueUrl=os.environ["SEEN_URL"], MessageBody=key)
"""


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
        return answer.status, answer.read()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(textwrap.dedent(TEMPLATE))
    for name, source in (("api", API), ("worker", WORKER), ("watcher", WATCHER)):
        folder = tmp_path / "functions" / name
        folder.mkdir(parents=True)
        (folder / "app.py").write_text(source)
    config = {"carriers": {}, "clients": {}, "sim": "${SIM_URL}/x", "api": "${API_URL}/y"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_is_tunable() -> None:
    assert is_tunable("STATUS_TIMEOUT_SECONDS")
    assert is_tunable("POWERTOOLS_LOG_LEVEL")
    assert is_tunable("SIM_DELAY_MS")
    assert not is_tunable("MESSAGES_TABLE")
    assert not is_tunable("DISPATCH_QUEUE_URL")


def test_stack_runs_a_tiny_template(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATUS_TIMEOUT_SECONDS", "99")  # a tunable: the environment wins
    monkeypatch.setenv("TABLE", "stale")  # wiring: the template wins
    monkeypatch.setenv("AWS_PROFILE", "someone-real")  # masked while the stack runs
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    secrets_path = tiny / "secrets.json"
    stack = LocalStack(
        port=0,
        sim_port=0,
        env={"SCHEDULE_SECONDS": "0.3", "CUSTOM": "yes", "SIM_DELAY_MS": "10"},
        template_path=tiny / "template.yaml",
        config_path=tiny / "config.json",
        secrets_path=secrets_path,
        sam_env_path=tiny / "sam-env.json",
    )
    with pytest.raises(RuntimeError, match="not running"):
        _ = stack.api_url
    stack.start()
    try:
        assert secrets_path.exists()  # copied from secrets.example.json
        assert stack.api_url.startswith("http://127.0.0.1:")
        assert stack.sim_url.startswith("http://127.0.0.1:")
        assert stack.simulator is not None
        assert stack.table_name("Table") == "Table"
        assert stack.queue_url("Jobs").endswith("/Jobs")

        status, body = http("GET", f"{stack.api_url}/env")
        env: dict[str, Any] = json.loads(body)
        assert status == 200
        assert env["TABLE"] == "Table"
        assert env["QUEUE_URL"] == stack.queue_url("Jobs")
        assert env["STATUS_TIMEOUT_SECONDS"] == "99"
        assert env["AWS_ENDPOINT_URL"] == stack.aws_endpoint
        assert env["PUBLIC_BASE_URL"] == stack.api_url
        assert env["CUSTOM"] == "yes"
        assert env["AWS_PROFILE"] is None
        assert env["config"]["sim"] == f"{stack.sim_url}/x"
        assert env["config"]["api"] == f"{stack.api_url}/y"
        # The env-vars file for `sam local`: every function, pointed at this stack from Docker.
        sam_env = json.loads((tiny / "sam-env.json").read_text())
        assert set(sam_env) == {"Api", "Worker", "Watcher"}
        port = stack.aws_endpoint.rsplit(":", 1)[1]
        assert sam_env["Api"]["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{port}"
        assert sam_env["Worker"]["TABLE"] == "Table"
        assert sam_env["Api"]["QUEUE_URL"].startswith("http://host.docker.internal:")
        assert sam_env["Api"]["STATUS_TIMEOUT_SECONDS"] == "99"
        secret = stack.clients.secretsmanager.get_secret_value(SecretId="tiny/secrets")
        assert json.loads(secret["SecretString"]) == stack.secrets

        status, _ = http("POST", f"{stack.api_url}/jobs", b"job-1")
        assert status == 202
        dynamodb = stack.clients.dynamodb

        def stored(key: str) -> bool:
            item = dynamodb.get_item(TableName="Table", Key={"id": {"S": key}})
            return "Item" in item

        wait_until(lambda: stored("job-1"))  # HTTP → SQS driver → worker
        wait_until(lambda: stored("tick"))  # schedule driver every SCHEDULE_SECONDS

        sqs = stack.clients.sqs
        seen: list[str] = []

        def watched() -> bool:
            answer = sqs.receive_message(QueueUrl=stack.queue_url("Seen"), WaitTimeSeconds=0)
            seen.extend(m["Body"] for m in answer.get("Messages", []))
            return "job-1" in seen

        wait_until(watched)  # stream driver, filtered on the job- prefix
        assert "tick" not in seen
        # Each function runs in processes of its own; this process imports no handler.
        pids = [pid for function in stack.functions.values() for pid in function.pids]
        assert pids and os.getpid() not in pids
        assert not [name for name in sys.modules if name.startswith("_local_fn_")]
    finally:
        stack.stop()
    assert os.environ["TABLE"] == "stale"
    assert os.environ["AWS_PROFILE"] == "someone-real"
    assert "AWS_ENDPOINT_URL" not in os.environ
    assert not any(function.pids for function in stack.functions.values())
    stack.stop()  # twice is harmless
