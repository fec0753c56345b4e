"""The dispatch queue: what goes on it and how a record is put back for a later try."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

#: SQS caps a visibility time-out at 12 hours.
MAX_VISIBILITY_SECONDS = 12 * 3600


class DispatchQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def enqueue(self, message_ids: Sequence[str]) -> list[str]:
        """Queue messages for submission (10 a call); returns the ids that could not be queued."""
        failed: list[str] = []
        for start in range(0, len(message_ids), 10):
            chunk = message_ids[start : start + 10]
            answer = self._client.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(index), "MessageBody": json.dumps({"id": message_id})}
                    for index, message_id in enumerate(chunk)
                ],
            )
            failed.extend(chunk[int(entry["Id"])] for entry in answer.get("Failed", []))
        return failed

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Hide a record for `seconds` (growing back-off between submission tries)."""
        self._client.change_message_visibility(
            QueueUrl=self._url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY_SECONDS)),
        )


def message_id_of(record_body: str) -> str:
    """The smsbridge id carried by a dispatch record (ValueError when it is not one)."""
    data = json.loads(record_body)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise ValueError("dispatch record without an id")
    message_id: str = data["id"]
    return message_id
