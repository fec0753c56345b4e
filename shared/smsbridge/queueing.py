"""The dispatch queue: what goes on it and how a record is put back for a later try."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

    from smsbridge.notify import Job

#: Batch sends of one request in flight at once.
SEND_CONCURRENCY = 8
#: Requests with more messages than this are queued as packed records of ten ids.
PACK_ABOVE = 100
#: SQS caps a visibility time-out at 12 hours.
MAX_VISIBILITY_SECONDS = 12 * 3600


class DispatchQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def enqueue(self, sms_ids: Sequence[str]) -> list[str]:
        """Queue messages for submission; returns the ids that could not be queued.

        One record per message, ten records a call. Above `PACK_ABOVE` messages (a large OFSC
        batch) a record carries ten ids, which dispatch fans out into one record per message:
        the originator then waits for a tenth of the calls. Calls run `SEND_CONCURRENCY` at a time.
        """
        ids = list(sms_ids)
        if len(ids) > PACK_ABOVE:
            records = [ids[start : start + 10] for start in range(0, len(ids), 10)]
        else:
            records = [[sms_id] for sms_id in ids]
        calls = [records[start : start + 10] for start in range(0, len(records), 10)]
        if len(calls) <= 1:
            return [failed for call in calls for failed in self._send_batch(call)]
        with ThreadPoolExecutor(min(SEND_CONCURRENCY, len(calls))) as pool:
            return [failed for batch in pool.map(self._send_batch, calls) for failed in batch]

    def _send_batch(self, records: list[list[str]]) -> list[str]:
        answer = self._client.send_message_batch(
            QueueUrl=self._url,
            Entries=[
                {"Id": str(index), "MessageBody": _record_body(ids)}
                for index, ids in enumerate(records)
            ],
        )
        return [mid for entry in answer.get("Failed", []) for mid in records[int(entry["Id"])]]

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Hide a record for `seconds` (growing back-off between submission tries)."""
        self._client.change_message_visibility(
            QueueUrl=self._url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY_SECONDS)),
        )

    def hand_back(self, receipt_handles: Sequence[str]) -> None:
        """Make records visible again at once (ten a call): records this invocation had no
        time for go to the next one instead of waiting out the visibility time-out."""
        for start in range(0, len(receipt_handles), 10):
            self._client.change_message_visibility_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(receipt_handles[start : start + 10])
                ],
            )


class NotifyQueue:
    """The notify queue (jobs from the stream) and its dead-letter queue."""

    def __init__(self, client: SQSClient, queue_url: str, dead_letter_url: str) -> None:
        self._client = client
        self._url = queue_url
        self._dead_letter_url = dead_letter_url

    def enqueue(self, bodies: Sequence[str]) -> list[int]:
        """Queue job bodies (10 a call); returns the positions that could not be queued."""
        failed: list[int] = []
        for start in range(0, len(bodies), 10):
            answer = self._client.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(start + index), "MessageBody": body}
                    for index, body in enumerate(bodies[start : start + 10])
                ],
            )
            failed.extend(int(entry["Id"]) for entry in answer.get("Failed", []))
        return sorted(failed)

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        self._client.change_message_visibility(
            QueueUrl=self._url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY_SECONDS)),
        )

    def requeue(self, job: Job, delay: int) -> None:
        """The job again as a new record, after `delay` seconds (at most 900)."""
        self._client.send_message(
            QueueUrl=self._url, MessageBody=job.to_json(), DelaySeconds=max(0, min(delay, 900))
        )

    def dead_letter(self, job: Job, reason: str) -> None:
        body = json.loads(job.to_json())
        body["dead_letter_reason"] = reason
        self._client.send_message(QueueUrl=self._dead_letter_url, MessageBody=json.dumps(body))


def _record_body(ids: list[str]) -> str:
    return json.dumps({"id": ids[0]} if len(ids) == 1 else {"ids": ids})


def sms_id_of(record_body: str) -> str:
    """The smsbridge id carried by a dispatch record (ValueError when it is not one)."""
    data = json.loads(record_body)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise ValueError("dispatch record without an id")
    sms_id: str = data["id"]
    return sms_id


def packed_ids_of(record_body: str) -> list[str] | None:
    """The ids of a packed record (to be fanned out), None for any other record."""
    try:
        data = json.loads(record_body)
    except ValueError:
        return None
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        return None
    return ids
