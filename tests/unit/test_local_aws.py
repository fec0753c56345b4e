"""The local moto server's shortcuts answer as AWS does: a query of a sparse index reads only the
items the index holds; SQS sends and receives skip the queue counts, which stay right."""

from __future__ import annotations

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
                {"AttributeName": "shard", "AttributeType": "S"},
                {"AttributeName": "due", "AttributeType": "N"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": INDEX,
                    "KeySchema": [
                        {"AttributeName": "shard", "KeyType": "HASH"},
                        {"AttributeName": "due", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        )
        for n in range(300):
            item: dict[str, Any] = {"id": {"S": f"m{n:03d}"}}
            if n % 10 == 0:  # open: in the index
                item["shard"] = {"S": f"{n % 20:02d}"}
                item["due"] = {"N": str(1000 - n)}
            elif n % 10 == 1:  # half the index keys: not in the index
                item["shard"] = {"S": "00"}
            client.put_item(TableName=TABLE, Item=item)
        yield client
    finally:
        server.stop()


def _query(client: Any, shard: str, **extra: Any) -> list[str]:
    ids: list[str] = []
    request: dict[str, Any] = {
        "TableName": TABLE,
        "IndexName": INDEX,
        "KeyConditionExpression": "shard = :s AND due <= :now",
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
    # Shard "00": items 0, 20, 40 ... 280 with due 1000 - n; due <= 990 leaves out item 0.
    expected = [f"m{n:03d}" for n in range(280, 0, -20)]
    assert _query(dynamodb, "00") == expected
    assert _query(dynamodb, "00", Limit=4) == expected
    assert _query(dynamodb, "00", ScanIndexForward=False) == expected[::-1]
    assert _query(dynamodb, "05") == []


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
