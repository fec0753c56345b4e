"""The template reader: short-form tags, the real template.yaml, intrinsics, resource creation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.template import (
    API_ID,
    DEFAULT_TEMPLATE,
    STACK_NAME,
    Resolver,
    Resources,
    TableInfo,
    TemplateError,
    create_resources,
    load_template,
    parse_yaml,
    rate_seconds,
    table_arguments,
)

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def template() -> Any:
    return load_template(DEFAULT_TEMPLATE)


def write_template(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return path


# ------------------------------------------------------------------------------- YAML tags


def test_short_form_tags_become_long_form() -> None:
    doc = parse_yaml(
        textwrap.dedent(
            """
            a: !Ref Thing
            b: !GetAtt Queue.Arn
            c: !GetAtt [Queue, QueueName]
            d: !Sub "${AWS::Region}-x"
            e: !If [Cond, !Ref A, !Ref "AWS::NoValue"]
            f: !Select [1, !Split ["/", !Ref P]]
            g: !Join ["", [a, !Ref B]]
            h: !Not [!Equals [!Ref P, ""]]
            i: !Condition Cond
            j: !Base64 {Ref: P}
            """
        )
    )
    assert doc["a"] == {"Ref": "Thing"}
    assert doc["b"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert doc["c"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert doc["d"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert doc["e"] == {"Fn::If": ["Cond", {"Ref": "A"}, {"Ref": "AWS::NoValue"}]}
    assert doc["f"] == {"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": "P"}]}]}
    assert doc["g"] == {"Fn::Join": ["", ["a", {"Ref": "B"}]]}
    assert doc["h"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]}
    assert doc["i"] == {"Condition": "Cond"}
    assert doc["j"] == {"Fn::Base64": {"Ref": "P"}}


def test_loader_stays_safe() -> None:
    with pytest.raises(Exception, match="python/object"):
        parse_yaml("x: !!python/object/apply:os.system ['true']")


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


# ---------------------------------------------------------------------- the real template


def test_real_template_functions_and_handlers(template: Any) -> None:
    expected = {"SendMessageFunction", "DispatchFunction", "DlrWebhookFunction"}
    expected |= {"StatusPollerFunction"}
    assert expected <= set(template.functions)
    for fn in template.functions.values():
        assert fn.handler == "app.lambda_handler"
        assert (fn.code_uri / "app.py").is_file(), fn.logical_id
        assert fn.layers == (DEFAULT_TEMPLATE.parent / "shared",)
        # Globals merged with the function's own settings.
        assert "MESSAGES_TABLE" in fn.environment
        assert fn.memory_size == 512
    assert template.functions["DispatchFunction"].timeout == 60
    assert template.functions["SendMessageFunction"].timeout == 15
    assert template.functions["StatusPollerFunction"].reserved_concurrency == 1


def test_real_template_routes(template: Any) -> None:
    routes = {(fn.logical_id, r.route_key) for fn, r in template.routes()}
    assert {
        ("SendMessageFunction", "GET /health"),
        ("SendMessageFunction", "POST /ofsc"),
        ("SendMessageFunction", "POST /v1/messages"),
        ("SendMessageFunction", "GET /v1/messages/{message_id}"),
        ("SendMessageFunction", "DELETE /v1/messages/{message_id}"),
        ("SendMessageFunction", "GET /v1/docs"),
        ("DlrWebhookFunction", "POST /dlr/{carrier}"),
    } <= routes


def test_real_template_queue_trigger_and_schedule(template: Any) -> None:
    (trigger,) = template.functions["DispatchFunction"].sqs
    assert trigger.queue == "DispatchQueue"
    assert trigger.batch_size == 10
    assert trigger.report_batch_item_failures is True
    assert trigger.maximum_concurrency == 10  # !Ref DispatchMaxConcurrency, its default
    (schedule,) = template.functions["StatusPollerFunction"].schedules
    assert schedule.kind == "ScheduleV2"
    assert schedule.expression == "rate(1 minute)"  # !Ref PollerScheduleExpression
    assert schedule.period_seconds == 60.0


def test_real_template_stream_triggers_name_a_table(template: Any) -> None:
    for fn in template.functions.values():
        for stream in fn.streams:
            assert stream.table in template.tables
            props = template.tables[stream.table].properties
            assert props["StreamSpecification"]["StreamViewType"]


def test_real_template_environment_resolves(template: Any) -> None:
    resolver = Resolver(template, api_url="http://127.0.0.1:3000")
    env = {
        k: resolver.resolve(v)
        for k, v in template.functions["DispatchFunction"].environment.items()
    }
    assert env["MESSAGES_TABLE"] == "MessagesTable"
    assert env["DISPATCH_QUEUE_URL"].endswith("/DispatchQueue")
    assert env["CONFIG_PARAMETER"] == "/smsbridge/config"
    assert env["SECRETS_ID"] == "smsbridge/secrets"
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:3000"
    assert env["STATUS_TIMEOUT_SECONDS"] == "259200"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "smsbridge"


def test_real_template_table_arguments(template: Any) -> None:
    args = table_arguments(template.tables["MessagesTable"], Resolver(template))
    assert args["TableName"] == "MessagesTable"
    assert args["BillingMode"] == "PAY_PER_REQUEST"
    assert args["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    gsis = {g["IndexName"]: g for g in args["GlobalSecondaryIndexes"]}
    assert gsis["OpenByNextCheck"]["KeySchema"] == [
        {"AttributeName": "open_shard", "KeyType": "HASH"},
        {"AttributeName": "next_check_at", "KeyType": "RANGE"},
    ]
    assert "ProvisionedThroughput" not in gsis["OpenByNextCheck"]
    assert args["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }


def test_real_template_outputs_and_alarms_resolve(template: Any) -> None:
    resolver = Resolver(template, api_url="http://127.0.0.1:3000")
    outputs = resolver.resolve(template.outputs)
    assert outputs["ApiUrl"]["Value"] == "http://127.0.0.1:3000"
    assert outputs["MessagesTableName"]["Value"] == "MessagesTable"
    for logical_id, resource in template.resources.items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            props = resolver.resolve(resource["Properties"])
            assert "AlarmActions" not in props, logical_id  # !If ... AWS::NoValue drops it


def test_real_template_resources_in_moto(template: Any) -> None:
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        resources = create_resources(session, template)
        dynamodb = session.client("dynamodb")
        sqs = session.client("sqs")

        table = dynamodb.describe_table(TableName=resources.table_name("MessagesTable"))["Table"]
        assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} >= {"OpenByNextCheck"}
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert resources.tables["MessagesTable"].stream_arn == table["LatestStreamArn"]
        ttl = dynamodb.describe_time_to_live(TableName="MessagesTable")
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"

        dlq = resources.queues["DispatchDeadLetterQueue"]
        queue = resources.queues["DispatchQueue"]
        attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
        assert attrs["VisibilityTimeout"] == "360"
        assert attrs["MessageRetentionPeriod"] == "345600"
        redrive = json.loads(attrs["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq.arn
        assert int(redrive["maxReceiveCount"]) == 20
        assert queue.arn == f"arn:aws:sqs:{REGION}:123456789012:DispatchQueue"

        # Creating again reuses what exists (handler tests may call it twice).
        again = create_resources({"dynamodb": dynamodb, "sqs": sqs}, template)
        assert again.queue_url("DispatchQueue") == queue.url


# ------------------------------------------------------------------------------ intrinsics

SMALL = """
    AWSTemplateFormatVersion: "2010-09-09"
    Parameters:
      Stage: {Type: String, Default: dev}
      Size: {Type: Number, Default: 7}
      Empty: {Type: String, Default: ""}
      Names: {Type: CommaDelimitedList, Default: "a,b,c"}
    Mappings:
      Sizes:
        dev: {memory: 256}
    Conditions:
      IsDev: !Equals [!Ref Stage, dev]
      HasEmpty: !Not [!Equals [!Ref Empty, ""]]
      Both: !And [!Condition IsDev, !Not [!Condition HasEmpty]]
      Either: !Or [!Condition HasEmpty, !Equals [a, b]]
    Resources:
      Api:
        Type: AWS::Serverless::HttpApi
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          KeySchema: [{AttributeName: pk, KeyType: HASH}]
          AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
          BillingMode: PAY_PER_REQUEST
          StreamSpecification: {StreamViewType: NEW_IMAGE}
      Named:
        Type: AWS::DynamoDB::Table
        Properties:
          TableName: !Sub "${AWS::StackName}-${Stage}-named"
          KeySchema: [{AttributeName: pk, KeyType: HASH}]
          AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      Queue:
        Type: AWS::SQS::Queue
        Properties:
          RedrivePolicy:
            deadLetterTargetArn: !GetAtt Dead.Arn
            maxReceiveCount: 3
      Dead:
        Type: AWS::SQS::Queue
      Fifo:
        Type: AWS::SQS::Queue
        Properties: {FifoQueue: true}
