"""The JSON API's request and answer shapes (pydantic; only the intake handler imports this)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from smsbridge.intake import (
    MESSAGE_ID_MAX,
    MessageRequest,
    message_id_problem,
    refused_char,
    text_problem,
)
from smsbridge.models import Message, Origin
from smsbridge.originator import view_of

MAX_BATCH = 100

#: The shape only; `smsbridge.callback_urls` decides whether the address may be called.
CallbackUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]


class MessageIn(BaseModel):
    """One message to send."""

    model_config = ConfigDict(extra="forbid")

    message_id: str | None = Field(
        None,
        min_length=1,
        max_length=MESSAGE_ID_MAX,
        description=(
            "Your id of the message (idempotency key): 1 to 64 characters, no control characters,"
            " no white space at either end."
        ),
    )
    to: str = Field(min_length=1, max_length=32, description="E.164, or national with country.")
    country: str | None = Field(None, min_length=2, max_length=2, description="ISO 3166 region.")
    text: str = Field(max_length=4000)
    type: Literal["verification", "medication_request", "text", "2FA"] = "text"
    sender: str | None = Field(None, min_length=1, max_length=16)
    alternate_delivery: bool = False
    callback_url: CallbackUrl | None = Field(
        None,
        description=(
            "Where status callbacks go: https, a public address (422 otherwise). Each callback "
            "is signed: X-Smsbridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
            '"<t>.<X-Smsbridge-Event-Id>.<raw body>">.'
        ),
    )
    callback_events: Literal["final", "all"] = Field(
        "final", description="final: the final outcome only; all: every status change."
    )
    validity_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)

    @field_validator("message_id")
    @classmethod
    def _usable_id(cls, value: str | None) -> str | None:
        problem = message_id_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("text")
    @classmethod
    def _sendable_text(cls, value: str) -> str:
        problem = text_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("to", "country", "sender", "callback_url")
    @classmethod
    def _no_controls(cls, value: str | None) -> str | None:
        """Lone surrogates and control characters cannot be stored or sent."""
        if value is not None and refused_char(value) is not None:
            raise ValueError("contains a control character")
        return value

    def to_request(self) -> MessageRequest:
        return MessageRequest(
            to=self.to,
            text=self.text,
            message_id=self.message_id,
            type=self.type,
            sender=self.sender,
            country=self.country,
            alternate_delivery=self.alternate_delivery,
            callback_url=self.callback_url or "",
            callback_events=self.callback_events,
            validity_minutes=self.validity_minutes,
            origin=Origin(kind="json"),
        )


class BatchIn(BaseModel):
    """Up to 100 messages in one request."""

    model_config = ConfigDict(extra="forbid")

    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)


def message_response(message: Message) -> dict[str, Any]:
    """The `message_response` fields, as JSON: `message` is the originator's outcome (the
    alternate of a forwarded message), read through `smsbridge.originator`."""
    view = view_of(message)
    answer: dict[str, Any] = {
        "message_id": view.message_id,
        "status": view.word,
        "external_id": view.external_id,
    }
    if view.shows_description:
        answer["description"] = view.description
    if view.stop_further_attempts:
        answer["stop_further_attempts"] = 1
    return answer
