"""The local moto server runs in a process of its own, and its two hooks answer as AWS does:
queries and scans of a sparse index read only the items the index holds, kept up to date by every
write; SQS sends and receives skip the queue counts, which stay right. The hooks are written for
one moto release, which is the one installed."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator
from typing import Any

import pytest

from local import aws

TABLE = "messages"
INDEX = "open"


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    server = aws.MotoServer()
    endpoint = server.start()
    try:
        client = aws.clients(endpoint, "eu-west-1").dynamodb
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "open_shard", "AttributeType": "S"},
                {"AttributeName": "next_check_at", "AttributeType": "N"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": INDEX,
                    "KeySchema": [
                        {"AttributeName": "open_shard", "KeyType": "HASH"},
                        {"AttributeName": "next_check_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        for n in range(300):
            item: dict[str, Any] = {"id": {"S": f"m{n:03d}"}}
            if n % 10 == 0:  # open: in the index
                item["open_shard"] = {"S": f"{n % 20:02d}"}
                item["next_check_at"] = {"N": str(1000 - n)}
            elif n % 10 == 1:  # half the index keys: not in the index
                item["open_shard"] = {"S": "00"}
            client.put_item(TableName=TABLE, Item=item)
        yield client
    finally:
        server.stop()


def _query(client: Any, shard: str, **extra: Any) -> list[str]:
    ids: list[str] = []
    request: dict[str, Any] = {
        "TableName": TABLE,
        "IndexName": INDEX,
        "KeyConditionExpression": "open_shard = :s AND next_check_at <= :now",
        "ExpressionAttributeValues": {":s": {"S": shard}, ":now": {"N": "990"}},
        **extra,
    }
    while True:
        page = client.query(**request)
        ids += [item["id"]["S"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return ids
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_sparse_index_query_holds_only_indexed_items_in_range_order(dynamodb: Any) -> None:
    # Shard "00": items 0, 20, 40 ... 280, due at 1000 - n; due by 990 leaves out item 0.
    expected = [f"m{n:03d}" for n in range(280, 0, -20)]
    assert _query(dynamodb, "00") == expected
    assert _query(dynamodb, "00", Limit=4) == expected
    assert _query(dynamodb, "00", ScanIndexForward=False) == expected[::-1]
    assert _query(dynamodb, "05") == []


def _count(client: Any) -> int:
    page = client.scan(TableName=TABLE, IndexName=INDEX, Select="COUNT")
    return int(page["Count"])


def test_writes_move_items_into_and_out_of_the_index(dynamodb: Any) -> None:
    assert _count(dynamodb) == 30
    key = {"id": {"S": "w-1"}}
    # An update that creates the item with both index keys puts it in the index ...
    dynamodb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET open_shard = :s, next_check_at = :d",
        ExpressionAttributeValues={":s": {"S": "19"}, ":d": {"N": "5"}},
    )
    assert _query(dynamodb, "19") == ["w-1"]
    assert _count(dynamodb) == 31
    # ... one that fails its condition changes nothing ...
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="REMOVE next_check_at",
            ConditionExpression="attribute_not_exists(id)",
        )
    assert _query(dynamodb, "19") == ["w-1"]
    # ... removing a key takes it out, a put of the whole item puts it back, a delete removes it.
    dynamodb.update_item(TableName=TABLE, Key=key, UpdateExpression="REMOVE next_check_at")
    assert _query(dynamodb, "19") == []
    dynamodb.put_item(
        TableName=TABLE, Item={**key, "open_shard": {"S": "19"}, "next_check_at": {"N": "7"}}
    )
    assert _query(dynamodb, "19") == ["w-1"]
    dynamodb.delete_item(TableName=TABLE, Key=key)
    assert _query(dynamodb, "19") == []
    assert _count(dynamodb) == 30


def test_a_query_of_the_table_itself_is_unchanged(dynamodb: Any) -> None:
    page = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="id = :id",
        ExpressionAttributeValues={":id": {"S": "m001"}},
    )
    assert [item["id"]["S"] for item in page["Items"]] == ["m001"]


def test_queue_counts_stay_right_while_sends_and_receives_skip_them() -> None:
    server = aws.MotoServer()
    sqs = aws.clients(server.start(), "eu-west-1").sqs
    try:
        url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
        for n in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=f"job {n}")
        taken = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
        assert [m["Body"] for m in taken] == ["job 0", "job 1"]
        counts = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert counts == {
            "ApproximateNumberOfMessages": "3",
            "ApproximateNumberOfMessagesNotVisible": "2",
        }
    finally:
        server.stop()


def test_the_hooks_are_written_for_the_installed_moto() -> None:
    """A new moto may change the methods the hooks wrap: update MOTO_VERSION only after checking
    them (tests above) and measuring again (see local/aws.py)."""
    assert importlib.metadata.version("moto") == aws.MOTO_VERSION


def test_moto_runs_in_its_own_process_and_this_one_stays_unpatched(dynamodb: Any) -> None:
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import SQSBackend

    assert not getattr(Table.__init__, "keeps_index_members", False)
    assert not getattr(SQSBackend.send_message, "skips_queue_counts", False)
    server = aws.MotoServer()
    server.start()
    try:
        assert server.pid is not None and server.pid != os.getpid()
    finally:
        server.stop()


def test_the_dispatcher_finds_each_hosts_backend_once() -> None:
    """The moto process's dispatcher (a subclass) remembers the backend of a host."""
    dispatcher = aws._dispatcher()
    lookup = dispatcher.get_backend_for_host
    assert lookup("dynamodb") == "dynamodb"
    assert lookup("dynamodb") == "dynamodb"
    assert lookup("sqs.eu-west-1.amazonaws.com") == "sqs"
    assert type(dispatcher).get_backend_for_host.cache_info().hits >= 1
