"""template.yaml as CloudFormation reads it: the SAM translator's output must be deployable.

`sam validate --lint` passes templates that CloudFormation refuses, and moto forgives what a real
account does not. These tests run the SAM transform (`samtranslator`, as `sam deploy` does) and
check the generated resources: no dependency cycle, every environment variable a handler reads
is set (or has a documented default), each function's role allows the AWS actions its code
calls and nothing more, and the rules of SPEC 6.1 for a first deploy into a real account
(reserved concurrency, event filter operators, physical names, alarms, retries, log retention,
arm64). The rules look at every function, alarm and queue, not at a list of names.

`SMSBRIDGE_TEMPLATE=path pytest ...` checks another template (say an older one).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.session import get_session

from local.cloudformation import DEFAULT_TEMPLATE, REPO_ROOT, translate
from smsbridge.statuses import Status, decide

LAYER = REPO_ROOT / "shared" / "smsbridge"
README = REPO_ROOT / "README.md"

SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def references(value: Any) -> Iterator[str]:
    """Logical ids (and parameters) a value names: Ref, Fn::GetAtt, ${X} and ${X.Attr} in Sub."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                target = arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]
                if isinstance(target, str):
                    yield target
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                for name in SUB_VARIABLE.findall(str(text)):
                    if name.split(".", 1)[0] not in variables:
                        yield name.split(".", 1)[0]
                yield from references(variables)
            else:
                yield from references(arg)


#: Every environment variable a function needs set because its default is no use outside a
#: test (the table, queue, configuration and secret names, metrics settings, the receipt URL).
NAMES = {"MESSAGES_TABLE", "DISPATCH_QUEUE_URL", "CONFIG_PARAMETER", "SECRETS_ID"}
POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
#: AWS actions of the layer every function builds (`Runtime`: repository, queue, config loader).
LAYER_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "sqs:SendMessageBatch",
    "ssm:GetParameter",
    "secretsmanager:GetSecretValue",
}


@dataclass(frozen=True)
class Uses:
    """What a function's code needs from the template."""

    env: frozenset[str]
    actions: frozenset[str]


#: One row per function of the template. A new function fails every test below until it has one.
FUNCTIONS = {
    "SendMessageFunction": Uses(frozenset(NAMES | POWERTOOLS), frozenset(LAYER_ACTIONS)),
    "DispatchFunction": Uses(
        # PUBLIC_BASE_URL: the receipt URL dispatch sends to Vibes.
        frozenset(NAMES | POWERTOOLS | {"PUBLIC_BASE_URL"}),
        # ChangeMessageVisibility: a transient submit failure backs the record off; the batch
        # call hands back the records the time left cannot cover.
        frozenset(
            LAYER_ACTIONS | {"sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch"}
        ),
    ),
    "DlrWebhookFunction": Uses(frozenset(NAMES | POWERTOOLS), frozenset(LAYER_ACTIONS)),
    # Search, support reads and the console: reads only (the table and its indexes).
    "SearchFunction": Uses(
        frozenset(NAMES | POWERTOOLS),
        frozenset(
            {
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "ssm:GetParameter",
                "secretsmanager:GetSecretValue",
            }
        ),
    ),
    "StatusPollerFunction": Uses(frozenset(NAMES | POWERTOOLS), frozenset(LAYER_ACTIONS)),
    "NotifyFunction": Uses(
        frozenset(
            NAMES
            | POWERTOOLS
            | {
                "NOTIFY_QUEUE_URL",
                "NOTIFY_DEAD_LETTER_QUEUE_URL",
                "NOTIFY_MAX_ATTEMPTS",
                "NOTIFY_BACKOFF_SECONDS",
            }
        ),
        # notified_seq (batch read, conditional update); jobs in, back-off, dead letters out.
        frozenset(
            {
                "dynamodb:BatchGetItem",
                "dynamodb:UpdateItem",
                "sqs:SendMessage",
                "sqs:SendMessageBatch",
                "sqs:ChangeMessageVisibility",
                "ssm:GetParameter",
                "secretsmanager:GetSecretValue",
            }
        ),
    ),
}

#: Actions of the AWS managed policies SAM attaches (the translator names them by ARN only).
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    },
    "AWSXrayWriteOnlyAccess": {"xray:Put*", "xray:Get*"},
    "AWSLambdaSQSQueueExecutionRole": {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    },
    "AWSLambdaDynamoDBExecutionRole": {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    },
}
#: What Lambda's event source mappings call with the function's role.
EVENT_SOURCE_ACTIONS = {
    "sqs": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
    "dynamodb": {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    },
}
#: Powertools' parameter helpers and the action behind each.
POWERTOOLS_CALLS = {
    "get_parameter": "ssm:GetParameter",
    "get_secret": "secretsmanager:GetSecretValue",
}


