"""`make config-push` / `make secrets-push` (tools/config_push.py) against moto: a document is
checked by the functions' own parser (the same messages) and only then put."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from smsbridge.config import ConfigError, parse_config
from tests.support import local_documents
from tools.config_push import main

REGION = "eu-west-1"
START = '{"clients": {}, "carriers": {}, "routes": {}}'


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        session.client("ssm").put_parameter(Name="/s/config", Value=START, Type="String")
        arn = session.client("secretsmanager").create_secret(
            Name="s-secrets", SecretString='{"clients": {}, "carriers": {}}'
        )["ARN"]
        outputs = {"ConfigParameterName": "/s/config", "SecretsArn": arn}
        session.client("cloudformation").create_stack(
            StackName="s",
            TemplateBody=json.dumps(
                {
                    "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
                    "Outputs": {k: {"Value": v} for k, v in outputs.items()},
                }
            ),
        )
        yield session


def _write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def _stored(session: Any) -> str:
    return str(session.client("ssm").get_parameter(Name="/s/config")["Parameter"]["Value"])


def test_a_bad_document_is_refused_with_the_functions_message(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = local_documents("http://127.0.0.1:9")
    config["routes"]["default"] = "nobody"
    with pytest.raises(ConfigError) as raised:
        parse_config(config, {})  # what a function would say on start
    path = _write(tmp_path, "config.json", config)
    assert main(["config", str(path), "--stack", "s"], session=aws) == 2
    assert str(raised.value) in capsys.readouterr().err
    assert _stored(aws) == START  # nothing put


def test_a_good_document_is_put_into_the_stacks_parameter(aws: Any, tmp_path: Path) -> None:
    config, _ = local_documents("http://127.0.0.1:9")
    path = _write(tmp_path, "config.json", config)
    assert main(["config", str(path), "--stack", "s"], session=aws) == 0
    assert json.loads(_stored(aws)) == config


def test_the_starting_content_itself_is_refused(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "config.json", START)
    assert main(["config", str(path), "--name", "/s/config"], session=aws) == 2
    assert "names no carriers" in capsys.readouterr().err


def test_a_dry_run_checks_and_puts_nothing(aws: Any, tmp_path: Path) -> None:
    config, _ = local_documents("http://127.0.0.1:9")
    path = _write(tmp_path, "config.json", config)
    assert main(["config", str(path), "--stack", "s", "--dry-run"], session=aws) == 0
    assert _stored(aws) == START
    assert (
        main(["config", str(_write(tmp_path, "bad.json", "[1]")), "--dry-run", "--stack", "s"]) == 2
    )


def test_secrets_are_checked_against_the_stacks_configuration(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, secrets = local_documents("http://127.0.0.1:9")
    assert (
        main(["config", str(_write(tmp_path, "c.json", config)), "--stack", "s"], session=aws) == 0
    )
    bad = json.loads(json.dumps(secrets))
    bad["carriers"]["smartswitch"]["password"] = 42
    assert (
        main(["secrets", str(_write(tmp_path, "bad.json", bad)), "--stack", "s"], session=aws) == 2
    )
    assert "secrets.carriers.smartswitch.password must be a string" in capsys.readouterr().err
    good = _write(tmp_path, "good.json", secrets)
    assert main(["secrets", str(good), "--stack", "s"], session=aws) == 0
    arn = aws.client("cloudformation").describe_stacks(StackName="s")["Stacks"][0]["Outputs"]
    secret_id = next(o["OutputValue"] for o in arn if o["OutputKey"] == "SecretsArn")
    stored = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    assert json.loads(stored) == secrets