"""


@pytest.fixture
def small(tmp_path: Path) -> Any:
    return load_template(write_template(tmp_path, SMALL))


def test_ref_parameters_pseudo_and_overrides(small: Any) -> None:
    r = Resolver(small, region="us-east-2")
    assert r.resolve({"Ref": "Stage"}) == "dev"
    assert r.resolve({"Ref": "Size"}) == "7"  # Ref gives strings
    assert r.resolve({"Ref": "Names"}) == ["a", "b", "c"]
    assert r.resolve({"Ref": "AWS::Region"}) == "us-east-2"
    assert r.resolve({"Ref": "AWS::StackName"}) == STACK_NAME
    assert r.resolve({"Ref": "AWS::URLSuffix"}) == "amazonaws.com"
    assert r.resolve({"Ref": "Api"}) == API_ID
    overridden = Resolver(small, parameters={"Stage": "prod"})
    assert overridden.resolve({"Ref": "Stage"}) == "prod"
    assert overridden.condition("IsDev") is False


def test_ref_and_getatt_of_tables_and_queues(small: Any) -> None:
    r = Resolver(small)
    assert r.resolve({"Ref": "Table"}) == "Table"
    assert r.resolve({"Ref": "Named"}) == f"{STACK_NAME}-dev-named"
    assert r.resolve({"Ref": "Queue"}) == "https://sqs.eu-west-1.amazonaws.com/123456789012/Queue"
    assert r.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:aws:sqs:eu-west-1:123456789012:Queue"
    assert r.resolve({"Fn::GetAtt": ["Fifo", "QueueName"]}) == "Fifo.fifo"
    created = Resources(
        region=REGION,
        tables={"Table": TableInfo("Table", "Table", "arn:t", "arn:t/stream/1")},
    )
    with_resources = Resolver(small, resources=created)
    assert with_resources.resolve({"Fn::GetAtt": ["Table", "StreamArn"]}) == "arn:t/stream/1"
    assert with_resources.resolve({"Fn::GetAtt": ["Table", "Arn"]}) == "arn:t"


def test_sub_forms(small: Any) -> None:
    r = Resolver(small)
    assert r.resolve({"Fn::Sub": "${AWS::Region}/${Stage}/${Table}"}) == "eu-west-1/dev/Table"
    assert r.resolve({"Fn::Sub": "${Queue.QueueName}:${!Literal}"}) == "Queue:${Literal}"
    assert r.resolve({"Fn::Sub": ["${X}-${Stage}", {"X": {"Ref": "Size"}}]}) == "7-dev"
    url = {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert r.resolve(url) == "https://local.execute-api.eu-west-1.amazonaws.com"
    assert Resolver(small, api_url="http://127.0.0.1:9/").resolve(url) == "http://127.0.0.1:9"


def test_conditions_and_if(small: Any) -> None:
    r = Resolver(small)
    assert r.condition("IsDev") is True
    assert r.condition("HasEmpty") is False
    assert r.condition("Both") is True
    assert r.condition("Either") is False
    assert r.resolve({"Fn::If": ["IsDev", "yes", "no"]}) == "yes"
    dropped = r.resolve({"a": {"Fn::If": ["HasEmpty", 1, {"Ref": "AWS::NoValue"}]}, "b": 2})
    assert dropped == {"b": 2}
    assert r.resolve([1, {"Ref": "AWS::NoValue"}, 3]) == [1, 3]


def test_select_split_join_findinmap(small: Any) -> None:
    r = Resolver(small)
    split = {"Fn::Split": ["/", "/smsbridge/config"]}
    assert r.resolve({"Fn::Select": [1, split]}) == "smsbridge"
    assert r.resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}, 3]]}) == "a-dev-3"
    assert r.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "memory"]}) == 256
    assert r.resolve({"Fn::Select": ["0", {"Ref": "Names"}]}) == "a"


def test_unknown_references_are_errors(small: Any) -> None:
    r = Resolver(small)
    with pytest.raises(TemplateError, match="Nope"):
        r.resolve({"Ref": "Nope"})
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        r.resolve({"Fn::ImportValue": "x"})
    with pytest.raises(TemplateError, match="out of range"):
        r.resolve({"Fn::Select": [5, ["a"]]})


def test_small_template_resources(small: Any) -> None:
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        resources = create_resources(session, small)
        assert set(resources.queues) == {"Queue", "Dead", "Fifo"}
        assert resources.queues["Fifo"].name == "Fifo.fifo"
        sqs = session.client("sqs")
        attrs = sqs.get_queue_attributes(
            QueueUrl=resources.queue_url("Queue"), AttributeNames=["RedrivePolicy"]
        )["Attributes"]
        assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == (
            resources.queue_arn("Dead")
        )
        assert resources.table_name("Named") == f"{STACK_NAME}-dev-named"
        assert resources.tables["Table"].stream_arn
        assert resources.tables["Named"].stream_arn is None
        described = session.client("dynamodb").describe_table(
            TableName=resources.table_name("Named")
        )["Table"]
        assert described["ProvisionedThroughput"]["ReadCapacityUnits"] == 5


FUNCTIONS = """
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Every: {Type: String, Default: rate(2 minutes)}
      Batch: {Type: Number, Default: 25}
    Globals:
      Function:
        Timeout: 9
        Environment:
          Variables: {SHARED: one, TABLE: !Ref Table}
    Resources:
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          KeySchema: [{AttributeName: pk, KeyType: HASH}]
          AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
          StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
      Queue:
        Type: AWS::SQS::Queue
      Worker:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/worker/
          Handler: app.handle
          MemorySize: 256
          Environment:
            Variables: {SHARED: two, OWN: !Sub "${Queue.QueueName}"}
          Events:
            Api:
              Type: HttpApi
              Properties: {Path: "/items/{id}", Method: get}
            All:
              Type: HttpApi
            Jobs:
              Type: SQS
              Properties: {Queue: !GetAtt Queue.Arn, BatchSize: !Ref Batch}
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
                    - Pattern: {dynamodb: {NewImage: {kind: {S: [a]}}}}
            Topic:
              Type: SNS
              Properties: {Topic: arn:aws:sns:eu-west-1:123456789012:t}
