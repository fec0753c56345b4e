"""`make config-push` / `make secrets-push`: check a document with the functions' own parser,
then put it where a deployed stack's functions read it.

    python -m tools.config_push config config.json --stack smsbridge-staging
    python -m tools.config_push secrets secrets.json --stack smsbridge-staging [--dry-run]

The target is the stack's `ConfigParameterName` / `SecretsArn` output (or `--name`). A
configuration document goes through `smsbridge.config.parse_config`, the code every function
runs on start, so a refused document gets the same message a function would log; a secret is
checked for its own shape and then against the configuration the stack holds now. Nothing is
put unless the check passes. Exit status: 0 put (or checked, with --dry-run), 2 refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smsbridge.config import ConfigError, NotConfigured, check_secrets, parse_config

#: SSM's standard tier holds 4 KB; larger documents need the advanced tier.
STANDARD_TIER_BYTES = 4096
OUTPUTS = {"config": "ConfigParameterName", "secrets": "SecretsArn"}


class Refused(Exception):
    """The document fails the functions' own checks; the message says why."""


def check_config(text: str) -> dict[str, Any]:
    document = _json(text)
    try:
        parse_config(document, {})
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    return document


def check_secret(text: str, current_config: str | None) -> dict[str, Any]:
    secrets = _json(text)
    try:
        check_secrets(secrets)
        if current_config is not None:
            parse_config(json.loads(current_config), secrets)
    except NotConfigured:
        pass  # no configuration put yet: the secret's own shape is all there is to check
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    return secrets


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Refused("the document must be a JSON object")
    return value


def stack_output(session: Any, stack: str, key: str) -> str:
    described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    for output in described.get("Outputs") or []:
        if output["OutputKey"] == key:
            return str(output["OutputValue"])
    raise Refused(f"stack {stack} has no output {key} (deployed from an older template?)")


def push(session: Any, kind: str, text: str, name: str, *, config_name: str | None) -> None:
    """Check, then put. `config_name`: the stack's configuration, to check a secret against."""
    if kind == "config":
        check_config(text)
        session.client("ssm").put_parameter(
            Name=name,
            Value=text,
            Type="String",
            Overwrite=True,
            Tier="Advanced" if len(text.encode()) > STANDARD_TIER_BYTES else "Standard",
        )
        return
    current = None
    if config_name:
        ssm = session.client("ssm")
        try:
            current = ssm.get_parameter(Name=config_name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            current = None
    check_secret(text, current)
    session.client("secretsmanager").put_secret_value(SecretId=name, SecretString=text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.config_push", description=__doc__)
    parser.add_argument("kind", choices=sorted(OUTPUTS))
    parser.add_argument("file", type=Path)
    parser.add_argument("--stack", help="read the target from this stack's outputs")
    parser.add_argument("--name", help="the parameter name or secret id (instead of --stack)")
    parser.add_argument("--region")
    parser.add_argument("--endpoint-url", help="a moto endpoint, for trying it locally")
    parser.add_argument("--dry-run", action="store_true", help="check only, put nothing")
    args = parser.parse_args(argv)
    if not args.name and not args.stack:
        parser.error("give --stack (or --name)")
    return args


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    args = parse_args(argv)
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"refused: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    if session is None:
        import boto3

        session = boto3.Session(region_name=args.region)
        if args.endpoint_url:
            session = _Endpoint(session, args.endpoint_url)
    try:
        if args.dry_run:
            (check_config(text) if args.kind == "config" else check_secret(text, None))
            print(f"{args.file}: valid {args.kind} document (dry run, nothing put)")
            return 0
        name = args.name or stack_output(session, args.stack, OUTPUTS[args.kind])
        config_name = None
        if args.kind == "secrets" and args.stack:
            config_name = stack_output(session, args.stack, OUTPUTS["config"])
        push(session, args.kind, text, name, config_name=config_name)
    except Refused as exc:
        print(f"refused, nothing put: {exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: put into {name}")
    return 0


class _Endpoint:
    """A session whose clients talk to one endpoint (a local moto server)."""

    def __init__(self, session: Any, endpoint_url: str) -> None:
        self._session = session
        self._endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint_url)


if __name__ == "__main__":
    raise SystemExit(main())
