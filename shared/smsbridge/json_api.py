"""The JSON API's routes (`/v1/messages...`), with pydantic validation and their OpenAPI schema.

The intake handler includes this router on the first /v1 request only: pydantic, the models and
Powertools' OpenAPI machinery are not imported on a cold start that serves /ofsc or /health.
The handler puts the authenticated client (`client`) and an `Intake` factory (`intake`) in the
resolver's context before a route runs. Each resolver gets a router of its own (`build_router`):
a router reads the context of the resolver that included it last, so sharing one module-level
router between resolvers (several execution environments in one process, as the local stack
runs them) would read another invocation's client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from smsbridge.api_models import BatchIn, MessageIn, message_response
from smsbridge.config import ClientConfig
from smsbridge.intake import CallbackUrlRefused, CancelResult, Intake, message_id_problem
from smsbridge.limits import LimitRefusal
from smsbridge.web import invalid_request

JSON = "application/json"


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
        return Response(422, JSON, invalid_request([error]))
    return message_id


def _limit_error(refusal: LimitRefusal) -> dict[str, Any]:
    """The 429 body of SPEC 3.5, with the `message` every JSON error of the API carries."""
    return {
        "error": "limit_exceeded",
        "limit": refusal.limit,
        "retry_after": refusal.retry_after,
        "message": refusal.description,
    }


def _refused_response(refusal: LimitRefusal) -> dict[str, Any]:
    """A batch's entry for a message over a limit: failed, nothing stored, try again later."""
    return {
        "message_id": refusal.message_id,
        "status": "failed",
        "description": refusal.description,
        "error": "limit_exceeded",
        "limit": refusal.limit,
        "retry_after": refusal.retry_after,
    }


def build_router() -> Router:
    """The JSON API's routes on a router of their own, for one resolver."""
    router = Router()  # type: ignore[no-untyped-call]

    def _intake() -> Intake:
        factory: Callable[[], Intake] = router.context["intake"]
        return factory()

    def _client() -> ClientConfig:
        """The client the handler authenticated for this request."""
        client: ClientConfig = router.context["client"]
        return client

    @router.post(
        "/v1/messages", summary="Send one message or a batch of up to 100", enable_validation=True
    )
    def post_messages(payload: Annotated[MessageIn | BatchIn, Body()]) -> Response[Any]:
        client = _client()
        items = payload.messages if isinstance(payload, BatchIn) else [payload]
        intake = _intake()
        try:
            stored = intake.accept(client, [item.to_request() for item in items])
        except CallbackUrlRefused as refused:
            where: list[str | int] = ["body", "callback_url"]
            if isinstance(payload, BatchIn):
                where = ["body", "messages", refused.index, "callback_url"]
            detail = [{"loc": where, "msg": refused.reason, "type": "callback_url_refused"}]
            return Response(422, JSON, invalid_request(detail))
        if not isinstance(payload, BatchIn) and isinstance(stored[0], LimitRefusal):
            refusal = stored[0]
            return Response(
                429,
                JSON,
                _limit_error(refusal),
                headers={"Retry-After": str(refusal.retry_after)},
            )
        answers = [
            _refused_response(message)
            if isinstance(message, LimitRefusal)
            else message_response(intake.outcome_of(message))
            for message in stored
        ]
        body: dict[str, Any] = {"messages": answers} if isinstance(payload, BatchIn) else answers[0]
        return Response(202, JSON, body)

    @router.get(
        "/v1/messages/<message_id>",
        summary="A message with its status history",
        enable_validation=True,
    )
    def get_message(message_id: Annotated[str, Path(min_length=1)]) -> Response[Any]:
        decoded = _path_id(message_id)
        if isinstance(decoded, Response):
            return decoded
        message = _intake().find(_client(), decoded)
        if message is None:
            return Response(404, JSON, {"message": "message not found"})
        return Response(200, JSON, message.public_view())

    @router.delete(
        "/v1/messages/<message_id>",
        summary="Cancel a message that is still queued",
        enable_validation=True,
    )
    def delete_message(message_id: Annotated[str, Path(min_length=1)]) -> Response[Any]:
        decoded = _path_id(message_id)
        if isinstance(decoded, Response):
            return decoded
        result, message = _intake().cancel(_client(), decoded)
        if result == CancelResult.NOT_FOUND or message is None:
            return Response(404, JSON, {"message": "message not found"})
        if result == CancelResult.UNDER_PROCESSING:
            return Response(
                409, JSON, {"message": "the message is under processing", "status": message.status}
            )
        return Response(200, JSON, message.public_view())

    return router
