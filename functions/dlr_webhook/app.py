"""Delivery receipts: POST /dlr/{carrier}, read and answered in the carrier's own format.

Thin: Powertools' resolver adapts the API Gateway event; the error map below answers what a route
raises; the layer's `ReceiptDesk` bounds, reads, applies and answers.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.typing import LambdaContext

from smsbridge.receipts import ReceiptDesk, unavailable_answer, unknown_carrier_answer
from smsbridge.runtime import Runtime
from smsbridge.web import HttpAnswer, HttpRequest

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()
app = APIGatewayHttpResolver()


class UnreadableBase64(ValueError):
    """The event says the body is base64 and it is not."""


def _response(answer: HttpAnswer) -> Response[str]:
    return Response(answer.status, answer.content_type, answer.body, headers=answer.headers)


def _carrier() -> str:
    return str((app.current_event.path_parameters or {}).get("carrier", ""))


def _request() -> HttpRequest:
    """The neutral request of the current event."""
    event = app.current_event
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")
    except (binascii.Error, ValueError):
        raise UnreadableBase64 from None
    return HttpRequest(
        method=event.request_context.http.method,
        path=event.raw_path,
        headers={key.lower(): value for key, value in (event.headers or {}).items()},
        query=parse_qsl(event.raw_query_string or "", keep_blank_values=True),
        body=raw,
    )


# --- the error map ----------------------------------------------------------------------------


@app.exception_handler(UnreadableBase64)  # type: ignore[untyped-decorator]
def _unreadable(error: UnreadableBase64) -> Response[str]:
    return _response(HttpAnswer(400, "body is not valid base64"))


@app.not_found
def _not_found(error: NotFoundError) -> Response[str]:
    return _response(unknown_carrier_answer())


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _unavailable(error: Exception) -> Response[str]:
    """A 5xx makes the carrier post the receipt again later; applying it twice is harmless.
    It is shaped by the carrier's format when the configuration can still be read."""
    logger.exception("receipt handling failed", extra={"carrier": _carrier()})
    try:
        config = runtime.config()
    except Exception:  # the configuration may be what failed
        config = None
    return _response(unavailable_answer(config, _carrier()))


# --- the route --------------------------------------------------------------------------------


@app.post("/dlr/<carrier>")
def receipt(carrier: str) -> Response[str]:
    name = _carrier()  # API Gateway's decoded path parameter, not the raw path segment
    answer = ReceiptDesk(runtime.tracker()).handle(name, _request())
    logger.info("receipt answered", extra={"carrier": name, "status": answer.status})
    return _response(answer)


# Logged without the query string: it may carry `_password` or `token`.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    problem = runtime.configuration_problem()
    if problem is not None:
        # 503 until a configuration is put (SPEC 6.1): the carrier posts the receipt again.
        logger.error("not configured", extra={"problem": problem})
        answer = HttpAnswer(503, problem, headers={"Retry-After": "60"})
        return {
            "statusCode": answer.status,
            "headers": {"Content-Type": answer.content_type, **answer.headers},
            "body": answer.body,
        }
    return app.resolve(event, context)
