"""Delivery receipts: POST /dlr/{carrier}, read and answered in the carrier's own format."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsbridge.receipts import ReceiptDesk
from smsbridge.runtime import Runtime
from smsbridge.web import HttpAnswer, HttpRequest

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()


def _request_of(event: dict[str, Any]) -> HttpRequest | None:
    """The neutral request of an API Gateway v2 event (None when the body cannot be decoded)."""
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
    except (binascii.Error, ValueError):
        return None
    http = event.get("requestContext", {}).get("http", {})
    return HttpRequest(
        method=http.get("method", "POST"),
        path=event.get("rawPath", ""),
        headers={key.lower(): value for key, value in (event.get("headers") or {}).items()},
        query=parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True),
        body=raw,
    )


def _response(answer: HttpAnswer) -> dict[str, Any]:
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": answer.content_type, **answer.headers},
        "body": answer.body,
    }


# Logged without the query string: it may carry `_password` or `token`.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    carrier = (event.get("pathParameters") or {}).get("carrier", "")
    request = _request_of(event)
    if request is None:
        return _response(HttpAnswer(400, "body is not valid base64"))
    try:
        answer = ReceiptDesk(runtime.tracker()).handle(carrier, request)
    except Exception:
        logger.exception("receipt handling failed", extra={"carrier": carrier})
        # A 5xx makes the carrier post the receipt again later; applying it twice is harmless.
        return _response(HttpAnswer(503, "temporarily unavailable"))
    logger.info("receipt answered", extra={"carrier": carrier, "status": answer.status})
    return _response(answer)
