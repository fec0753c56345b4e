"""Dispatch: SQS batches of queued messages, each submitted to its routed carrier.

Partial batch failures: a record to retry later gets its visibility set to the back-off and is
reported failed; every other record is done. Records the time left cannot cover (the slowest
carrier's connect + read time-outs and a margin) are not started: they are reported failed and
made visible again for the next invocation. A packed record (the ids of a large intake batch)
is fanned out into one record per message. (The loop is ours: Powertools' batch utility would
cost a cold start an eighth of the floor for these few lines.)
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsbridge.circuit import CircuitBreaker, CircuitCache
from smsbridge.dispatching import Dispatcher, submission_budget
from smsbridge.queueing import packed_ids_of, sms_id_of
from smsbridge.ratelimit import RateLimiter
from smsbridge.runtime import Runtime

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()
#: Circuit states this environment has read (a healthy one is read again after a second).
circuits = CircuitCache()


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


def record_handler(record: dict[str, Any]) -> str:
    body = str(record.get("body", ""))
    packed = packed_ids_of(body)
    if packed is not None:
        if runtime.queue().enqueue(packed):
            # Seen again after the visibility time-out; a repeated record is claimed once.
            raise RetryLater("fan-out incomplete")
        return "fanned out"
    try:
        sms_id = sms_id_of(body)
    except ValueError:
        logger.error("dropping a record that is not a dispatch record")
        return "dropped"
    logger.append_keys(correlation_id=sms_id)
    tracker = runtime.tracker()
    breaker = CircuitBreaker(tracker.repository, tracker.settings, tracker.metrics, circuits)
    dispatcher = Dispatcher(tracker, http_session(), RateLimiter(tracker.repository), breaker)
    result = dispatcher.dispatch(sms_id)
    logger.info("dispatched", extra={"outcome": result.outcome})
    if result.retry_after is not None:
        runtime.queue().retry_later(record["receiptHandle"], result.retry_after)
        raise RetryLater(result.outcome)
    return result.outcome


@logger.inject_lambda_context(clear_state=True)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records: list[dict[str, Any]] = event.get("Records", [])
    problem = runtime.configuration_problem()
    if problem is not None:
        # Nothing can be routed: every record waits on the queue (the queue-age alarm tells).
        logger.error("not configured; the records stay queued", extra={"problem": problem})
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
    failures: list[dict[str, str]] = []
    # Never run past the time-out: a submission cut off there has an unknown outcome.
    budget = submission_budget(runtime.config())
    for index, record in enumerate(records):
        if context.get_remaining_time_in_millis() / 1000 < budget:
            untouched = records[index:]
            logger.warning(
                "no time left for another submission; records handed back",
                extra={"count": len(untouched), "budget_seconds": budget},
            )
            failures += [{"itemIdentifier": r["messageId"]} for r in untouched]
            try:
                runtime.queue().hand_back([r["receiptHandle"] for r in untouched])
            except Exception:
                logger.exception("hand-back failed; the records return after their time-out")
            break
        try:
            record_handler(record)
        except RetryLater:
            failures.append({"itemIdentifier": record["messageId"]})
        except Exception:
            # SQS delivers it again; the claim makes a repeated submission impossible.
            logger.exception("dispatch failed; the record is tried again")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