"""


def test_function_model(tmp_path: Path) -> None:
    template = load_template(write_template(tmp_path, FUNCTIONS))
    fn = template.functions["Worker"]
    assert fn.code_uri == tmp_path / "functions" / "worker"
    assert fn.module_path == "app"
    assert fn.handler_name == "handle"
    assert fn.timeout == 9
    assert fn.memory_size == 256
    assert fn.environment["SHARED"] == "two"
    assert fn.environment["TABLE"] == {"Ref": "Table"}
    assert [r.route_key for r in fn.routes] == ["GET /items/{id}", "$default"]
    (sqs,) = fn.sqs
    assert (sqs.queue, sqs.batch_size, sqs.report_batch_item_failures) == ("Queue", 25, False)
    (tick,) = fn.schedules
    assert (tick.kind, tick.expression, tick.input) == (
        "Schedule",
        "rate(2 minutes)",
        '{"job": "tick"}',
    )
    (stream,) = fn.streams
    assert stream.table == "Table"
    assert stream.starting_position == "TRIM_HORIZON"
    assert stream.maximum_retry_attempts == 1
    assert stream.report_batch_item_failures is True
    assert stream.filters == (
        {"eventName": ["MODIFY"]},
        {"dynamodb": {"NewImage": {"kind": {"S": ["a"]}}}},
    )
    assert fn.ignored_events == ("Topic (SNS)",)
    env = {k: Resolver(template).resolve(v) for k, v in fn.environment.items()}
    assert env == {"SHARED": "two", "TABLE": "Table", "OWN": "Queue"}


def test_literal_queue_arn_is_matched_by_name(tmp_path: Path) -> None:
    body = FUNCTIONS.replace("!GetAtt Queue.Arn", "arn:aws:sqs:eu-west-1:123456789012:Queue")
    template = load_template(write_template(tmp_path, body))
    assert template.functions["Worker"].sqs[0].queue == "Queue"
    bad = FUNCTIONS.replace("!GetAtt Queue.Arn", "arn:aws:sqs:eu-west-1:123456789012:Other")
    with pytest.raises(TemplateError, match="Jobs"):
        load_template(write_template(tmp_path, bad))
