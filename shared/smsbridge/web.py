"""A neutral HTTP request/answer pair: protocol modules never see API Gateway's event shape."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

#: JSON bodies nested deeper than this are refused before any parser sees them (a request of the
#: JSON API is three levels deep; Python's json module recurses once per level).
MAX_JSON_DEPTH = 32

#: Numbers with more digits are refused too (Python's int() raises past 4,300).
MAX_JSON_DIGITS = 100

_LONG_NUMBER = re.compile(rf"[0-9]{{{MAX_JSON_DIGITS + 1},}}")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class UnreadableBody(ValueError):
    """A body that is not text in the expected encoding, or nested too deep to parse safely."""


def json_text(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> str:
    """The body of a JSON request as text: UTF-8 (strict) and at most `max_depth` levels deep."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableBody("the body is not UTF-8 text") from None
    if json_depth_over(text, max_depth):
        raise UnreadableBody(f"the JSON is nested deeper than {max_depth} levels")
    if _LONG_NUMBER.search(_JSON_STRING.sub('""', text)):
        # Python's int() refuses over 4,300 digits; no field of ours needs more than a few.
        raise UnreadableBody(f"the JSON has a number of more than {MAX_JSON_DIGITS} digits")
    return text


def json_depth_over(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (no parser, no recursion)."""
    depth = 0
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return True
    return False


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    #: Header names in lower case.
    headers: dict[str, str] = field(default_factory=dict)
    #: Query parameters in the order they came, repeated names kept.
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case ('' when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def form(self) -> list[tuple[str, str]]:
        """The body read as application/x-www-form-urlencoded, in order."""
        return parse_qsl(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)

    def basic_auth(self) -> tuple[str, str] | None:
        """(login, password) of an `Authorization: Basic` header; None when absent or malformed."""
        value = self.headers.get("authorization", "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        login, sep, password = decoded.partition(":")
        return (login, password) if sep else None

    def bearer_token(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def invalid_request(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON API's one 422 body: where (`loc`), what kind (`type`) and why (`msg`)."""
    return {"statusCode": 422, "message": "invalid request", "detail": errors}
