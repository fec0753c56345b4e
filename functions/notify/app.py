"""Notify: tells originators how their messages went (OFSC set_message_status, JSON callbacks).

Two triggers: the Messages table's stream (filtered to status changes in the template) turns each
change into jobs on the notify queue and never calls a back office; the notify queue (batched over
a short window, partial batch failures) sends them. Records to retry get their visibility set to
the back-off and are reported failed.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsbridge.notify import jobs_for_images
from smsbridge.notify_delivery import Notifier, QueuedRecord, settle
from smsbridge.queueing import NotifyQueue
from smsbridge.runtime import Runtime

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()

if TYPE_CHECKING:
    import requests


@functools.cache
def http_session() -> requests.Session:
    """One connection pool per container, made on the first callback: the stream stage never
    calls anyone, and importing requests costs a cold start half the floor."""
    import requests

    return requests.Session()


def _queue() -> NotifyQueue:
    settings = runtime.settings
    return NotifyQueue(
        runtime.sqs_when_called, settings.notify_queue_url, settings.notify_dead_letter_queue_url
    )


def on_stream(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Status changes → jobs on the notify queue (a failed enqueue retries from its record)."""
    now = runtime.clock()
    bodies: list[str] = []
    owners: list[str] = []
    for record in records:
        change = record.get("dynamodb") or {}
        for job in jobs_for_images(change.get("OldImage"), change.get("NewImage"), now):
            bodies.append(job.to_json())
            owners.append(str(change.get("SequenceNumber", "")))
    failed = _queue().enqueue(bodies) if bodies else []
    if not failed:
        return {"batchItemFailures": []}
    logger.warning("notify jobs not queued; the stream retries", extra={"count": len(failed)})
    return {"batchItemFailures": [{"itemIdentifier": owners[failed[0]]}]}


def on_queue(records: list[dict[str, Any]], context: LambdaContext) -> dict[str, Any]:
    """A batch of jobs → callbacks; records to try again stay on the queue."""
    notifier = Notifier(
        runtime.settings,
        runtime.config(),
        runtime.repository(),
        http_session(),
        runtime.metrics,
        clock=runtime.clock,
    )
    queued = [
        QueuedRecord(
            key=record["messageId"],
            receipt_handle=record["receiptHandle"],
            body=record.get("body", ""),
            receive_count=int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1)),
        )
        for record in records
    ]
    failed = settle(
        notifier,
        _queue(),
        queued,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    return {"batchItemFailures": [{"itemIdentifier": key} for key in failed]}


@logger.inject_lambda_context(clear_state=True)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records: list[dict[str, Any]] = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:dynamodb":
        return on_stream(records)  # needs no configuration: it only queues jobs
    problem = runtime.configuration_problem()
    if problem is not None:
        logger.error("not configured; the jobs stay queued", extra={"problem": problem})
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
    return on_queue(records, context)
