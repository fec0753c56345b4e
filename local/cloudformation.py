"""template.yaml as CloudFormation reads it, and the local stack built from that.

`translate` runs the SAM transform (`samtranslator`, the code behind `sam deploy`) on the
template. `deploy` hands the resource types moto's CloudFormation supports (tables, queues, SSM
parameters, secrets) to moto's CloudFormation, and reads what the drivers need from the
translated template: each `AWS::Lambda::Function` (code folder, handler, layers, environment),
the routes of the `AWS::ApiGatewayV2::Api`, `AWS::Lambda::EventSourceMapping` (SQS queues and
DynamoDB streams with their filters) and `AWS::Scheduler::Schedule` / `AWS::Events::Rule`.
Every intrinsic (environment values, batch sizes, schedule expressions ...) is resolved by moto's
CloudFormation as stack outputs, so nothing here re-implements CloudFormation.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
STACK_NAME = "smsbridge-local"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "eu-west-1"
#: The API id of the local HTTP API (`requestContext.apiId`).
API_ID = "local"
#: `CodeUri: functions/x/` becomes `s3://local-code/functions/x/` before the transform (the
#: translator wants S3 locations, as `sam package` leaves them); the reader turns them back.
CODE_BUCKET = "local-code"
#: What moto's CloudFormation creates locally; every other type is only read.
CREATED_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SSM::Parameter",
)
#: What `deploy` creates itself, before moto's CloudFormation (which has no model of it); a
#: `Ref` to it resolves to the secret's ARN, as in AWS.
SECRET_TYPE = "AWS::SecretsManager::Secret"
_TRIGGER_TYPES = (
    "AWS::Lambda::EventSourceMapping",
    "AWS::Scheduler::Schedule",
    "AWS::Events::Rule",
)
_NAME_PROPERTY = {"AWS::DynamoDB::Table": "TableName", "AWS::SQS::Queue": "QueueName"}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template uses something the local stack cannot model; the message names it."""


# ------------------------------------------------------------------------------ translation


class _NoManagedPolicies:
    """The translator asks for AWS's managed-policy map only for policies named by name."""

    def load(self) -> dict[str, str]:
        return {}


