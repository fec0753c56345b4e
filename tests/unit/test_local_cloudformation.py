"""The local stack from the translated template: moto's CloudFormation creates the tables and
queues; routes, triggers, filters and each function's environment are read from the translation."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.cloudformation import (
    DEFAULT_TEMPLATE,
    REPO_ROOT,
    LocalStackResources,
    TemplateError,
    deploy,
    rate_seconds,
    store_documents,
    translate,
)

REGION = "eu-west-1"
API_URL = "http://127.0.0.1:3000"
MOTO_URL = "http://127.0.0.1:5000"


@pytest.fixture
def real() -> Iterator[tuple[Any, LocalStackResources]]:
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        parameters = {"PublicBaseUrl": API_URL, "LocalEndpointUrl": MOTO_URL}
        yield session, deploy(session, DEFAULT_TEMPLATE, parameters=parameters)


def write_template(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60.0),
        ("rate(5 minutes)", 300.0),
        ("rate(2 hours)", 7200.0),
        ("rate(1 day)", 86400.0),
        ("cron(0 12 * * ? *)", None),
        ("at(2030-01-01T00:00:00)", None),
    ],
)
def test_rate_seconds(expression: str, seconds: float | None) -> None:
    assert rate_seconds(expression) == seconds


def test_translate_gives_what_cloudformation_reads() -> None:
    cfn = translate(DEFAULT_TEMPLATE)
    assert "Transform" not in cfn
    types = {r["Type"] for r in cfn["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::ApiGatewayV2::Api", "AWS::Scheduler::Schedule"} <= types
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    code = cfn["Resources"]["DispatchFunction"]["Properties"]["Code"]
    assert (REPO_ROOT / code["S3Key"] / "app.py").is_file()


# ---------------------------------------------------------------------- the real template


def test_real_template_functions_and_handlers(real: tuple[Any, LocalStackResources]) -> None:
    _, resources = real
    expected = {"SendMessageFunction", "DispatchFunction", "DlrWebhookFunction"}
    assert expected | {"StatusPollerFunction"} <= set(resources.functions)
    for fn in resources.functions.values():
        assert fn.handler == "app.lambda_handler"
        assert (fn.code_uri / "app.py").is_file(), fn.logical_id
        assert fn.layers == (REPO_ROOT / "shared",)
        assert fn.memory_size == 512  # Globals
    assert resources.functions["DispatchFunction"].timeout == 60
    assert resources.functions["SendMessageFunction"].timeout == 15
    # No reservation unless a parameter asks (a new account's quota takes none).
    assert {fn.reserved_concurrency for fn in resources.functions.values()} == {None}


def test_real_template_routes(real: tuple[Any, LocalStackResources]) -> None:
    routes = {(fn.logical_id, r.route_key) for fn, r in real[1].routes()}
    assert routes == {
        ("SendMessageFunction", "GET /health"),
        ("SendMessageFunction", "POST /ofsc"),
        ("SendMessageFunction", "POST /v1/messages"),
        ("SendMessageFunction", "GET /v1/messages/{message_id}"),
        ("SendMessageFunction", "DELETE /v1/messages/{message_id}"),
        ("SendMessageFunction", "GET /v1/docs"),
        ("SendMessageFunction", "GET /v1/docs.json"),
        ("DlrWebhookFunction", "POST /dlr/{carrier}"),
        ("SearchFunction", "GET /v1/messages"),
        ("SearchFunction", "GET /v1/messages/{client}/{message_id}"),
        ("SearchFunction", "GET /v1/carriers"),
        ("SearchFunction", "GET /v1/me"),
        ("SearchFunction", "GET /console"),
        ("SearchFunction", "GET /console/{asset}"),
    }


def test_real_template_queue_trigger_and_schedule(real: tuple[Any, LocalStackResources]) -> None:
    functions = real[1].functions
    (trigger,) = functions["DispatchFunction"].sqs
    assert trigger.event == "Dispatch"
    assert trigger.queue == "DispatchQueue"
    assert trigger.batch_size == 10
    assert trigger.report_batch_item_failures is True
    assert trigger.maximum_concurrency == 10  # !Ref DispatchMaxConcurrency, its default
    (schedule,) = functions["StatusPollerFunction"].schedules
    assert (schedule.event, schedule.kind) == ("Schedule", "ScheduleV2")
    assert schedule.expression == "rate(1 minute)"  # !Ref PollerScheduleExpression
    assert schedule.period_seconds == 60.0
    assert schedule.input is None


def test_real_template_environment_resolves(real: tuple[Any, LocalStackResources]) -> None:
    resources = real[1]
    env = resources.functions["DispatchFunction"].environment
    assert env["MESSAGES_TABLE"] == resources.table_name("MessagesTable") == "MessagesTable"
    assert env["DISPATCH_QUEUE_URL"] == resources.queue_url("DispatchQueue")
    assert env["CONFIG_PARAMETER"] == "/smsbridge-local/config"  # the stack makes it
    assert env["SECRETS_ID"].startswith("arn:aws:secretsmanager:")  # !Ref of the stack's secret
    assert env["PUBLIC_BASE_URL"] == API_URL  # the PublicBaseUrl parameter
    assert env["AWS_ENDPOINT_URL"] == MOTO_URL  # the LocalEndpointUrl parameter
    assert env["STATUS_TIMEOUT_SECONDS"] == "259200"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "smsbridge/smsbridge-local"  # per stack
    # Only dispatch sends receipt URLs: the API's own functions never name the API.
    assert "PUBLIC_BASE_URL" not in resources.functions["SendMessageFunction"].environment


def test_real_template_resources_in_moto(real: tuple[Any, LocalStackResources]) -> None:
    session, resources = real
    dynamodb = session.client("dynamodb")
    table = dynamodb.describe_table(TableName=resources.table_name("MessagesTable"))["Table"]
    gsis = {g["IndexName"]: g for g in table["GlobalSecondaryIndexes"]}
    assert gsis["OpenByNextCheck"]["KeySchema"] == [
        {"AttributeName": "open_shard", "KeyType": "HASH"},
        {"AttributeName": "next_check_at", "KeyType": "RANGE"},
    ]
    assert gsis["LogByDay"]["Projection"]["ProjectionType"] == "INCLUDE"
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert resources.tables["MessagesTable"].stream_arn == table["LatestStreamArn"]
    ttl = dynamodb.describe_time_to_live(TableName="MessagesTable")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")

    sqs = session.client("sqs")
    dlq = resources.queues["DispatchDeadLetterQueue"]
    queue = resources.queues["DispatchQueue"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "360"
    assert attrs["MessageRetentionPeriod"] == "345600"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq.arn
    assert int(redrive["maxReceiveCount"]) == 20
    assert queue.arn == f"arn:aws:sqs:{REGION}:123456789012:DispatchQueue"


def test_without_a_public_base_url_the_api_stands_in_by_name() -> None:
    with mock_aws():
        resources = deploy(boto3.Session(region_name=REGION))
    env = resources.functions["DispatchFunction"].environment
    assert env["PUBLIC_BASE_URL"] == f"https://HttpApi.execute-api.{REGION}.amazonaws.com"
    assert "AWS_ENDPOINT_URL" not in env  # !If ... AWS::NoValue drops it, as in AWS


# ------------------------------------------------------------------ triggers and filters

FUNCTIONS = """
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Every: {Type: String, Default: rate(2 minutes)}
      Batch: {Type: Number, Default: 25}
    Globals:
      Function:
        Runtime: python3.12
        Timeout: 9
        Environment:
          Variables: {SHARED: one, TABLE: !Ref Table}
    Resources:
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          KeySchema: [{AttributeName: pk, KeyType: HASH}]
          AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
          StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
      Queue:
        Type: AWS::SQS::Queue
      Fifo:
        Type: AWS::SQS::Queue
        Properties: {FifoQueue: true}
      Worker:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/worker/
          Handler: app.handle
          MemorySize: 256
          Environment:
            Variables: {SHARED: two, OWN: !Sub "${Queue.QueueName}-${AWS::Region}"}
          Events:
            Api:
              Type: HttpApi
              Properties: {Path: "/items/{id}", Method: get}
            All:
              Type: HttpApi
            Jobs:
              Type: SQS
              Properties:
                Queue: !GetAtt Queue.Arn
                BatchSize: !Ref Batch
                FilterCriteria:
                  Filters:
                    - Pattern: '{"body": {"kind": ["job"]}}'
            Ordered:
              Type: SQS
              Properties: {Queue: arn:aws:sqs:eu-west-1:123456789012:Fifo.fifo, Enabled: false}
            Tick:
              Type: Schedule
              Properties: {Schedule: !Ref Every, Input: '{"job": "tick"}'}
            Changes:
              Type: DynamoDB
              Properties:
                Stream: !GetAtt Table.StreamArn
                StartingPosition: TRIM_HORIZON
                MaximumRetryAttempts: 1
                FunctionResponseTypes: [ReportBatchItemFailures]
                FilterCriteria:
                  Filters:
                    - Pattern: '{"eventName": ["MODIFY"]}'
                    - Pattern: '{"dynamodb": {"NewImage": {"kind": {"S": ["a"]}}}}'
