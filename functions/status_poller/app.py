"""The scheduled status run: polls, time-outs, re-queues and expiries (bounded per run)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsbridge.polling import Poller
from smsbridge.runtime import Runtime

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()


@logger.inject_lambda_context(clear_state=True)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    problem = runtime.configuration_problem()
    if problem is not None:
        logger.error("not configured; nothing polled", extra={"problem": problem})
        return {"not_configured": problem}
    summary = asdict(Poller(runtime.tracker()).run())
    logger.info("status run", extra={"summary": summary})
    return summary
