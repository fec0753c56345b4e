"""Message intake: POST /ofsc (OFSC SOAP), POST /v1/messages, GET/DELETE /v1/messages/{id}, /health.

Thin: bound, authenticate and decode the request (`_admit`, the one place), parse, call the layer's
intake, answer at once.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.utilities.typing import LambdaContext

import smsbridge
from smsbridge import auth
from smsbridge.api_models import BatchIn, MessageIn, message_response
from smsbridge.config import ClientConfig
from smsbridge.intake import CallbackUrlRefused, CancelResult, Intake, message_id_problem
from smsbridge.ofsc_service import OfscService
from smsbridge.runtime import Runtime
from smsbridge.web import HttpAnswer, HttpRequest, UnreadableBody, json_text

logger = Logger(service="smsbridge")
runtime = Runtime.from_env()
app = APIGatewayHttpResolver(enable_validation=True)
app.enable_swagger(
    path="/v1/docs",
    title="smsbridge JSON API",
    version=smsbridge.__version__,
    description="Send SMS, read their status and history, cancel queued ones.",
)

JSON = "application/json"


def _intake() -> Intake:
    return Intake(runtime.tracker())


def _http_request() -> HttpRequest:
    event = app.current_event
    raw: bytes = app.context["raw_body"]
    return HttpRequest(
        method=event.request_context.http.method,
        path=event.raw_path,
        headers={key.lower(): value for key, value in (event.headers or {}).items()},
        body=raw,
    )


def _json_client() -> ClientConfig:
    """The client `lambda_handler` authenticated for this /v1 request."""
    client: ClientConfig = app.context["client"]
    return client


def _answer(answer: HttpAnswer) -> Response[Any]:
    return Response(answer.status, answer.content_type, answer.body, headers=answer.headers)


def _invalid(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON API's one 422 shape: where (`loc`), what kind (`type`) and why (`msg`)."""
    return {"statusCode": 422, "message": "invalid request", "detail": errors}


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def _validation_failed(error: RequestValidationError) -> Response[Any]:
    errors = [
        {"loc": list(e["loc"]), "type": e["type"], "msg": str(e.get("msg", ""))[:200]}
        for e in error.errors()
    ]
    return Response(422, JSON, _invalid(errors))


def _path_id(raw: str) -> str | Response[Any]:
    """A percent-decoded `{message_id}`, or the 422 for one that no message can have."""
    try:
        message_id = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        problem: str | None = "message_id is not percent-encoded UTF-8"
    else:
        problem = message_id_problem(message_id)
    if problem:
        error = {"loc": ["path", "message_id"], "type": "value_error", "msg": problem}
        return Response(422, JSON, _invalid([error]))
    return message_id


@app.get("/health", include_in_schema=False)
def health() -> dict[str, str]:
    return {"status": "ok", "version": smsbridge.__version__}


@app.get("/v1/docs.json", include_in_schema=False)
def openapi_document() -> Response[Any]:
    return Response(200, JSON, app.get_openapi_json_schema(title="smsbridge JSON API"))


@app.post("/ofsc", include_in_schema=False)
def ofsc_outbound() -> Response[Any]:
    service = OfscService(_intake(), runtime.clock)
    return _answer(service.handle(_http_request()))


@app.post("/v1/messages", summary="Send one message or a batch of up to 100")
def post_messages(payload: Annotated[MessageIn | BatchIn, Body()]) -> Response[Any]:
    client = _json_client()
    items = payload.messages if isinstance(payload, BatchIn) else [payload]
    intake = _intake()
    try:
        stored = intake.accept(client, [item.to_request() for item in items])
    except CallbackUrlRefused as refused:
        where: list[str | int] = ["body", "callback_url"]
        if isinstance(payload, BatchIn):
            where = ["body", "messages", refused.index, "callback_url"]
        detail = [{"loc": where, "msg": refused.reason, "type": "callback_url_refused"}]
        return Response(422, JSON, _invalid(detail))
    answers = [message_response(intake.outcome_of(message)) for message in stored]
    body: dict[str, Any] = {"messages": answers} if isinstance(payload, BatchIn) else answers[0]
    return Response(202, JSON, body)


@app.get("/v1/messages/<message_id>", summary="A message with its status history")
def get_message(message_id: Annotated[str, Path(min_length=1)]) -> Response[Any]:
    decoded = _path_id(message_id)
    if isinstance(decoded, Response):
        return decoded
    message = _intake().find(_json_client(), decoded)
    if message is None:
        return Response(404, JSON, {"message": "message not found"})
    return Response(200, JSON, message.public_view())


@app.delete("/v1/messages/<message_id>", summary="Cancel a message that is still queued")
def delete_message(message_id: Annotated[str, Path(min_length=1)]) -> Response[Any]:
    decoded = _path_id(message_id)
    if isinstance(decoded, Response):
        return decoded
    result, message = _intake().cancel(_json_client(), decoded)
    if result == CancelResult.NOT_FOUND or message is None:
        return Response(404, JSON, {"message": "message not found"})
    if result == CancelResult.UNDER_PROCESSING:
        return Response(
            409, JSON, {"message": "the message is under processing", "status": message.status}
        )
    return Response(200, JSON, message.public_view())


def _unauthenticated(event: dict[str, Any]) -> dict[str, Any] | None:
    """401 for the JSON API before its body is validated, so a caller without credentials
    learns nothing about the request; the client found is kept for the route."""
    if not str(event.get("rawPath", "")).startswith("/v1/messages"):
        return None
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    request = HttpRequest(method="", path="", headers=headers)
    client = auth.json_client_of(request, runtime.config().clients.values())
    if client is not None:
        app.append_context(client=client)  # type: ignore[no-untyped-call]
        return None
    return {
        "statusCode": 401,
        "headers": {
            "Content-Type": JSON,
            "WWW-Authenticate": 'Bearer realm="smsbridge", Basic realm="smsbridge"',
        },
        "body": '{"message":"missing or wrong credentials"}',
    }


def _refusal(event: dict[str, Any], status: int, reason: str) -> dict[str, Any]:
    """An early answer in the route's own format: a SOAP Client fault or the JSON API's shape."""
    if event.get("rawPath") == "/ofsc":
        from smsbridge import ofsc

        text, content_type = ofsc.fault("Client", reason), "text/xml; charset=utf-8"
    elif status == 422:
        error = {"loc": ["body"], "type": "json_invalid", "msg": reason}
        text, content_type = json.dumps(_invalid([error])), JSON
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


@logger.inject_lambda_context(clear_state=True)
@runtime.publishes_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app.clear_context()  # type: ignore[no-untyped-call]
    try:
        early = _admit(event)
        if early is not None:
            return early
        return app.resolve(event, context)
    except Exception:
        logger.exception("unhandled error")
        if event.get("rawPath") == "/ofsc":
            from smsbridge import ofsc

            text, content_type = ofsc.fault("Server", "internal error"), "text/xml"
        else:
            text, content_type = '{"message":"internal error"}', JSON
        return {"statusCode": 500, "headers": {"Content-Type": content_type}, "body": text}
