"""template.yaml as CloudFormation reads it: the SAM translator's output must be deployable.

`sam validate --lint` passes templates that CloudFormation refuses. These tests run the SAM
transform (`samtranslator`, as `sam deploy` does) and check the generated resources: no
dependency cycle, every environment variable a handler reads is set (or has a documented
default), and each function's role allows the AWS actions its code calls.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.session import get_session

from local.cloudformation import DEFAULT_TEMPLATE, REPO_ROOT, references, translate

LAYER = REPO_ROOT / "shared" / "smsbridge"
README = REPO_ROOT / "README.md"

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
        # ChangeMessageVisibility: a transient submit failure backs the record off.
        frozenset(LAYER_ACTIONS | {"sqs:ChangeMessageVisibility"}),
    ),
    "DlrWebhookFunction": Uses(frozenset(NAMES | POWERTOOLS), frozenset(LAYER_ACTIONS)),
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


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate(DEFAULT_TEMPLATE)


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
    missing = sorted(action for action in needed if not allowed(action, granted))
    assert not missing, f"{function}'s role does not allow {missing}"
