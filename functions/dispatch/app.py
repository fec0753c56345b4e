"""Dispatch: SQS batches of queued messages, each submitted to its routed carrier.

Partial batch failures: a record to retry later gets its visibility set to the back-off and is
reported failed; every other record is done. A packed record (the ids of a large intake batch)
is fanned out into one record per message.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsbridge.dispatching import Dispatcher
from smsbridge.queueing import packed_ids_of, sms_id_of
from smsbridge.ratelimit import RateLimiter
from smsbridge.runtime import Runtime

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


if TYPE_CHECKING:
    import requests


@functools.cache
def http_session() -> requests.Session:
    """One connection pool per container, made on the first submission: importing requests
    costs a cold start about a seventh of the floor."""
    import requests

    return requests.Session()


class RetryLater(Exception):
    """The record goes back on the queue (its visibility already set to the back-off)."""


def record_handler(record: SQSRecord) -> str:
    packed = packed_ids_of(record.body)
    if packed is not None:
        if runtime.queue().enqueue(packed):
            # Seen again after the visibility time-out; a repeated record is claimed once.
            raise RetryLater("fan-out incomplete")
        return "fanned out"
    try:
        sms_id = sms_id_of(record.body)
    except ValueError:
        logger.error("dropping a record that is not a dispatch record")
        return "dropped"
    logger.append_keys(correlation_id=sms_id)
    tracker = runtime.tracker()
    dispatcher = Dispatcher(tracker, http_session(), RateLimiter(tracker.repository))
    result = dispatcher.dispatch(sms_id)
    logger.info("dispatched", extra={"outcome": result.outcome})
    if result.retry_after is not None:
        runtime.queue().retry_later(record.receipt_handle, result.retry_after)
        raise RetryLater(result.outcome)
    return result.outcome


@logger.inject_lambda_context(clear_state=True)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
