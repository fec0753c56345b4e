"""template.yaml as data, its intrinsics resolved locally, its tables and queues created in moto.

The template is the single source of truth: the local stack (and the handler tests) build their
tables, queues, routes, triggers and environment from it, so nothing local can drift from what is
deployed. `create_resources` works with any boto3 clients (moto server or moto's in-process
`mock_aws`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
STACK_NAME = "smsbridge-local"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "eu-west-1"
#: What `!Ref HttpApi` gives locally (the API id of a deployed stack).
API_ID = "local"

TABLE_TYPE = "AWS::DynamoDB::Table"
QUEUE_TYPE = "AWS::SQS::Queue"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
API_TYPES = ("AWS::Serverless::HttpApi", "AWS::Serverless::Api", "AWS::ApiGatewayV2::Api")
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")


class TemplateError(ValueError):
    """The template uses something the local stack cannot model; the message names it."""


# --------------------------------------------------------------------------------------- loading


class CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader reading CloudFormation short-form tags (`!Ref`, `!GetAtt`, ...) as long form."""


def _construct_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def parse_yaml(text: str) -> Any:
    """YAML with CloudFormation tags, as plain Python data (intrinsics in their long form)."""
    return yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader


# ----------------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    #: None when the template gives no default.
    default: Any


@dataclass(frozen=True, slots=True)
class HttpRoute:
    event: str
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
class ScheduleTrigger:
    event: str
    #: "Schedule" (EventBridge rule) or "ScheduleV2" (EventBridge Scheduler).
    kind: str
    expression: str
    #: The target input (JSON text) when the template sets one.
    input: str | None = None
    enabled: bool = True

    @property
    def period_seconds(self) -> float | None:
        """Seconds between runs for `rate(...)`; None for cron and at expressions."""
        return rate_seconds(self.expression)


