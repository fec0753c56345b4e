"""Message intake: POST /ofsc (OFSC SOAP), POST /v1/messages, GET/DELETE /v1/messages/{id}, /health.

Thin: bound, authenticate and decode the request (`_admit`, the one place), parse, call the layer's
intake, answer at once.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

import smsbridge
from smsbridge import auth
from smsbridge.intake import Intake
from smsbridge.ofsc_service import OfscService
from smsbridge.runtime import Runtime
from smsbridge.web import HttpRequest, UnreadableBody, invalid_request, json_text

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()
app = APIGatewayHttpResolver()

JSON = "application/json"


def _intake() -> Intake:
    return Intake(runtime.tracker())


@functools.cache
def _include_json_api() -> None:
    """The JSON API's routes and models, on the first /v1 request only."""
    from smsbridge import json_api

    app.include_router(json_api.build_router())


@functools.cache
def _include_docs() -> None:
    """The Swagger UI route, on the first /v1/docs request only: Powertools' OpenAPI document
    models cost a first JSON API answer more than the cold-start floor's import."""
    _include_json_api()
    app.enable_swagger(
        path="/v1/docs",
        title="smsbridge JSON API",
        version=smsbridge.__version__,
        description="Send SMS, read their status and history, cancel queued ones.",
    )


# --- the error map: every error a route raises, answered in the route's own format ----------


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def _validation_failed(error: RequestValidationError) -> Response[Any]:
    errors = [
        {"loc": list(e["loc"]), "type": e["type"], "msg": str(e.get("msg", ""))[:200]}
        for e in error.errors()
    ]
    return Response(422, JSON, invalid_request(errors))


@app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
def _unsupported_content_type(error: RequestUnsupportedContentType) -> Response[Any]:
    errors = [{"loc": e["loc"], "type": e["type"]} for e in error.errors()]
    return Response(415, JSON, {"statusCode": 415, "detail": errors})


@app.exception_handler(ServiceError)  # type: ignore[untyped-decorator]
def _service_error(error: ServiceError) -> Response[Any]:
    """The resolver's own answers (404 for an unknown route) keep their shape."""
    status = error.status_code
    return Response(status, JSON, {"statusCode": status, "message": error.msg})


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _internal_error(error: Exception) -> Response[Any]:
    """Anything unexpected: logged, answered 500 in the route's format, never a stack trace."""
    logger.exception("unhandled error")
    if app.current_event.raw_path == "/ofsc":
        from smsbridge import ofsc

        return Response(500, "text/xml", ofsc.fault("Server", "internal error"))
    return Response(500, JSON, {"message": "internal error"})


# --- routes -----------------------------------------------------------------------------------