"""


def test_function_model_and_triggers(tmp_path: Path) -> None:
    path = write_template(tmp_path, FUNCTIONS)
    with mock_aws():
        resources = deploy(boto3.Session(region_name=REGION), path)
    assert resources.queues["Fifo"].name == "Fifo.fifo"
    fn = resources.functions["Worker"]
    assert fn.code_uri == tmp_path / "functions" / "worker"
    assert (fn.module_path, fn.handler_name) == ("app", "handle")
    assert (fn.timeout, fn.memory_size, fn.reserved_concurrency) == (9, 256, None)
    assert fn.environment == {"SHARED": "two", "TABLE": "Table", "OWN": f"Queue-{REGION}"}
    assert sorted(r.route_key for r in fn.routes) == ["$default", "GET /items/{id}"]
    jobs, ordered = sorted(fn.sqs, key=lambda t: t.event)
    assert (jobs.event, jobs.queue, jobs.batch_size) == ("Jobs", "Queue", 25)
    assert jobs.report_batch_item_failures is False
    assert jobs.filters == ({"body": {"kind": ["job"]}},)
    assert (ordered.queue, ordered.enabled) == ("Fifo", False)  # a literal ARN, by name
    (tick,) = fn.schedules
    assert (tick.event, tick.kind, tick.expression) == ("Tick", "Schedule", "rate(2 minutes)")
    assert tick.input == '{"job": "tick"}'
    (stream,) = fn.streams
    assert (stream.event, stream.table, stream.starting_position) == (
        "Changes",
        "Table",
        "TRIM_HORIZON",
    )
    assert (stream.maximum_retry_attempts, stream.report_batch_item_failures) == (1, True)
    assert stream.batch_size == 100
    assert stream.filters == (
        {"eventName": ["MODIFY"]},
        {"dynamodb": {"NewImage": {"kind": {"S": ["a"]}}}},
    )


def test_an_invalid_template_is_a_template_error(tmp_path: Path) -> None:
    body = FUNCTIONS.replace("          Handler: app.handle\n", "")
    with mock_aws(), pytest.raises(TemplateError, match="Worker"):
        deploy(boto3.Session(region_name=REGION), write_template(tmp_path, body))


# ------------------------------------------------------------------ two stacks, one account


def test_two_stacks_of_the_template_live_side_by_side_in_one_moto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`smsbridge-staging` beside `smsbridge`, as SPEC 6.1 asks: no shared table, queue,
    configuration, secret or metric namespace, and each stack's functions, run with their own
    environment, read their own configuration and queue into their own queue."""
    from aws_lambda_powertools.utilities import parameters

    from smsbridge.config import Settings
    from smsbridge.runtime import Runtime
    from tests.support import local_documents

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        session = boto3.Session(region_name=REGION)
        stacks = {
            name: deploy(session, DEFAULT_TEMPLATE, stack_name=name)
            for name in ("smsbridge-staging", "smsbridge")
        }
        envs = {
            name: local.functions["DispatchFunction"].environment for name, local in stacks.items()
        }
        for key in (
            "MESSAGES_TABLE",
            "DISPATCH_QUEUE_URL",
            "CONFIG_PARAMETER",
            "SECRETS_ID",
            "POWERTOOLS_METRICS_NAMESPACE",
        ):
            assert envs["smsbridge-staging"][key] != envs["smsbridge"][key], key
        tables = session.client("dynamodb").list_tables()["TableNames"]
        assert {envs[name]["MESSAGES_TABLE"] for name in stacks} <= set(tables)

        for name, local in stacks.items():
            config, secrets = local_documents("http://127.0.0.1:9")
            config["routes"]["default"] = "ip2sms" if name == "smsbridge" else "smartswitch"
            store_documents(session, local, json.dumps(config), json.dumps(secrets))

        sqs = session.client("sqs")
        for name, env in envs.items():
            runtime = Runtime(
                settings=Settings.from_env(env),
                dynamodb=session.client("dynamodb"),
                sqs_client=sqs,
            )
            expected = "ip2sms" if name == "smsbridge" else "smartswitch"
            assert runtime.config().routes.default == expected
            assert runtime.queue().enqueue([f"id-of-{name}"]) == []
        for name, env in envs.items():
            received = sqs.receive_message(
                QueueUrl=env["DISPATCH_QUEUE_URL"], MaxNumberOfMessages=10
            ).get("Messages", [])
            assert [f"id-of-{name}" in m["Body"] for m in received] == [True], name
