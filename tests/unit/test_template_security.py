"""The template's security settings: access logs, opt-in reserved concurrency, and a written
reason for every checkov finding that is skipped rather than fixed (`make scan` runs checkov
itself)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support import ROOT


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML with CloudFormation's short tags (!Ref, !Sub ...) read as plain values."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}


_CfnLoader.add_multi_constructor("!", _tagged)


def resources() -> dict[str, Any]:
    document = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    found: dict[str, Any] = document["Resources"]
    return found


def test_every_skipped_checkov_finding_has_a_written_reason() -> None:
    skips = [
        (name, skip)
        for name, resource in resources().items()
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert str(skip.get("id", "")).startswith("CKV_"), (name, skip)
        assert len(str(skip.get("comment", "")).split()) >= 8, (name, skip)


def test_the_http_api_writes_access_logs_to_a_group_with_retention() -> None:
    found = resources()
    settings = found["HttpApi"]["Properties"]["AccessLogSettings"]
    group = settings["DestinationArn"]["GetAtt"].split(".")[0]
    assert found[group]["Type"] == "AWS::Logs::LogGroup"
    assert found[group]["Properties"]["RetentionInDays"]
    # The query string carries `_password` / `token`: the log format must not hold it.
    assert "$context.path" not in settings["Format"]
    assert "$context.requestUri" not in settings["Format"]


def test_http_and_queue_functions_can_reserve_concurrency_when_asked() -> None:
    """Opt-in (a new account's quota takes no reservation, SPEC 6.1): a parameter per group,
    none by default; `test_template_deployable.py` checks the translated template."""
    found = resources()
    for name in ("SendMessageFunction", "DlrWebhookFunction", "DispatchFunction"):
        reserved = found[name]["Properties"]["ReservedConcurrentExecutions"]
        _condition, asked, otherwise = reserved["If"]
        assert otherwise == {"Ref": "AWS::NoValue"}, name
        assert asked["Ref"].endswith("ReservedConcurrency"), name