def translate(path: Path = DEFAULT_TEMPLATE, *, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """The CloudFormation template that `sam deploy` hands to CloudFormation (a fresh copy)."""
    path = Path(path).resolve()
    text: str = _translated(str(path), path.stat().st_mtime_ns, region)
    result: dict[str, Any] = json.loads(text)
    return result


@functools.cache
def _translated(path: str, mtime_ns: int, region: str) -> str:
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    doc = yaml_parse(Path(path).read_text(encoding="utf-8"))
    sections = [(doc.get("Globals") or {}).get("Function") or {}]
    sections += [r.get("Properties") or {} for r in (doc.get("Resources") or {}).values()]
    for props in sections:
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and "://" not in props[key]:
                props[key] = f"s3://{CODE_BUCKET}/{props[key]}"
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = os.environ.get("AWS_REGION") or saved or region
    try:
        result: dict[str, Any] = transform(doc, {}, _NoManagedPolicies())
    except InvalidDocumentException as exc:
        raise TemplateError("; ".join(e.message for e in exc.causes)) from None
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved
    return json.dumps(result)


def _target(value: Any) -> str | None:
    """The logical id behind `!Ref X` or `!GetAtt X.Attr`."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            return str(arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
    return None


# ------------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class HttpRoute:
    #: Upper case; "ANY" matches every method.
    method: str
    #: "/dlr/{carrier}", or "$default" for the catch-all route.
    path: str

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class SqsTrigger:
    event: str
    #: Logical id of the queue.
    queue: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    maximum_batching_window_seconds: int = 0
    maximum_concurrency: int | None = None
    #: FilterCriteria patterns (each a parsed JSON object); a record passes when any matches.
    filters: tuple[dict[str, Any], ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class StreamTrigger:
    event: str
    #: Logical id of the table whose stream feeds the function.
    table: str
    batch_size: int = 100
    starting_position: str = "LATEST"
    report_batch_item_failures: bool = False
    #: None: unset (-1, retry until the record expires, in AWS).
    maximum_retry_attempts: int | None = None
    filters: tuple[dict[str, Any], ...] = ()
    enabled: bool = True


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """`rate(5 minutes)` → 300.0; None for anything that is not a rate expression."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return float(int(match.group(1)) * _RATE_UNITS[match.group(2).rstrip("s")])


@dataclass(frozen=True, slots=True)
class ScheduleTrigger:
    event: str
    #: "ScheduleV2" (EventBridge Scheduler) or "Schedule" (EventBridge rule).
    kind: str
    expression: str
    #: The target input (JSON text) when the template sets one.
    input: str | None = None
    enabled: bool = True

    @property
    def period_seconds(self) -> float | None:
        return rate_seconds(self.expression)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    logical_id: str
    #: The function's folder (CodeUri), absolute.
    code_uri: Path
    #: "app.lambda_handler": module path, then the attribute.
    handler: str
    #: The translated function's Environment, resolved against the local stack.
    environment: dict[str, str]
    timeout: int = 3
    memory_size: int = 128
    reserved_concurrency: int | None = None
    #: Folders of the layers the function references (ContentUri), absolute.
    layers: tuple[Path, ...] = ()
    routes: tuple[HttpRoute, ...] = ()
    sqs: tuple[SqsTrigger, ...] = ()
    schedules: tuple[ScheduleTrigger, ...] = ()
    streams: tuple[StreamTrigger, ...] = ()

    @property
    def module_path(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def handler_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class TableInfo:
    logical_id: str
    name: str
    arn: str
    stream_arn: str | None = None


@dataclass(frozen=True, slots=True)
class QueueInfo:
    logical_id: str
    name: str
    url: str
    arn: str


@dataclass(slots=True)
class LocalStackResources:
    """What `deploy` made and read: by logical id."""

    region: str
    account_id: str = ACCOUNT_ID
    #: Every template parameter as the local stack set it.
    parameters: dict[str, str] = field(default_factory=dict)
    tables: dict[str, TableInfo] = field(default_factory=dict)
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    #: Physical ids of the other resources moto's CloudFormation created (SSM, secrets).
    physical_ids: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)

    def table_name(self, logical_id: str) -> str:
        return self.tables[logical_id].name

    def queue_url(self, logical_id: str) -> str:
        return self.queues[logical_id].url

    def queue_arn(self, logical_id: str) -> str:
        return self.queues[logical_id].arn

    def routes(self) -> list[tuple[FunctionSpec, HttpRoute]]:
        return [(fn, route) for fn in self.functions.values() for route in fn.routes]

    def _setting(self, name: str) -> str:
        env = next(iter(self.functions.values())).environment if self.functions else {}
        return str(env.get(name, ""))

    @property
    def config_parameter(self) -> str:
        """The SSM parameter the functions read their configuration from (CONFIG_PARAMETER)."""
        return self._setting("CONFIG_PARAMETER")

    @property
    def secrets_id(self) -> str:
        """The secret the functions read their credentials from (SECRETS_ID)."""
        return self._setting("SECRETS_ID")


# ------------------------------------------------------------------------------- deployment


class _Outputs:
    """Intrinsics collected as stack outputs, for moto's CloudFormation to resolve.

    A resource the local stack does not create (the HTTP API, a function) resolves to its
    logical id: `https://${HttpApi}.execute-api...` becomes `https://HttpApi.execute-api...`.
    """

    def __init__(
        self,
        resources: Mapping[str, Any],
        created: Mapping[str, Any],
        refs: Mapping[str, str] | None = None,
    ) -> None:
        self.absent = set(resources) - set(created)
        #: What `Ref` gives for resources made outside moto's CloudFormation (secrets: the ARN).
        self.refs = dict(refs or {})
        self.values: dict[str, Any] = {}
        self.resolved: dict[str, str] = {}

    def _stand_in(self, name: str) -> str:
        return self.refs.get(name, name)

    def _stand_ins(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._stand_ins(v) for v in value]
        if not isinstance(value, dict):
            return value
        target = _target(value)
        if target in self.absent:
            if "Ref" in value:
                return self._stand_in(target)
            return f"{target}.{value['Fn::GetAtt'][1]}"
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            text, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
            text = _SUB_VARIABLE.sub(
                lambda m: (
                    self._stand_in(m.group(1))
                    if m.group(1).split(".")[0] in self.absent
                    else m.group(0)
                ),
                text,
            )
            return {"Fn::Sub": [text, self._stand_ins(variables)] if variables else text}
        return {k: self._stand_ins(v) for k, v in value.items()}

    def collect(self, value: Any) -> Any:
        """The value with each intrinsic replaced by a placeholder output key."""
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
                key = f"Local{len(self.values)}"
                self.values[key] = {"Value": self._stand_ins(value)}
                return _Placeholder(key)
            return {k: self.collect(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.collect(v) for v in value]
        return value

    def fill(self, value: Any) -> Any:
        """The value with placeholders resolved; an output moto left out was AWS::NoValue."""
        if isinstance(value, _Placeholder):
            return self.resolved.get(value.key, _NO_VALUE)
        if isinstance(value, dict):
            filled = {k: self.fill(v) for k, v in value.items()}
            return {k: v for k, v in filled.items() if v is not _NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.fill(v) for v in value) if v is not _NO_VALUE]
        return value


@dataclass(frozen=True, slots=True)
class _Placeholder:
    key: str


_NO_VALUE = object()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _true(value: Any) -> bool:
    return _text(value).lower() not in ("false", "disabled")


def _local_urls(value: str, local: LocalStackResources) -> str:
    """Queue URLs as the endpoint answers them (moto's CloudFormation gives AWS-style ones)."""
    for queue in local.queues.values():
        value = value.replace(local.physical_ids[queue.logical_id], queue.url)
    return value


def _by_arn(arn: str, local: LocalStackResources) -> str:
    """The logical id of the queue or table a literal ARN names (by its local name)."""
    for queue in local.queues.values():
        if arn.rsplit(":", 1)[-1] == queue.name:
            return queue.logical_id
    for table in local.tables.values():
        if arn.split(":table/", 1)[-1].split("/", 1)[0] == table.name:
            return table.logical_id
    return arn


def _create_secrets(session: Any, resources: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """The template's secrets, made directly (moto's CloudFormation has no model of them):
    logical id → ARN. A generated name, as CloudFormation gives one, unless a literal is set."""
    arns: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != SECRET_TYPE:
            continue
        props = resource.get("Properties") or {}
        name = props.get("Name")
        content = props.get("SecretString")
        created = session.client("secretsmanager").create_secret(
            Name=name if isinstance(name, str) else f"{prefix}{logical_id}",
            SecretString=content if isinstance(content, str) else "{}",
        )
        arns[logical_id] = str(created["ARN"])
    return arns


def store_documents(
    session: Any, local: LocalStackResources, config_text: str, secrets_text: str
) -> None:
    """Put the configuration document and the secret where the stack's functions read them
    (their CONFIG_PARAMETER and SECRETS_ID), as `make config-push` / `secrets-push` do in AWS."""
    if local.config_parameter:
        session.client("ssm").put_parameter(
            Name=local.config_parameter,
            Value=config_text,
            Type="String",
            Overwrite=True,
            Tier="Advanced" if len(config_text.encode()) > 4096 else "Standard",
        )
    if local.secrets_id:
        secretsmanager = session.client("secretsmanager")
        try:
            secretsmanager.put_secret_value(SecretId=local.secrets_id, SecretString=secrets_text)
        except secretsmanager.exceptions.ResourceNotFoundException:
            # A template that names a secret it does not make (the stack's own always exists).
            secretsmanager.create_secret(Name=local.secrets_id, SecretString=secrets_text)


def _filters(criteria: Any) -> tuple[dict[str, Any], ...]:
    patterns = [f.get("Pattern") for f in (criteria or {}).get("Filters") or []]
    parsed = [json.loads(p) if isinstance(p, str) else p for p in patterns]
    if not all(isinstance(p, dict) for p in parsed):
        raise TemplateError(f"FilterCriteria patterns must be JSON objects: {patterns!r}")
    return tuple(parsed)


def _routes(api: Mapping[str, Any]) -> Iterator[tuple[str, HttpRoute]]:
    """(function logical id, route) from an HTTP API's OpenAPI body (SAM puts the routes there)."""
    for path, operations in (
        ((api.get("Properties") or {}).get("Body") or {}).get("paths", {}).items()
    ):
        for method, operation in operations.items():
            uri = (operation.get("x-amazon-apigateway-integration") or {}).get("uri")
            text = json.dumps(uri)
            found = re.search(r"\$\{(\w+)\.Arn\}", text) or re.search(r'"(\w+)", "Arn"', text)
            if found is None:
                continue
            verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            yield found.group(1), HttpRoute(verb, "$default" if path == "/$default" else path)


def deploy(
    session: Any,
    template: Path | Mapping[str, Any] = DEFAULT_TEMPLATE,
    *,
    parameters: Mapping[str, str] | None = None,
    stack_name: str = STACK_NAME,
    root: Path = REPO_ROOT,
) -> LocalStackResources:
    """Create the template's tables, queues, parameters and secrets through moto's CloudFormation
    and read its functions and their triggers.

    `session` is anything with `client(service)` (a boto3 Session inside `mock_aws`, or
    `local.aws.AwsClients`). `template` is template.yaml's path or its translation (code folders
    then relative to `root`). The local stack's (`STACK_NAME`) tables and queues are named
    after their logical id, so that `make report` finds `MessagesTable`; another stack's after
    the stack and the logical id (`<stack>-MessagesTable`), so that several stacks deployed
    into one moto never share a table, queue, parameter or secret, as in AWS.
    """
    if not isinstance(template, Mapping):
        root = Path(template).resolve().parent
    cfn = dict(template) if isinstance(template, Mapping) else translate(template)
    resources: dict[str, dict[str, Any]] = cfn["Resources"]
    prefix = "" if stack_name == STACK_NAME else f"{stack_name}-"
    created: dict[str, Any] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] in CREATED_TYPES:
            created[logical_id] = json.loads(json.dumps(resource))
            name_key = _NAME_PROPERTY.get(resource["Type"])
            props = created[logical_id].setdefault("Properties", {})
            if name_key and name_key not in props:
                fifo = _true(props.get("FifoQueue", False)) and "FifoQueue" in props
                name = f"{prefix}{logical_id}"
                props[name_key] = f"{name}.fifo" if fifo else name
    secrets = _create_secrets(session, resources, f"{stack_name}-")

    outputs = _Outputs(resources, created, secrets)
    functions: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Lambda::Function" and "S3Key" in (props.get("Code") or {}):
            env = (props.get("Environment") or {}).get("Variables") or {}
            functions[logical_id] = {
                "env": outputs.collect(env),
                "settings": outputs.collect(
                    {
                        k: props.get(k)
                        for k in ("Timeout", "MemorySize", "ReservedConcurrentExecutions")
                    }
                ),
            }
    triggers: dict[str, Any] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] in _TRIGGER_TYPES:
            # The links to functions, queues and tables are read as logical ids below.
            props = dict(resource.get("Properties") or {})
            targets = props.pop("Targets", None) or [props.pop("Target", None) or {}]
            props["Inputs"] = [t.get("Input") for t in targets]
            props.pop("FunctionName", None)
            props.pop("EventSourceArn", None)
            triggers[logical_id] = outputs.collect(props)

    values = {**{k: _text(v.get("Default")) for k, v in cfn.get("Parameters", {}).items()}}
    values.update(parameters or {})
    stack: dict[str, Any] = {
        key: cfn[key]
        for key in ("AWSTemplateFormatVersion", "Parameters", "Conditions", "Mappings")
        if key in cfn
    }
    stack["Resources"] = created or {"Nothing": {"Type": "AWS::SQS::Queue"}}
    stack["Outputs"] = outputs.values
    cloudformation = session.client("cloudformation")
    try:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(stack),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": v}
                for k, v in values.items()
                if k in cfn.get("Parameters", {})
            ],
        )
        # moto resolves outputs when they are read: a value naming a resource it did not create
        # (say the API, when PublicBaseUrl is empty) fails here.
        described = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except Exception as exc:
        raise TemplateError(f"moto's CloudFormation cannot build the local stack: {exc!r}") from exc
    outputs.resolved = {
        o["OutputKey"]: o.get("OutputValue", "") for o in described.get("Outputs", [])
    }

    region = cloudformation.meta.region_name or DEFAULT_REGION
    local = LocalStackResources(region=region, parameters=values)
    local.physical_ids.update(secrets)
    sqs, dynamodb = session.client("sqs"), session.client("dynamodb")
    listed = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    for item in listed:
        logical_id, physical = item["LogicalResourceId"], item["PhysicalResourceId"]
        local.physical_ids[logical_id] = physical
        if item["ResourceType"] == "AWS::SQS::Queue" and logical_id in created:
            name = physical.rstrip("/").rsplit("/", 1)[-1]
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            local.queues[logical_id] = QueueInfo(
                logical_id, name, url, arn["Attributes"]["QueueArn"]
            )
            local.account_id = local.queues[logical_id].arn.split(":")[4]
        elif item["ResourceType"] == "AWS::DynamoDB::Table":
            table = dynamodb.describe_table(TableName=physical)["Table"]
            ttl = outputs.fill(created[logical_id]["Properties"].get("TimeToLiveSpecification"))
            if ttl and _true(ttl.get("Enabled", False)):  # moto's CloudFormation skips TTL
                dynamodb.update_time_to_live(
                    TableName=physical,
                    TimeToLiveSpecification={
                        "AttributeName": ttl["AttributeName"],
                        "Enabled": True,
                    },
                )
            local.tables[logical_id] = TableInfo(
                logical_id, physical, table["TableArn"], table.get("LatestStreamArn")
            )

    by_function: dict[str, dict[str, list[Any]]] = {
        f: {"routes": [], "sqs": [], "streams": [], "schedules": []} for f in functions
    }
    for resource in resources.values():
        if resource["Type"] == "AWS::ApiGatewayV2::Api":
            for function, route in _routes(resource):
                by_function[function]["routes"].append(route)
    for logical_id, props in triggers.items():
        raw = resources[logical_id]
        resolved = outputs.fill(props)
        if raw["Type"] == "AWS::Lambda::EventSourceMapping":
            function = str(_target(raw["Properties"]["FunctionName"]))
            arn = raw["Properties"]["EventSourceArn"]
            source = _target(arn) or _by_arn(str(arn), local)
            event = logical_id.removeprefix(function)
            common: dict[str, Any] = {
                "event": event,
                "batch_size": int(resolved.get("BatchSize") or 0),
                "report_batch_item_failures": "ReportBatchItemFailures"
                in (resolved.get("FunctionResponseTypes") or []),
                "filters": _filters(resolved.get("FilterCriteria")),
                "enabled": _true(resolved.get("Enabled", True)),
            }
            if source in local.queues:
                concurrency = (resolved.get("ScalingConfig") or {}).get("MaximumConcurrency")
                by_function[function]["sqs"].append(
                    SqsTrigger(
                        queue=source,
                        maximum_batching_window_seconds=int(
                            resolved.get("MaximumBatchingWindowInSeconds") or 0
                        ),
                        maximum_concurrency=None if concurrency is None else int(concurrency),
                        **{**common, "batch_size": common["batch_size"] or 10},
                    )
                )
            elif source in local.tables:
                retries = resolved.get("MaximumRetryAttempts")
                by_function[function]["streams"].append(
                    StreamTrigger(
                        table=source,
                        starting_position=_text(resolved.get("StartingPosition") or "LATEST"),
                        maximum_retry_attempts=None
                        if retries in (None, "-1", -1)
                        else int(retries),
                        **{**common, "batch_size": common["batch_size"] or 100},
                    )
                )
            else:
                raise TemplateError(f"{logical_id}: event source {source} is not created locally")
        else:
            targets = raw["Properties"].get("Targets") or [raw["Properties"].get("Target")]
            for target, raw_input in zip(targets, resolved["Inputs"], strict=True):
                function = str(_target(target["Arn"]))
                kind = "ScheduleV2" if raw["Type"] == "AWS::Scheduler::Schedule" else "Schedule"
                by_function[function]["schedules"].append(
                    ScheduleTrigger(
                        event=logical_id.removeprefix(function),
                        kind=kind,
                        expression=_text(resolved.get("ScheduleExpression")),
                        input=None if raw_input is None else _text(raw_input),
                        enabled=_true(resolved.get("State", "ENABLED")),
                    )
                )

    for logical_id, found in functions.items():
        props = resources[logical_id]["Properties"]
        settings = outputs.fill(found["settings"])
        layers = [resources.get(str(_target(layer)), {}) for layer in props.get("Layers") or []]
        reserved = settings.get("ReservedConcurrentExecutions")
        local.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_uri=(root / props["Code"]["S3Key"]).resolve(),
            handler=str(props["Handler"]),
            environment={
                k: _local_urls(_text(v), local) for k, v in outputs.fill(found["env"]).items()
            },
            timeout=int(settings.get("Timeout") or 3),
            memory_size=int(settings.get("MemorySize") or 128),
            reserved_concurrency=None if reserved is None else int(reserved),
            layers=tuple(
                (root / layer["Properties"]["Content"]["S3Key"]).resolve()
                for layer in layers
                if "S3Key" in ((layer.get("Properties") or {}).get("Content") or {})
            ),
            **{k: tuple(v) for k, v in by_function[logical_id].items()},
        )
    return local