TEMPLATE = Path(os.environ.get("SMSBRIDGE_TEMPLATE") or DEFAULT_TEMPLATE)


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate(TEMPLATE)


def functions_of(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        lid: r["Properties"]
        for lid, r in cfn["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
    }


# ------------------------------------------------------------------------------ cycles


def dependency_graph(cfn: dict[str, Any]) -> dict[str, set[str]]:
    """Resource → the resources it needs first (references anywhere in it, and DependsOn)."""
    resources = cfn["Resources"]
    graph: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        body = {k: v for k, v in resource.items() if k not in ("Type", "DependsOn")}
        needs = {name for name in references(body) if name in resources}
        depends = resource.get("DependsOn") or []
        needs |= set([depends] if isinstance(depends, str) else depends)
        graph[logical_id] = needs
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One dependency cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for needed in sorted(graph.get(node, ())):
            if state.get(needed) == 1:
                return [*path[path.index(needed) :], needed]
            if needed not in state and (found := visit(needed)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_cycle_finder_names_the_cycle() -> None:
    cfn: dict[str, Any] = {
        "Resources": {
            "Api": {"Type": "T", "Properties": {"Uri": {"Fn::Sub": "x/${Fn.Arn}/y"}}},
            "Fn": {"Type": "T", "Properties": {"Env": {"Fn::If": ["C", "", {"Ref": "Api"}]}}},
            "Role": {"Type": "T", "DependsOn": "Fn"},
            "Other": {"Type": "T", "Properties": {"A": {"Fn::GetAtt": ["Role", "Arn"]}}},
        }
    }
    assert find_cycle(dependency_graph(cfn)) == ["Api", "Fn", "Api"]
    del cfn["Resources"]["Fn"]["Properties"]
    assert find_cycle(dependency_graph(cfn)) is None


def test_translated_template_has_no_dependency_cycle(cfn: dict[str, Any]) -> None:
    cycle = find_cycle(dependency_graph(cfn))
    assert cycle is None, (
        "CloudFormation would refuse the stack: circular dependency " + " -> ".join(cycle or [])
    )


# ----------------------------------------------------------------- functions in the table


def test_every_function_has_a_row(cfn: dict[str, Any]) -> None:
    missing = sorted(set(functions_of(cfn)) - set(FUNCTIONS))
    assert not missing, (
        f"{', '.join(missing)}: add a row to FUNCTIONS in {Path(__file__).name} with the "
        "environment variables and the AWS actions its code uses"
    )
    gone = sorted(set(FUNCTIONS) - set(functions_of(cfn)))
    assert not gone, f"FUNCTIONS names functions the template no longer has: {gone}"


# -------------------------------------------------------------------- environment variables


_ENV_READ = re.compile(
    r"""(?:environ\.get|getenv|env\.get|_env_\w+\(\s*env,)\s*\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
)


def env_reads() -> set[str]:
    """Environment variables the layer and the handlers read."""
    names: set[str] = set()
    for path in [*LAYER.rglob("*.py"), *(REPO_ROOT / "functions").rglob("*.py")]:
        for match in _ENV_READ.finditer(path.read_text(encoding="utf-8")):
            names.add(match.group(1) or match.group(2))
    return names


def documented_defaults() -> set[str]:
    """Variables of README's "Environment variables" table (each has a default there)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Environment variables", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| `", section, flags=re.MULTILINE))


def test_the_env_table_names_variables_the_code_reads() -> None:
    read = env_reads() | POWERTOOLS
    assert {"MESSAGES_TABLE", "PUBLIC_BASE_URL", "SUBMIT_BACKOFF_SECONDS"} <= read
    for name, uses in FUNCTIONS.items():
        assert uses.env <= read, f"{name}: the table names variables no code reads"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_variable_a_handler_reads_is_set_or_has_a_default(
    cfn: dict[str, Any], function: str
) -> None:
    props = functions_of(cfn).get(function)
    assert props is not None, f"{function} is not in the template"
    env = set((props.get("Environment") or {}).get("Variables") or {})
    missing = sorted(FUNCTIONS[function].env - env)
    assert not missing, f"{function} needs {missing} set in template.yaml"
    undocumented = sorted(env_reads() - env - documented_defaults())
    assert not undocumented, (
        f"{function} reads {undocumented}: set them in template.yaml or document their default "
        "in README's environment variable table"
    )


# --------------------------------------------------------------------------------- IAM


def role_actions(cfn: dict[str, Any], function: str) -> set[str]:
    """Allowed actions of the function's role: inline policies and the managed ones it attaches."""
    role_id = functions_of(cfn)[function]["Role"]["Fn::GetAtt"][0]
    role = cfn["Resources"][role_id]["Properties"]
    actions: set[str] = set()
    for policy in role.get("Policies") or []:
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement.get("Effect") == "Allow":
                action = statement.get("Action") or []
                actions |= set([action] if isinstance(action, str) else action)
    for arn in role.get("ManagedPolicyArns") or []:
        name = str(arn).rsplit("/", 1)[-1]
        assert name in MANAGED_POLICIES, f"{function}: add the actions of {arn} to MANAGED_POLICIES"
        actions |= MANAGED_POLICIES[name]
    return actions


def allowed(action: str, granted: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), g.lower()) for g in granted)


#: Calls that IAM does not know as actions of their own: a transaction's writes are allowed by
#: the actions of the writes it holds (DynamoDB: "Using IAM with DynamoDB transactions").
GOVERNED_BY = {"dynamodb:TransactWriteItems": ("dynamodb:PutItem", "dynamodb:UpdateItem")}


def layer_actions() -> Iterator[tuple[str, str]]:
    """(file, action) for every AWS call in the layer: boto3 client methods and Powertools'."""
    model = get_session()
    for path in sorted(LAYER.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        services = set(re.findall(r"mypy_boto3_(\w+)", text))
        operations = {
            service: {
                re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower(): op
                for op in model.get_service_model(service).operation_names
            }
            for service in services
        }
        for call in re.findall(r"_client\.(\w+)\(", text):
            owners = [f"{s}:{ops[call]}" for s, ops in operations.items() if call in ops]
            assert owners, f"{path.name}: cannot tell which AWS service {call} belongs to"
            for action in GOVERNED_BY.get(owners[0], (owners[0],)):
                yield path.name, action
        # A client named for its service (`ssm.get_parameter(...)`, `secretsmanager...`).
        for service, call in re.findall(r"\b(ssm|secretsmanager|sqs|dynamodb)\.(\w+)\(", text):
            if service in operations and call in operations[service]:
                yield path.name, f"{service}:{operations[service][call]}"
        for call in re.findall(r"parameters\.(\w+)\(", text):
            if call in POWERTOOLS_CALLS:
                yield path.name, POWERTOOLS_CALLS[call]


def test_the_action_table_covers_every_aws_call_of_the_layer() -> None:
    found = set(layer_actions())  # every (file, action), not only a file's last one
    assert "sqs:ChangeMessageVisibility" in {action for _, action in found}
    table = set().union(*(uses.actions for uses in FUNCTIONS.values()))
    missing = sorted(f"{action} ({file})" for file, action in found if action not in table)
    assert not missing, f"the layer calls {missing}: add them to FUNCTIONS and to the policies"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_role_allows_what_its_code_calls(cfn: dict[str, Any], function: str) -> None:
    assert function in functions_of(cfn), f"{function} is not in the template"
    granted = role_actions(cfn, function)
    needed = set(FUNCTIONS[function].actions)
    for resource in cfn["Resources"].values():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and props["FunctionName"] == {
            "Ref": function
        }:
            source = props["EventSourceArn"]["Fn::GetAtt"]
            kind = cfn["Resources"][source[0]]["Type"]
            needed |= EVENT_SOURCE_ACTIONS["sqs" if kind == "AWS::SQS::Queue" else "dynamodb"]
    missing = sorted(
        action for action in needed if not allowed(IAM_ACTION.get(action, action), granted)
    )
    assert not missing, f"{function}'s role does not allow {missing}"


#: How IAM authorises an API call: the batch calls are authorised by their single-message action.
IAM_ACTION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
#: The managed policies SAM attaches, and the event source kind each one serves.
MANAGED_FOR_SOURCE = {
    "AWSLambdaSQSQueueExecutionRole": "sqs",
    "AWSLambdaDynamoDBExecutionRole": "dynamodb",
}
ALWAYS_MANAGED = {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}


def mappings_of(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """The function's event source mappings' properties."""
    return [
        r["Properties"]
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": function}
    ]


def source_kind(cfn: dict[str, Any], mapping: dict[str, Any]) -> str:
    source = mapping["EventSourceArn"]["Fn::GetAtt"][0]
    return "sqs" if cfn["Resources"][source]["Type"] == "AWS::SQS::Queue" else "dynamodb"


def test_the_action_table_names_only_calls_the_code_makes() -> None:
    found = {action for _, action in layer_actions()}
    extra = {
        f"{name}: {action}"
        for name, uses in FUNCTIONS.items()
        for action in uses.actions
        if action not in found
    }
    assert not extra, f"FUNCTIONS names actions no code of the layer calls: {sorted(extra)}"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_role_grants_no_more_than_its_code_calls(cfn: dict[str, Any], function: str) -> None:
    """Least privilege the other way round: no action the code does not call, no wildcard, and
    every grant on a resource of this stack."""
    assert function in functions_of(cfn), f"{function} is not in the template"
    role_id = functions_of(cfn)[function]["Role"]["Fn::GetAtt"][0]
    role = cfn["Resources"][role_id]["Properties"]
    mappings = mappings_of(cfn, function)
    kinds = {source_kind(cfn, m) for m in mappings}
    called = {IAM_ACTION.get(a, a) for a in FUNCTIONS[function].actions}
    # Lambda puts a failed stream batch's pointer on the on-failure destination with this role.
    destinations = {
        json.dumps(dest)
        for m in mappings
        if (dest := ((m.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
    }
    problems: list[str] = []
    for policy in role.get("Policies") or []:
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action") or []
            actions = [actions] if isinstance(actions, str) else actions
            resources = statement.get("Resource") or []
            resources = resources if isinstance(resources, list) else [resources]
            for action in actions:
                on_destination = action == "sqs:SendMessage" and all(
                    json.dumps(r) in destinations for r in resources
                )
                if "*" in action:
                    problems.append(f"wildcard action {action}")
                elif action not in called and not on_destination:
                    problems.append(f"{action} (the code never calls it)")
            for resource in resources:
                named = set(references(resource)) & set(cfn["Resources"])
                if not named:
                    problems.append(f"{actions} on {resource!r}, not a resource of this stack")
    for arn in role.get("ManagedPolicyArns") or []:
        name = str(arn).rsplit("/", 1)[-1]
        if name not in ALWAYS_MANAGED and MANAGED_FOR_SOURCE.get(name) not in kinds:
            problems.append(f"managed policy {name} without its event source")
    assert not problems, f"{function}'s role grants more than its code calls: {problems}"


# ------------------------------------------------------------- SPEC 6.1: a real account

NO_VALUE = object()


def defaults(cfn: dict[str, Any]) -> dict[str, str]:
    return {k: str(v.get("Default", "")) for k, v in (cfn.get("Parameters") or {}).items()}


def holds(cfn: dict[str, Any], condition: Any, params: dict[str, str]) -> bool:
    """A condition (by name or as an expression) under the given parameter values."""
    if isinstance(condition, str):
        return holds(cfn, cfn["Conditions"][condition], params)
    ((key, arg),) = condition.items()
    if key == "Condition":
        return holds(cfn, arg, params)
    if key == "Fn::Not":
        return not holds(cfn, arg[0], params)
    if key == "Fn::And":
        return all(holds(cfn, c, params) for c in arg)
    if key == "Fn::Or":
        return any(holds(cfn, c, params) for c in arg)
    if key == "Fn::Equals":
        left, right = (resolve(cfn, v, params) for v in arg)
        return str(left) == str(right)
    raise AssertionError(f"cannot evaluate condition {condition!r}")


def resolve(cfn: dict[str, Any], value: Any, params: dict[str, str]) -> Any:
    """`Fn::If`, `Ref` of parameters and `AWS::NoValue` resolved; other intrinsics kept."""
    if isinstance(value, list):
        items = [resolve(cfn, v, params) for v in value]
        return [v for v in items if v is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::If"}:
        name, yes, no = value["Fn::If"]
        return resolve(cfn, yes if holds(cfn, name, params) else no, params)
    if set(value) == {"Ref"}:
        if value["Ref"] == "AWS::NoValue":
            return NO_VALUE
        if value["Ref"] in params:
            return params[value["Ref"]]
        return value
    return {k: resolve(cfn, v, params) for k, v in value.items()}


def exists(cfn: dict[str, Any], logical_id: str, params: dict[str, str]) -> bool:
    resource = cfn["Resources"].get(logical_id)
    return resource is not None and (
        "Condition" not in resource or holds(cfn, resource["Condition"], params)
    )


def of_type(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in cfn["Resources"].items() if r["Type"] == kind}


def test_no_reserved_concurrency_unless_a_parameter_asks(cfn: dict[str, Any]) -> None:
    """A new account's concurrency quota takes no reservation (Lambda keeps 100 unreserved)."""
    params = defaults(cfn)
    reserved: dict[str, Any] = {}
    shape: list[str] = []
    for name, props in functions_of(cfn).items():
        value = props.get("ReservedConcurrentExecutions")
        if value is None:
            continue
        branches = value.get("Fn::If") if isinstance(value, dict) else None
        if not branches or branches[2] != {"Ref": "AWS::NoValue"}:
            shape.append(f"{name}: {value!r} (use Fn::If [condition, parameter, AWS::NoValue])")
        elif not set(references(branches[1])) & set(cfn.get("Parameters") or {}):
            shape.append(f"{name}: {branches[1]!r} is not a parameter")
        resolved = resolve(cfn, value, params)
        if resolved is not NO_VALUE:
            reserved[name] = resolved
    assert not reserved, (
        f"by default the stack reserves concurrency: {reserved} "
        f"({sum(int(v) for v in reserved.values())} units); CloudFormation refuses this on a "
        "new account"
    )
    assert not shape, f"reserved concurrency must be opt-in: {shape}"


#: The comparison operators of Lambda's event filtering (Lambda developer guide, "Filter rule
#: syntax": equals, equals-ignore-case, anything-but, numeric, exists, prefix, suffix; null,
#: empty, and OR as values in an array). EventBridge's `$or`, `wildcard` and `cidr` are not
#: among them; keys starting with `$` are refused.
LAMBDA_FILTER_OPERATORS = frozenset(
    {"equals-ignore-case", "anything-but", "numeric", "exists", "prefix", "suffix"}
)
#: Lambda's default quota of filters per event source mapping.
LAMBDA_MAX_FILTERS = 5


def filter_problems(pattern: Any, where: str = "") -> Iterator[str]:
    if not isinstance(pattern, dict):
        yield f"{where or 'pattern'} must be an object, got {pattern!r}"
        return
    for key, value in pattern.items():
        at = f"{where}.{key}" if where else key
        if key.startswith("$"):
            yield f"{at}: {key} is not a Lambda filter operator (EventBridge only)"
        elif isinstance(value, dict):
            yield from filter_problems(value, at)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    unknown = set(item) - LAMBDA_FILTER_OPERATORS
                    if unknown or len(item) != 1:
                        yield f"{at}: {sorted(item)} is not one documented Lambda filter operator"
                elif isinstance(item, list):
                    yield f"{at}: nested array {item!r}"
        else:
            yield f"{at}: a value must be an array of matches, got {value!r}"


def patterns_of(mapping: dict[str, Any]) -> list[Any]:
    filters = (mapping.get("FilterCriteria") or {}).get("Filters") or []
    return [json.loads(f["Pattern"]) for f in filters]


def test_event_filters_use_only_documented_lambda_operators(cfn: dict[str, Any]) -> None:
    problems: list[str] = []
    for logical_id, mapping in of_type(cfn, "AWS::Lambda::EventSourceMapping").items():
        patterns = patterns_of(mapping["Properties"])
        if len(patterns) > LAMBDA_MAX_FILTERS:
            problems.append(f"{logical_id}: {len(patterns)} filters, Lambda allows 5")
        for pattern in patterns:
            problems += [f"{logical_id}: {p}" for p in filter_problems(pattern)]
    assert not problems, f"Lambda would refuse or misread these filters: {problems}"


def status_change_filters() -> list[dict[str, Any]]:
    """The notify stream filter, generated from the status rules (`decide`): one filter per
    group of new statuses that may be reached from the same old statuses."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for new in Status:
        olds = tuple(
            old.value for old in Status if old != new and decide(old, new).new_status == new
        )
        if olds:
            groups.setdefault(olds, []).append(new.value)
    return [
        {
            "eventName": ["MODIFY"],
            "dynamodb": {
                "NewImage": {"status": {"S": news}},
                "OldImage": {"status": {"S": list(olds)}},
            },
        }
        for olds, news in sorted(groups.items(), key=lambda item: len(item[0]))
    ]


def matches(pattern: Any, event: Any) -> bool:
    """Lambda's matching for the operators `filter_problems` admits (enough for a test)."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(
            k in event and matches(v, event[k])
            if not (isinstance(v, list) and {"exists": False} in v)
            else k not in event
            for k, v in pattern.items()
        )
    for item in pattern:
        if isinstance(item, dict):
            ((op, arg),) = item.items()
            if op == "anything-but" and event not in (arg if isinstance(arg, list) else [arg]):
                return True
            if op == "exists" and arg:
                return True
            if op == "prefix" and isinstance(event, str) and event.startswith(arg):
                return True
        elif item == event:
            return True
    return False


def stream_record(event_name: str, old: str | None, new: str) -> dict[str, Any]:
    images: dict[str, Any] = {"NewImage": {"id": {"S": "m1"}, "status": {"S": new}}}
    if old is not None:
        images["OldImage"] = {"id": {"S": "m1"}, "status": {"S": old}}
    return {"eventName": event_name, "dynamodb": images}


def test_the_status_stream_filter_follows_the_status_rules(cfn: dict[str, Any]) -> None:
    """The notify stream filter admits exactly the status changes `decide` allows, so it cannot
    drift from statuses.py (see the generated filters in the failure message)."""
    streams = [
        m["Properties"]
        for m in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"].get("Fn::GetAtt", ["", ""])[1] == "StreamArn"
    ]
    assert streams, "no DynamoDB stream mapping in the template"
    generated = status_change_filters()
    assert len(generated) <= LAMBDA_MAX_FILTERS
    paste = "\n".join(f"- Pattern: '{json.dumps(p)}'" for p in generated)
    for mapping in streams:
        patterns = patterns_of(mapping)
        wrong = []
        for old in [None, *Status]:
            for new in Status:
                moves = old is not None and old != new and decide(old, new).new_status == new
                for name in ("INSERT", "MODIFY"):
                    record = stream_record(name, None if old is None else old.value, new.value)
                    admitted = any(matches(p, record) for p in patterns)
                    if admitted != (moves and name == "MODIFY"):
                        wrong.append(
                            f"{name} {old}->{new}: {'admitted' if admitted else 'dropped'}"
                        )
        assert not wrong, (
            f"the stream filter disagrees with the status rules: {wrong[:8]}; use\n{paste}"
        )


#: The property that names each resource type's own physical name.
OWN_NAME = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
}
#: Types whose names are not unique in an account and region (or that have none).
UNNAMED = {
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::IAM::Policy",
}


def test_no_fixed_physical_names(cfn: dict[str, Any]) -> None:
    """Two stacks in one account and region: every name is generated or made from the stack's
    name (or another resource's), never a literal or a parameter's fixed default."""
    fixed: list[str] = []
    for logical_id, resource in cfn["Resources"].items():
        kind = resource["Type"]
        assert kind in OWN_NAME or kind in UNNAMED, (
            f"{logical_id}: add {kind} to OWN_NAME (with its name property) or UNNAMED"
        )
        name = (resource.get("Properties") or {}).get(OWN_NAME.get(kind, ""))
        if name is None:
            continue
        named = set(references(name))
        if "AWS::StackName" not in named and not named & set(cfn["Resources"]):
            fixed.append(f"{logical_id} ({kind}): {name!r}")
    assert not fixed, f"fixed physical names, a second stack would collide: {fixed}"


def alarm_metrics(props: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric an alarm reads: {namespace, name, dimensions} or {expression}."""
    if "MetricName" in props:
        return [
            {
                "namespace": props.get("Namespace"),
                "name": props["MetricName"],
                "dimensions": props.get("Dimensions") or [],
            }
        ]
    found = []
    for query in props.get("Metrics") or []:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append(
                {
                    "namespace": metric.get("Namespace"),
                    "name": metric.get("MetricName"),
                    "dimensions": metric.get("Dimensions") or [],
                }
            )
        elif "SELECT" in json.dumps(query.get("Expression", "")):
            found.append({"expression": query["Expression"]})
    return found


def test_metrics_and_alarms_are_per_stack(cfn: dict[str, Any]) -> None:
    problems = [
        f"{name}: POWERTOOLS_METRICS_NAMESPACE {env!r} is not per stack"
        for name, props in functions_of(cfn).items()
        if "AWS::StackName"
        not in set(
            references(
                env := ((props.get("Environment") or {}).get("Variables") or {}).get(
                    "POWERTOOLS_METRICS_NAMESPACE"
                )
            )
        )
    ]
    for logical_id, alarm in of_type(cfn, "AWS::CloudWatch::Alarm").items():
        for metric in alarm_metrics(alarm["Properties"]):
            if "expression" in metric:
                per_stack = "AWS::StackName" in set(references(metric["expression"]))
            elif str(metric["namespace"]).startswith("AWS/"):
                values = [d["Value"] for d in metric["dimensions"]]
                per_stack = bool(set(references(values)) & set(cfn["Resources"]))
            else:
                per_stack = "AWS::StackName" in set(references(metric["namespace"]))
            if not per_stack:
                problems.append(f"{logical_id}: {metric} is the same in every stack")
    assert not problems, f"metrics or alarms shared between stacks: {problems}"


TOPIC_GIVEN = "arn:aws:sns:eu-west-1:123456789012:ops-alarms"


def test_every_alarm_notifies_a_topic(cfn: dict[str, Any]) -> None:
    """ALARM reaches a person: the stack's own topic by default, the given one otherwise."""
    problems: list[str] = []
    for given in ("", TOPIC_GIVEN):
        params = {**defaults(cfn), "AlarmTopicArn": given}
        for logical_id, alarm in of_type(cfn, "AWS::CloudWatch::Alarm").items():
            actions = resolve(cfn, alarm["Properties"].get("AlarmActions"), params)
            if not isinstance(actions, list) or not actions:
                problems.append(f"{logical_id} notifies no one (AlarmTopicArn={given!r})")
                continue
            for action in actions:
                target = action.get("Ref") if isinstance(action, dict) else None
                topic = (
                    target is not None
                    and cfn["Resources"].get(target, {}).get("Type") == "AWS::SNS::Topic"
                    and exists(cfn, target, params)
                )
                if not (topic or (given and action == given)):
                    problems.append(f"{logical_id}: {action!r} (AlarmTopicArn={given!r})")
    assert not problems, f"alarms without a topic: {problems}"
    assert "AlarmTopicArn" in (cfn.get("Parameters") or {})


def test_the_alarm_topic_takes_an_optional_email(cfn: dict[str, Any]) -> None:
    subscriptions = of_type(cfn, "AWS::SNS::Subscription")
    email = [
        (lid, s) for lid, s in subscriptions.items() if s["Properties"].get("Protocol") == "email"
    ]
    assert email, "no e-mail subscription to the alarm topic"
    for logical_id, subscription in email:
        endpoint = subscription["Properties"]["Endpoint"]["Ref"]
        params = defaults(cfn)
        assert not exists(cfn, logical_id, params), "subscribed without an address"
        assert exists(cfn, logical_id, {**params, endpoint: "ops@example.com"})
        assert not exists(
            cfn, logical_id, {**params, endpoint: "ops@example.com", "AlarmTopicArn": TOPIC_GIVEN}
        )


def watched(cfn: dict[str, Any]) -> set[tuple[str, str]]:
    """(metric, logical id or custom metric name) pairs some alarm watches."""
    seen: set[tuple[str, str]] = set()
    for alarm in of_type(cfn, "AWS::CloudWatch::Alarm").values():
        for metric in alarm_metrics(alarm["Properties"]):
            if "expression" in metric:
                text = json.dumps(metric["expression"])
                seen |= {("custom", name) for name in re.findall(r"\((\w+)\)", text)}
                continue
            if not str(metric["namespace"]).startswith("AWS/"):
                seen.add(("custom", metric["name"]))
            for dimension in metric["dimensions"]:
                for target in references(dimension["Value"]):
                    seen.add((metric["name"], target))
    return seen


def test_alarms_cover_what_a_person_must_hear(cfn: dict[str, Any]) -> None:
    """Errors and throttles of every function, the stream's iterator age, the age of the oldest
    message of every queue a function reads, every dead-letter queue, 5xx of every HTTP API,
    delivery rate and open circuits."""
    resources = cfn["Resources"]
    needed: set[tuple[str, str]] = set()
    for function in functions_of(cfn):
        needed |= {("Errors", function), ("Throttles", function)}
        for mapping in mappings_of(cfn, function):
            source = mapping["EventSourceArn"]["Fn::GetAtt"][0]
            if source_kind(cfn, mapping) == "dynamodb":
                needed.add(("IteratorAge", function))
            else:
                needed.add(("ApproximateAgeOfOldestMessage", source))
            on_failure = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
                "Destination"
            )
            if on_failure:
                needed.add(("ApproximateNumberOfMessagesVisible", on_failure["Fn::GetAtt"][0]))
    for queue in of_type(cfn, "AWS::SQS::Queue").values():
        redrive = (queue["Properties"].get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        if redrive:
            needed.add(("ApproximateNumberOfMessagesVisible", redrive["Fn::GetAtt"][0]))
    needed |= {("5xx", api) for api in of_type(cfn, "AWS::ApiGatewayV2::Api")}
    needed |= {("custom", "DeliveryOutcome"), ("custom", "CircuitOpened")}
    missing = sorted(needed - watched(cfn))
    assert not missing, f"no alarm on {missing}"
    assert resources  # the template has resources at all


def test_stream_failures_have_a_queue_of_their_own(cfn: dict[str, Any]) -> None:
    """Pointers to stream records are not jobs: never mixed with a dead-letter queue that is
    redriven, nor with a queue a function reads or writes."""
    problems = []
    for logical_id, mapping in of_type(cfn, "AWS::Lambda::EventSourceMapping").items():
        on_failure = (
            (mapping["Properties"].get("DestinationConfig") or {}).get("OnFailure") or {}
        ).get("Destination")
        if not on_failure:
            continue
        queue = on_failure["Fn::GetAtt"][0]
        users = [
            lid
            for lid, r in cfn["Resources"].items()
            if lid != logical_id
            and r["Type"]
            in ("AWS::SQS::Queue", "AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping")
            and queue in set(references(r.get("Properties")))
        ]
        if users:
            problems.append(f"{logical_id}'s on-failure queue {queue} is also used by {users}")
    assert not problems, str(problems)


def scheduled_functions(cfn: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for resource in cfn["Resources"].values():
        if resource["Type"] == "AWS::Scheduler::Schedule":
            found |= set(references(resource["Properties"]["Target"]["Arn"]))
        elif resource["Type"] == "AWS::Events::Rule":
            for target in resource["Properties"].get("Targets") or []:
                found |= set(references(target["Arn"]))
    return found & set(functions_of(cfn))


def test_scheduled_functions_are_not_retried(cfn: dict[str, Any]) -> None:
    """A schedule tick is not retried: Lambda's asynchronous retries (2, events kept up to 6 h)
    and the scheduler's own are off; the next tick does the same work."""
    scheduled = scheduled_functions(cfn)
    assert scheduled, "no scheduled function"
    configs = {
        r["Properties"]["FunctionName"].get("Ref"): r["Properties"]
        for r in of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
    }
    problems = []
    for function in sorted(scheduled):
        config = configs.get(function)
        if config is None:
            problems.append(f"{function}: no EventInvokeConfig (Lambda retries twice, up to 6 h)")
            continue
        if int(config.get("MaximumRetryAttempts", 2)) != 0:
            problems.append(f"{function}: MaximumRetryAttempts {config['MaximumRetryAttempts']}")
        if int(config.get("MaximumEventAgeInSeconds", 21600)) > 300:
            problems.append(f"{function}: events kept {config.get('MaximumEventAgeInSeconds')} s")
    for logical_id, schedule in of_type(cfn, "AWS::Scheduler::Schedule").items():
        retries = (schedule["Properties"]["Target"].get("RetryPolicy") or {}).get(
            "MaximumRetryAttempts", 185
        )
        if int(retries) != 0:
            problems.append(f"{logical_id}: the scheduler retries {retries} times")
    assert not problems, str(problems)


def test_every_function_has_a_log_group_with_a_retention(cfn: dict[str, Any]) -> None:
    groups = of_type(cfn, "AWS::Logs::LogGroup")
    parameters = set(cfn.get("Parameters") or {})
    problems = []
    for name, props in functions_of(cfn).items():
        target = ((props.get("LoggingConfig") or {}).get("LogGroup") or {}).get("Ref")
        mine = [
            g
            for lid, g in groups.items()
            if lid == target or name in set(references(g["Properties"].get("LogGroupName")))
        ]
        if not mine:
            problems.append(f"{name}: no log group of its own (lines kept forever)")
        for group in mine:
            retention = group["Properties"].get("RetentionInDays")
            if not set(references(retention)) & parameters:
                problems.append(f"{name}: retention {retention!r} is not a parameter")
    assert not problems, str(problems)


def test_functions_and_layers_run_on_arm64(cfn: dict[str, Any]) -> None:
    wrong = {
        name: props.get("Architectures", ["x86_64"])
        for name, props in functions_of(cfn).items()
        if props.get("Architectures") != ["arm64"]
    }
    wrong |= {
        name: r["Properties"].get("CompatibleArchitectures")
        for name, r in of_type(cfn, "AWS::Lambda::LayerVersion").items()
        if "arm64" not in (r["Properties"].get("CompatibleArchitectures") or [])
    }
    assert not wrong, f"not arm64: {wrong}"
    # sam build makes a layer for x86_64 unless its Metadata says otherwise.
    from samtranslator.yaml_helper import yaml_parse

    raw = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))["Resources"]
    builds = {
        name: (r.get("Metadata") or {}).get("BuildArchitecture", "x86_64")
        for name, r in raw.items()
        if r["Type"] == "AWS::Serverless::LayerVersion"
    }
    assert set(builds.values()) <= {"arm64"}, f"layers built for another architecture: {builds}"


def test_samconfig_has_staging_and_sync_never_touches_production() -> None:
    import tomllib

    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    production = config["default"]["global"]["parameters"]["stack_name"]
    staging = config["staging"]["global"]["parameters"]["stack_name"]
    assert staging != production
    assert config["staging"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
    for env in ("default", "staging"):
        assert config[env]["sync"]["parameters"]["stack_name"] == staging, env


def test_the_stacks_starting_configuration_is_not_configured_and_says_what_is_missing(
    cfn: dict[str, Any],
) -> None:
    """The parameter the stack makes holds a safe start (no clients, no carriers): the functions'
    own parser reads it as "not configured" (503 on every route), never as a crash (500)."""
    from smsbridge.config import NotConfigured, parse_config

    starts = [r["Properties"] for r in of_type(cfn, "AWS::SSM::Parameter").values()]
    assert starts, "the stack makes no configuration parameter"
    secrets = [r["Properties"] for r in of_type(cfn, "AWS::SecretsManager::Secret").values()]
    assert secrets, "the stack makes no secret"
    envs = [(p.get("Environment") or {}).get("Variables") or {} for p in functions_of(cfn).values()]
    for env in envs:
        assert set(references(env["CONFIG_PARAMETER"])) & set(of_type(cfn, "AWS::SSM::Parameter"))
        assert set(references(env["SECRETS_ID"])) & set(of_type(cfn, "AWS::SecretsManager::Secret"))
    for start in starts:
        with pytest.raises(NotConfigured) as raised:
            parse_config(json.loads(start["Value"]), json.loads(secrets[0]["SecretString"]))
        assert raised.value.missing == ["carriers", "clients", "routes.default"]