@dataclass(frozen=True, slots=True)
class StreamTrigger:
    event: str
    #: Logical id of the table whose stream feeds the function.
    table: str
    batch_size: int = 100
    starting_position: str = "LATEST"
    report_batch_item_failures: bool = False
    #: None: the template leaves it unset (-1, retry until the record expires, in AWS).
    maximum_retry_attempts: int | None = None
    filters: tuple[dict[str, Any], ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    logical_id: str
    #: The function's folder (CodeUri), absolute.
    code_uri: Path
    #: "app.lambda_handler": module path, then the attribute.
    handler: str
    #: Globals.Function.Environment merged with the function's own, intrinsics unresolved.
    environment: dict[str, Any]
    timeout: int
    memory_size: int
    reserved_concurrency: int | None
    #: Folders of the local layers the function references (ContentUri), absolute.
    layers: tuple[Path, ...] = ()
    routes: tuple[HttpRoute, ...] = ()
    sqs: tuple[SqsTrigger, ...] = ()
    schedules: tuple[ScheduleTrigger, ...] = ()
    streams: tuple[StreamTrigger, ...] = ()
    #: Events of types the local stack does not drive, as "Name (Type)".
    ignored_events: tuple[str, ...] = ()

    @property
    def module_path(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def handler_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class TableSpec:
    logical_id: str
    #: The resource's Properties, intrinsics unresolved.
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueueSpec:
    logical_id: str
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Template:
    path: Path
    parameters: dict[str, Parameter]
    conditions: dict[str, Any]
    mappings: dict[str, Any]
    #: Every resource as written (Type, Properties, ...).
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    tables: dict[str, TableSpec]
    queues: dict[str, QueueSpec]
    functions: dict[str, FunctionSpec] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    def resource_type(self, logical_id: str) -> str | None:
        resource = self.resources.get(logical_id)
        return None if resource is None else str(resource.get("Type", ""))

    def routes(self) -> list[tuple[FunctionSpec, HttpRoute]]:
        return [(fn, route) for fn in self.functions.values() for route in fn.routes]

    def parameter_default(self, name: str) -> Any:
        try:
            return self.parameters[name].default
        except KeyError:
            raise TemplateError(f"template parameter {name} is not defined") from None


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """`rate(5 minutes)` → 300.0; None for anything that is not a rate expression."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return float(int(match.group(1)) * _RATE_UNITS[match.group(2).rstrip("s")])


# ------------------------------------------------------------------------------- local resources


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
class Resources:
    """What `create_resources` made: names, URLs and ARNs by logical id."""

    region: str
    account_id: str = ACCOUNT_ID
    tables: dict[str, TableInfo] = field(default_factory=dict)
    queues: dict[str, QueueInfo] = field(default_factory=dict)

    def table_name(self, logical_id: str) -> str:
        return self.tables[logical_id].name

    def queue_url(self, logical_id: str) -> str:
        return self.queues[logical_id].url

    def queue_arn(self, logical_id: str) -> str:
        return self.queues[logical_id].arn


# ------------------------------------------------------------------------------------ intrinsics


class _NoValue:
    """AWS::NoValue: removes the property or list item that holds it."""


NO_VALUE = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_EXECUTE_API_URL = re.compile(
    r"^https://\$\{(\w+)\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}(?P<rest>/.*)?$"
)


def _scalar_text(value: Any) -> str:
    """A resolved scalar as CloudFormation renders it in strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


class Resolver:
    """Resolves intrinsics against the local stack.

    `!Ref` of a table gives its name, of a queue its URL, of a parameter its default (or the
    override); `!GetAtt` gives queue ARNs and names and table stream ARNs. A `!Sub` building the
    execute-api URL of an HTTP API gives `api_url` when one is set.
    """

    def __init__(
        self,
        template: Template,
        *,
        resources: Resources | None = None,
        parameters: Mapping[str, Any] | None = None,
        region: str | None = None,
        account_id: str | None = None,
        stack_name: str = STACK_NAME,
        api_url: str | None = None,
    ) -> None:
        self.template = template
        self.resources = resources
        self.overrides = dict(parameters or {})
        self.region = region or (resources.region if resources else DEFAULT_REGION)
        self.account_id = account_id or (resources.account_id if resources else ACCOUNT_ID)
        self.stack_name = stack_name
        self.api_url = api_url.rstrip("/") if api_url else None

    # -- public

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic replaced; AWS::NoValue entries are dropped."""
        resolved = self._resolve(value)
        return None if resolved is NO_VALUE else resolved

    def parameter(self, name: str) -> Any:
        """A parameter as `!Ref` gives it: a string (a list for list types)."""
        if name not in self.template.parameters:
            raise TemplateError(f"unknown parameter {name}")
        param = self.template.parameters[name]
        value = self.overrides.get(name, param.default)
        if value is None:
            raise TemplateError(f"parameter {name} has no default and no value")
        if param.type.startswith("List<") or param.type == "CommaDelimitedList":
            if isinstance(value, list):
                return [_scalar_text(v) for v in value]
            return [part.strip() for part in _scalar_text(value).split(",")]
        return _scalar_text(value)

    def condition(self, name: str) -> bool:
        if name not in self.template.conditions:
            raise TemplateError(f"unknown condition {name}")
        return self._truth(self.template.conditions[name])

    def physical_name(self, logical_id: str) -> str:
        """The name a table or queue gets: its TableName/QueueName, else its logical id."""
        kind = self.template.resource_type(logical_id)
        props = self.template.resources.get(logical_id, {}).get("Properties") or {}
        if kind == TABLE_TYPE:
            if self.resources and logical_id in self.resources.tables:
                return self.resources.tables[logical_id].name
            explicit = props.get("TableName")
            return _scalar_text(self.resolve(explicit)) if explicit else logical_id
        if kind == QUEUE_TYPE:
            if self.resources and logical_id in self.resources.queues:
                return self.resources.queues[logical_id].name
            explicit = props.get("QueueName")
            if explicit:
                return _scalar_text(self.resolve(explicit))
            fifo = self.resolve(props.get("FifoQueue")) in (True, "true", "True")
            return f"{logical_id}.fifo" if fifo else logical_id
        if kind in FUNCTION_TYPES:
            explicit = props.get("FunctionName")
            return _scalar_text(self.resolve(explicit)) if explicit else logical_id
        return logical_id

    # -- internals

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(self._resolve(arg))
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
        resolved = {k: self._resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        if name == "If":
            cond, when_true, when_false = self._args(arg, 3, "Fn::If")
            return self._resolve(when_true if self.condition(str(cond)) else when_false)
        if name in ("Equals", "Not", "And", "Or"):
            return self._truth({f"Fn::{name}": arg})
        if name == "GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else self._resolve(arg)
            resource, attribute = self._args(parts, 2, "Fn::GetAtt")
            return self._get_att(str(resource), str(attribute))
        if name == "Sub":
            return self._sub(arg)
        if name == "Join":
            delimiter, items = self._args(self._resolve(arg), 2, "Fn::Join")
            return str(delimiter).join(_scalar_text(v) for v in items)
        if name == "Split":
            delimiter, text = self._args(self._resolve(arg), 2, "Fn::Split")
            return str(text).split(str(delimiter))
        if name == "Select":
            index, items = self._args(self._resolve(arg), 2, "Fn::Select")
            try:
                return items[int(index)]
            except (IndexError, ValueError, TypeError):
                raise TemplateError(f"Fn::Select index {index!r} out of range") from None
        if name == "FindInMap":
            map_name, top, second = self._args(self._resolve(arg), 3, "Fn::FindInMap")
            try:
                return self.template.mappings[str(map_name)][str(top)][str(second)]
            except KeyError:
                raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second} not found") from None
        if name == "Base64":
            return base64.b64encode(_scalar_text(self._resolve(arg)).encode()).decode()
        if name == "GetAZs":
            return [f"{self.region}{zone}" for zone in "abc"]
        if name == "ToJsonString":
            return json.dumps(self._resolve(arg), separators=(",", ":"))
        if name == "Length":
            return len(self._resolve(arg))
        raise TemplateError(f"Fn::{name} is not supported by the local stack")

    @staticmethod
    def _args(arg: Any, count: int, name: str) -> list[Any]:
        if not isinstance(arg, list) or len(arg) != count:
            raise TemplateError(f"{name} takes a list of {count} items, got {arg!r}")
        return arg

    def _truth(self, value: Any) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals":
                left, right = self._args(arg, 2, "Fn::Equals")
                return _scalar_text(self.resolve(left)) == _scalar_text(self.resolve(right))
            if key == "Fn::Not":
                (inner,) = self._args(arg, 1, "Fn::Not")
                return not self._truth(inner)
            if key == "Fn::And":
                return all(self._truth(v) for v in arg)
            if key == "Fn::Or":
                return any(self._truth(v) for v in arg)
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return resolved
        return _scalar_text(resolved).lower() == "true"

    def _pseudo(self, name: str) -> Any:
        pseudo: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/"
                f"{self.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name not in pseudo:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return pseudo[name]

    def _ref(self, name: Any) -> Any:
        name = str(name)
        if name.startswith("AWS::"):
            return self._pseudo(name)
        if name in self.template.parameters:
            return self.parameter(name)
        kind = self.template.resource_type(name)
        if kind is None:
            raise TemplateError(f"!Ref {name}: no such parameter or resource")
        if kind == TABLE_TYPE:
            return self.physical_name(name)
        if kind == QUEUE_TYPE:
            if self.resources and name in self.resources.queues:
                return self.resources.queues[name].url
            return (
                f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/"
                f"{self.physical_name(name)}"
            )
        if kind in API_TYPES:
            return API_ID
        if kind in FUNCTION_TYPES:
            return self.physical_name(name)
        if kind in LAYER_TYPES:
            return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{name}:1"
        return name

    def _get_att(self, resource: str, attribute: str) -> Any:
        kind = self.template.resource_type(resource)
        if kind is None:
            raise TemplateError(f"!GetAtt {resource}.{attribute}: no such resource")
        region, account = self.region, self.account_id
        if kind == QUEUE_TYPE:
            info = self.resources.queues.get(resource) if self.resources else None
            name = self.physical_name(resource)
            values = {
                "Arn": info.arn if info else f"arn:aws:sqs:{region}:{account}:{name}",
                "QueueName": name,
                "QueueUrl": self._ref(resource),
            }
        elif kind == TABLE_TYPE:
            table = self.resources.tables.get(resource) if self.resources else None
            name = self.physical_name(resource)
            arn = table.arn if table else f"arn:aws:dynamodb:{region}:{account}:table/{name}"
            values = {
                "Arn": arn,
                "StreamArn": (table.stream_arn if table else None) or f"{arn}/stream/local",
            }
        elif kind in FUNCTION_TYPES:
            name = self.physical_name(resource)
            values = {"Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}
        else:
            return f"arn:aws:local:{region}:{account}:{resource}/{attribute}"
        if attribute not in values:
            raise TemplateError(f"!GetAtt {resource}.{attribute} is not supported locally")
        return values[attribute]

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = self._args(arg, 2, "Fn::Sub")
            local_vars = {k: self.resolve(v) for k, v in dict(variables).items()}
        else:
            text, local_vars = arg, {}
        text = str(text)
        if self.api_url is not None and not local_vars:
            match = _EXECUTE_API_URL.match(text)
            if match and self.template.resource_type(match.group(1)) in API_TYPES:
                return self.api_url + (match.group("rest") or "")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local_vars:
                return _scalar_text(local_vars[name])
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return _scalar_text(self._get_att(resource, attribute))
            return _scalar_text(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)


# ------------------------------------------------------------------------------------- parsing


def load_template(
    path: Path = DEFAULT_TEMPLATE, *, parameters: Mapping[str, Any] | None = None
) -> Template:
    """Read template.yaml; `parameters` override defaults when triggers are resolved."""
    path = Path(path).resolve()
    doc = parse_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    params = {
        name: Parameter(name=name, type=str(p.get("Type", "String")), default=p.get("Default"))
        for name, p in (doc.get("Parameters") or {}).items()
    }
    resources: dict[str, dict[str, Any]] = doc["Resources"]
    template = Template(
        path=path,
        parameters=params,
        conditions=dict(doc.get("Conditions") or {}),
        mappings=dict(doc.get("Mappings") or {}),
        resources=resources,
        outputs=dict(doc.get("Outputs") or {}),
        tables={
            lid: TableSpec(lid, dict(r.get("Properties") or {}))
            for lid, r in resources.items()
            if r.get("Type") == TABLE_TYPE
        },
        queues={
            lid: QueueSpec(lid, dict(r.get("Properties") or {}))
            for lid, r in resources.items()
            if r.get("Type") == QUEUE_TYPE
        },
    )
    resolver = Resolver(template, parameters=parameters)
    globals_fn = dict((doc.get("Globals") or {}).get("Function") or {})
    functions = {
        lid: _parse_function(lid, r, globals_fn, template, resolver)
        for lid, r in resources.items()
        if r.get("Type") == "AWS::Serverless::Function"
        and (r.get("Properties") or {}).get("PackageType", "Zip") == "Zip"
    }
    return dataclasses.replace(template, functions=functions)


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TemplateError(f"{where} must be an integer, got {value!r}") from None


def _enabled(props: Mapping[str, Any], resolver: Resolver) -> bool:
    enabled = resolver.resolve(props.get("Enabled", True))
    state = _scalar_text(resolver.resolve(props.get("State", "ENABLED"))).upper()
    return enabled not in (False, "false", "False") and state != "DISABLED"


def _filters(
    props: Mapping[str, Any], resolver: Resolver, where: str
) -> tuple[dict[str, Any], ...]:
    criteria = resolver.resolve(props.get("FilterCriteria")) or {}
    patterns: list[dict[str, Any]] = []
    for item in criteria.get("Filters") or []:
        pattern = item.get("Pattern") if isinstance(item, dict) else None
        if isinstance(pattern, str):
            try:
                pattern = json.loads(pattern)
            except json.JSONDecodeError as exc:
                raise TemplateError(f"{where}: FilterCriteria pattern is not JSON: {exc}") from None
        if not isinstance(pattern, dict):
            raise TemplateError(f"{where}: FilterCriteria pattern must be a JSON object")
        patterns.append(pattern)
    return tuple(patterns)


def _referenced(value: Any, kind: str, template: Template, resolver: Resolver, where: str) -> str:
    """The logical id behind `!GetAtt X.Arn`, `!GetAtt X.StreamArn`, `!Ref X` or a literal ARN."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        target = None
        if key == "Fn::GetAtt":
            target = (arg.split(".", 1) if isinstance(arg, str) else arg)[0]
        elif key == "Ref":
            target = arg
        if isinstance(target, str) and template.resource_type(target) == kind:
            return target
    arn = _scalar_text(resolver.resolve(value))
    if kind == QUEUE_TYPE:
        name = arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        candidates = list(template.queues)
    else:
        name = arn.split(":table/", 1)[-1].split("/", 1)[0]
        candidates = list(template.tables)
    for logical_id in candidates:
        if resolver.physical_name(logical_id) == name:
            return logical_id
    raise TemplateError(f"{where}: {arn!r} names no {kind} of this template")


def _parse_function(
    logical_id: str,
    resource: Mapping[str, Any],
    globals_fn: Mapping[str, Any],
    template: Template,
    resolver: Resolver,
) -> FunctionSpec:
    props: dict[str, Any] = dict(resource.get("Properties") or {})
    merged = {**globals_fn, **props}
    where = f"function {logical_id}"
    code_uri = resolver.resolve(merged.get("CodeUri"))
    if not isinstance(code_uri, str) or not code_uri:
        raise TemplateError(f"{where}: CodeUri must be a local folder")
    handler = _scalar_text(resolver.resolve(merged.get("Handler")))
    if "." not in handler:
        raise TemplateError(f"{where}: Handler must be module.function, got {handler!r}")

    environment: dict[str, Any] = {}
    for source in (globals_fn, props):
        variables = ((source.get("Environment") or {}).get("Variables")) or {}
        environment.update(variables)

    layers: list[Path] = []
    for layer in merged.get("Layers") or []:
        if isinstance(layer, dict) and isinstance(layer.get("Ref"), str):
            layer_res = template.resources.get(layer["Ref"], {})
            content = (layer_res.get("Properties") or {}).get("ContentUri")
            if layer_res.get("Type") in LAYER_TYPES and isinstance(content, str):
                layers.append((template.root / content).resolve())

    reserved = resolver.resolve(props.get("ReservedConcurrentExecutions"))
    routes: list[HttpRoute] = []
    sqs: list[SqsTrigger] = []
    schedules: list[ScheduleTrigger] = []
    streams: list[StreamTrigger] = []
    ignored: list[str] = []
    for name, event in (props.get("Events") or {}).items():
        kind = str(event.get("Type", ""))
        ep: dict[str, Any] = dict(event.get("Properties") or {})
        at = f"{where} event {name}"
        if kind == "HttpApi":
            if "Path" not in ep and "Method" not in ep:
                routes.append(HttpRoute(name, "ANY", "$default"))
            else:
                method = _scalar_text(resolver.resolve(ep.get("Method", "ANY"))).upper()
                path = _scalar_text(resolver.resolve(ep.get("Path", "$default")))
                routes.append(
                    HttpRoute(
                        name, "ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method, path
                    )
                )
        elif kind == "SQS":
            scaling = resolver.resolve(ep.get("ScalingConfig")) or {}
            concurrency = scaling.get("MaximumConcurrency")
            response_types = resolver.resolve(ep.get("FunctionResponseTypes")) or []
            sqs.append(
                SqsTrigger(
                    event=name,
                    queue=_referenced(ep.get("Queue"), QUEUE_TYPE, template, resolver, at),
                    batch_size=_int(resolver.resolve(ep.get("BatchSize", 10)), f"{at} BatchSize"),
                    report_batch_item_failures="ReportBatchItemFailures" in response_types,
                    maximum_batching_window_seconds=_int(
                        resolver.resolve(ep.get("MaximumBatchingWindowInSeconds", 0)),
                        f"{at} MaximumBatchingWindowInSeconds",
                    ),
                    maximum_concurrency=(
                        None
                        if concurrency is None
                        else _int(concurrency, f"{at} MaximumConcurrency")
                    ),
                    filters=_filters(ep, resolver, at),
                    enabled=_enabled(ep, resolver),
                )
            )
        elif kind in ("Schedule", "ScheduleV2"):
            key = "Schedule" if kind == "Schedule" else "ScheduleExpression"
            expression = _scalar_text(resolver.resolve(ep.get(key)))
            if not expression:
                raise TemplateError(f"{at}: {key} is required")
            raw_input = resolver.resolve(ep.get("Input"))
            schedules.append(
                ScheduleTrigger(
                    event=name,
                    kind=kind,
                    expression=expression,
                    input=None if raw_input is None else _scalar_text(raw_input),
                    enabled=_enabled(ep, resolver),
                )
            )
        elif kind == "DynamoDB":
            response_types = resolver.resolve(ep.get("FunctionResponseTypes")) or []
            retries = resolver.resolve(ep.get("MaximumRetryAttempts"))
            streams.append(
                StreamTrigger(
                    event=name,
                    table=_referenced(ep.get("Stream"), TABLE_TYPE, template, resolver, at),
                    batch_size=_int(resolver.resolve(ep.get("BatchSize", 100)), f"{at} BatchSize"),
                    starting_position=_scalar_text(
                        resolver.resolve(ep.get("StartingPosition", "LATEST"))
                    ).upper(),
                    report_batch_item_failures="ReportBatchItemFailures" in response_types,
                    maximum_retry_attempts=(
                        None if retries in (None, -1, "-1") else _int(retries, f"{at} retries")
                    ),
                    filters=_filters(ep, resolver, at),
                    enabled=_enabled(ep, resolver),
                )
            )
        else:
            ignored.append(f"{name} ({kind})")

    return FunctionSpec(
        logical_id=logical_id,
        code_uri=(template.root / code_uri).resolve(),
        handler=handler,
        environment=environment,
        timeout=_int(resolver.resolve(merged.get("Timeout", 3)), f"{where} Timeout"),
        memory_size=_int(resolver.resolve(merged.get("MemorySize", 128)), f"{where} MemorySize"),
        reserved_concurrency=None if reserved is None else _int(reserved, f"{where} reserved"),
        layers=tuple(layers),
        routes=tuple(routes),
        sqs=tuple(sqs),
        schedules=tuple(schedules),
        streams=tuple(streams),
        ignored_events=tuple(ignored),
    )


# ------------------------------------------------------------------------------------ creation


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


def _references(value: Any) -> Iterator[str]:
    """Logical ids a value refers to (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                target = arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]
                if isinstance(target, str):
                    yield target
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                for name in _SUB_VARIABLE.findall(str(text)):
                    yield name.split(".", 1)[0]
                if isinstance(arg, list) and len(arg) > 1:
                    yield from _references(arg[1])
            else:
                yield from _references(arg)


def _queue_order(template: Template) -> list[str]:
    """Queues in creation order: a dead-letter queue before the queues that name it."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"queue {logical_id} is part of a reference cycle")
        visiting.add(logical_id)
        for ref in _references(template.queues[logical_id].properties):
            if ref in template.queues and ref != logical_id:
                visit(ref)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in template.queues:
        visit(logical_id)
    return order


def _attribute_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return _scalar_text(value)


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        return {str(t["Key"]): _scalar_text(t["Value"]) for t in value if isinstance(t, dict)}
    if isinstance(value, dict):
        return {str(k): _scalar_text(v) for k, v in value.items()}
    return {}


def _create_queue(sqs: SQSClient, spec: QueueSpec, resolver: Resolver) -> QueueInfo:
    props = resolver.resolve(spec.properties) or {}
    name = resolver.physical_name(spec.logical_id)
    attributes = {k: _attribute_text(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
    if props.get("FifoQueue") in (True, "true"):
        attributes["FifoQueue"] = "true"
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            attributes[key] = _attribute_text(props[key])
    tags = _tags(props.get("Tags"))
    try:
        url = sqs.create_queue(QueueName=name, Attributes=cast("Any", attributes), tags=tags)[
            "QueueUrl"
        ]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "QueueAlreadyExists",
            "QueueNameExists",
            "AWS.SimpleQueueService.QueueNameExists",
        ):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=cast("Any", attributes))
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return QueueInfo(logical_id=spec.logical_id, name=name, url=url, arn=arn)


def _index(raw: Mapping[str, Any], throughput: dict[str, int] | None) -> dict[str, Any]:
    index: dict[str, Any] = {
        "IndexName": raw["IndexName"],
        "KeySchema": raw["KeySchema"],
        "Projection": raw.get("Projection") or {"ProjectionType": "ALL"},
    }
    if throughput is not None:
        index["ProvisionedThroughput"] = _throughput(raw.get("ProvisionedThroughput")) or throughput
    return index


def _throughput(raw: Any) -> dict[str, int] | None:
    if not isinstance(raw, dict):
        return None
    return {
        "ReadCapacityUnits": _int(raw.get("ReadCapacityUnits", 5), "ReadCapacityUnits"),
        "WriteCapacityUnits": _int(raw.get("WriteCapacityUnits", 5), "WriteCapacityUnits"),
    }


def table_arguments(spec: TableSpec, resolver: Resolver) -> dict[str, Any]:
    """`create_table` keyword arguments from the table's CloudFormation properties."""
    props = resolver.resolve(spec.properties) or {}
    billing = _scalar_text(props.get("BillingMode") or "PROVISIONED")
    throughput = None
    kwargs: dict[str, Any] = {
        "TableName": resolver.physical_name(spec.logical_id),
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        throughput = _throughput(props.get("ProvisionedThroughput")) or {
            "ReadCapacityUnits": 5,
            "WriteCapacityUnits": 5,
        }
        kwargs["ProvisionedThroughput"] = throughput
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [
            _index(gsi, throughput) for gsi in props["GlobalSecondaryIndexes"]
        ]
    if props.get("LocalSecondaryIndexes"):
        kwargs["LocalSecondaryIndexes"] = [
            _index(lsi, None) for lsi in props["LocalSecondaryIndexes"]
        ]
    stream = props.get("StreamSpecification")
    if isinstance(stream, dict) and stream.get("StreamViewType"):
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    tags = _tags(props.get("Tags"))
    if tags:
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return kwargs


def _create_table(dynamodb: DynamoDBClient, spec: TableSpec, resolver: Resolver) -> TableInfo:
    kwargs = table_arguments(spec, resolver)
    name = kwargs["TableName"]
    try:
        description = dynamodb.create_table(**kwargs)["TableDescription"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        description = dynamodb.describe_table(TableName=name)["Table"]
    ttl = (resolver.resolve(spec.properties.get("TimeToLiveSpecification"))) or {}
    if ttl.get("AttributeName") and ttl.get("Enabled") in (True, "true"):
        try:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        except ClientError as exc:  # already enabled on a re-used table
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise
    return TableInfo(
        logical_id=spec.logical_id,
        name=name,
        arn=description.get("TableArn", f"arn:aws:dynamodb:::table/{name}"),
        stream_arn=description.get("LatestStreamArn"),
    )


def _service_clients(source: Any) -> tuple[DynamoDBClient, SQSClient]:
    """DynamoDB and SQS clients from a boto3 Session, a mapping, or an object with attributes."""
    if isinstance(source, Mapping):
        return cast("DynamoDBClient", source["dynamodb"]), cast("SQSClient", source["sqs"])
    if hasattr(source, "dynamodb") and hasattr(source, "sqs"):
        return cast("DynamoDBClient", source.dynamodb), cast("SQSClient", source.sqs)
    if callable(getattr(source, "client", None)):
        return (
            cast("DynamoDBClient", source.client("dynamodb")),
            cast("SQSClient", source.client("sqs")),
        )
    raise TypeError("create_resources needs a boto3 Session, or dynamodb and sqs clients")


def create_resources(
    session_or_clients: Any,
    template: Template,
    *,
    parameters: Mapping[str, Any] | None = None,
) -> Resources:
    """Create every table and queue of the template (dead-letter queues first).

    `session_or_clients` is a boto3 Session, a mapping {"dynamodb": client, "sqs": client}, or an
    object with `dynamodb` and `sqs` attributes. An existing table or queue is reused.
    """
    dynamodb, sqs = _service_clients(session_or_clients)
    resources = Resources(region=sqs.meta.region_name or DEFAULT_REGION)
    resolver = Resolver(template, resources=resources, parameters=parameters)
    for logical_id in _queue_order(template):
        info = _create_queue(sqs, template.queues[logical_id], resolver)
        resources.queues[logical_id] = info
        resources.account_id = info.arn.split(":")[4] or resources.account_id
        resolver.account_id = resources.account_id
    for logical_id, spec in template.tables.items():
        resources.tables[logical_id] = _create_table(dynamodb, spec, resolver)
    return resources