@app.get("/health", include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok", "version": smsbridge.__version__}


@app.get("/v1/docs.json", include_in_schema=False)
def openapi_document() -> Response[Any]:
    return Response(200, JSON, app.get_openapi_json_schema(title="smsbridge JSON API"))


@app.post("/ofsc", include_in_schema=False)
def ofsc_outbound() -> Response[Any]:
    event = app.current_event
    request = HttpRequest(
        method=event.request_context.http.method,
        path=event.raw_path,
        headers={key.lower(): value for key, value in (event.headers or {}).items()},
        body=app.context["raw_body"],
    )
    answer = OfscService(_intake(), runtime.clock).handle(request)
    return Response(answer.status, answer.content_type, answer.body, headers=answer.headers)


# --- the one pre-check, before any route parses the body -------------------------------------


def _unauthenticated(event: dict[str, Any]) -> dict[str, Any] | None:
    """401 for the JSON API before its body is validated, so a caller without credentials
    learns nothing about the request; the client found is kept for the route."""
    if not str(event.get("rawPath", "")).startswith("/v1/messages"):
        return None
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    request = HttpRequest(method="", path="", headers=headers)
    client = auth.json_client_of(request, runtime.config().clients.values(), ("json", "support"))
    if client is not None and client.kind == "support" and event_method(event) != "GET":
        # Support staff read (search function); they never send, cancel or change (SPEC 3.4).
        return {
            "statusCode": 403,
            "headers": {"Content-Type": JSON},
            "body": '{"message":"support clients are read-only"}',
        }
    if client is not None:
        app.append_context(client=client, intake=_intake)  # type: ignore[no-untyped-call]
        return None
    return {
        "statusCode": 401,
        "headers": {
            "Content-Type": JSON,
            "WWW-Authenticate": 'Bearer realm="smsbridge", Basic realm="smsbridge"',
        },
        "body": '{"message":"missing or wrong credentials"}',
    }


def event_method(event: dict[str, Any]) -> str:
    return str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper()


def _refusal(event: dict[str, Any], status: int, reason: str) -> dict[str, Any]:
    """An early answer in the route's own format: a SOAP Client fault or the JSON API's shape."""
    if event.get("rawPath") == "/ofsc":
        from smsbridge import ofsc

        text, content_type = ofsc.fault("Client", reason), "text/xml; charset=utf-8"
    elif status == 422:
        error = {"loc": ["body"], "type": "json_invalid", "msg": reason}
        text, content_type = json.dumps(invalid_request([error])), JSON
    else:
        text, content_type = json.dumps({"message": reason}), JSON
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "body": text}


def _admit(event: dict[str, Any]) -> dict[str, Any] | None:
    """The one place that bounds, authenticates and decodes a request, before any parsing.

    The body's bytes are kept for /ofsc, whose XML declaration names its encoding; a JSON body
    must be UTF-8 and shallow, and is handed on as text. None: the request goes to its route.
    """
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else None
    except (binascii.Error, ValueError):
        return _refusal(event, 400, "the body is not valid base64")
    size = len(raw) if raw is not None else len(body.encode("utf-8", "surrogatepass"))
    limit = runtime.settings.max_body_bytes
    if size > limit:
        return _refusal(event, 413, f"request body over {limit} bytes")
    unauthenticated = _unauthenticated(event)
    if unauthenticated is not None:
        return unauthenticated
    if raw is None:
        raw = body.encode("utf-8", "surrogatepass")
    app.append_context(raw_body=raw)  # type: ignore[no-untyped-call]
    if str(event.get("rawPath", "")).startswith("/v1/") and raw:
        try:
            event["body"], event["isBase64Encoded"] = json_text(raw), False
        except UnreadableBody as exc:
            return _refusal(event, 422, str(exc))
        # The JSON API reads JSON whatever the declared type (curl -d says form-urlencoded);
        # the resolver would otherwise parse form and multipart bodies on its own.
        headers = event.get("headers") or {}
        event["headers"] = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        event["headers"]["content-type"] = JSON
    return None


def _not_configured(event: dict[str, Any]) -> dict[str, Any] | None:
    """503 on every route, in the route's format, until a configuration is put (SPEC 6.1)."""
    problem = runtime.configuration_problem()
    if problem is None:
        return None
    logger.error("not configured", extra={"problem": problem})
    if event.get("rawPath") == "/ofsc":
        from smsbridge import ofsc

        text, content_type = ofsc.fault("Server", problem), "text/xml; charset=utf-8"
    else:
        text, content_type = json.dumps({"message": problem}), JSON
    headers = {"Content-Type": content_type, "Retry-After": "60"}
    return {"statusCode": 503, "headers": headers, "body": text}


@logger.inject_lambda_context(clear_state=True)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app.clear_context()  # type: ignore[no-untyped-call]
    unavailable = _not_configured(event)
    if unavailable is not None:
        return unavailable
    path = str(event.get("rawPath", ""))
    if path.startswith("/v1/docs"):
        _include_docs()
    elif path.startswith("/v1/"):
        _include_json_api()
    return _admit(event) or app.resolve(event, context)
