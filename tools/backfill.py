"""Give messages stored before the search indexes existed their index keys (SPEC 3.4).

Messages created since carry `search_number` and `search_time` from their first write. Older ones
(and every message, after `search_index_secret` changed) need them written once: this command
Scans the table for messages without `search_time` (a one-off operator task, never a request's
path) and sets both keys with the secret from the secrets document. Run it again after rotating
the secret with `--all`.

Usage (`make backfill ARGS="..."` runs `python -m tools.backfill ...`):

    # the local stack (its moto endpoint is printed by `make run`)
    make backfill ARGS="--endpoint-url http://127.0.0.1:PORT"
    # AWS: the table's physical name (stack output MessagesTableName) and the secret's id
    AWS_PROFILE=ops make backfill \
        ARGS="--table smsbridge-MessagesTable-1A2B3C --secrets-id smsbridge/secrets"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from smsbridge.repository import MessageRepository, message_from_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from smsbridge.models import Message

DEFAULT_TABLE = "MessagesTable"
DEFAULT_SECRETS_ID = "smsbridge/secrets"
LOCAL_REGION = "eu-west-1"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def messages_to_index(
    client: DynamoDBClient, table: str, *, every: bool = False, page_size: int = 500
) -> Iterator[Message]:
    """Messages without search keys (all messages with `every`), by a paginated Scan."""
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "item_type = :message"
        + ("" if every else " AND attribute_not_exists(search_time)"),
        "ExpressionAttributeValues": {":message": {"S": "message"}},
        "Limit": page_size,
    }
    while True:
        answer = client.scan(**request)
        yield from (message_from_item(item) for item in answer.get("Items", []))
        if "LastEvaluatedKey" not in answer:
            return
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def backfill(client: DynamoDBClient, table: str, secret: str, *, every: bool = False) -> int:
    """Write the search keys of every message that lacks them; the number written."""
    repository = MessageRepository(client, table)
    written = 0
    for message in messages_to_index(client, table, every=every):
        written += repository.add_search_keys(message, secret)
    return written


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.backfill",
        description="Write the search index keys of messages stored before the indexes existed.",
    )
    parser.add_argument("--table", default=DEFAULT_TABLE, help="Messages table name")
    parser.add_argument("--secrets-id", default=DEFAULT_SECRETS_ID, help="the secrets document")
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL") or None,
        help="AWS endpoint, e.g. the local stack's moto (default: AWS_ENDPOINT_URL, else AWS)",
    )
    parser.add_argument("--region", default=None, help="AWS region")
    parser.add_argument(
        "--all", action="store_true", help="every message (after the secret was rotated)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """0 on success, 1 when the table or the secret cannot be read."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    args = parse_args(argv)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if args.endpoint_url and (urlsplit(args.endpoint_url).hostname or "") in _LOOPBACK_HOSTS:
        # the local stack's moto: never the developer's credentials
        session = boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=region or LOCAL_REGION,
        )
    else:
        session = boto3.Session(region_name=region)
    try:
        secrets = session.client("secretsmanager", endpoint_url=args.endpoint_url)
        document = json.loads(secrets.get_secret_value(SecretId=args.secrets_id)["SecretString"])
        secret = document.get("search_index_secret") if isinstance(document, dict) else None
        if not isinstance(secret, str) or not secret:
            print(f"backfill: {args.secrets_id} has no search_index_secret", file=sys.stderr)
            return 1
        dynamodb = session.client("dynamodb", endpoint_url=args.endpoint_url)
        written = backfill(dynamodb, args.table, secret, every=args.all)
    except (BotoCoreError, ClientError, ValueError) as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 1
    print(f"backfill: search keys written for {written} messages of {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
