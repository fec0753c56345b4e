"""Smartswitch: JSON submission; delivery receipts as query/form parameters, answered in JSON:API.

Wire formats: docs/carrier-protocols.md (submit) and SPEC 3.3 / seed smartswitch-http-api-dlr.txt
(receipts).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from smsbridge.auth import credentials_match
from smsbridge.carriers.base import (
    MalformedReceipt,
    PermanentSubmitError,
    Receipt,
    ReceiptAuthError,
    ReceiptError,
    Submission,
    SubmitResult,
    TransientSubmitError,
    UnsupportedMediaType,
    post_submission,
    receipt_gateway_id,
)
from smsbridge.config import CarrierConfig
from smsbridge.statuses import Status
from smsbridge.web import HttpAnswer, HttpRequest

if TYPE_CHECKING:
    import requests

#: `message_state` (lower case) → canonical status (SPEC 2.2).
STATES: dict[str, Status] = {
    "accepted": Status.SUBMITTED,
    "enroute": Status.ENROUTE,
    "delivered": Status.DELIVERED,
    "expired": Status.EXPIRED,
    "undeliverable": Status.UNDELIVERABLE,
    "rejected": Status.REJECTED,
    "unknown": Status.UNKNOWN,
}

JSON_API = "application/vnd.api+json"
FORM = "application/x-www-form-urlencoded"
#: The seed's wording for a failed login.
AUTH_DETAIL = "Please check your login and password"
_GROUP_FIELDS = ("message_state", "request_id")


def normalise_id(raw: str) -> str:
    """Smartswitch ids are decimal digit strings: trim white space and leading zeros."""
    value = raw.strip()
    if value.isascii() and value.isdigit():
        return value.lstrip("0") or "0"
    return value


# --- submission -------------------------------------------------------------------------------


def submit(
    session: requests.Session, carrier: CarrierConfig, submission: Submission
) -> SubmitResult:
    body = {
        "to": submission.to,
        "from": submission.sender or carrier.sender,
        "text": submission.text,
        "message_id": submission.reference,
    }
    return post_submission(
        session,
        carrier,
        body=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        auth=(carrier.username, carrier.password),
        accepted=_accepted,
        refused=_refused,
    )


def _id_text(value: Any) -> str:
    if isinstance(value, str):
        return normalise_id(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return ""


def _first_error(answer: Any) -> dict[str, Any]:
    if isinstance(answer, dict):
        errors = answer.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return errors[0]
    return {}


def _error(answer: Any, http_status: int) -> PermanentSubmitError:
    first = _first_error(answer)
    code = first.get("code")
    detail = first.get("detail") or first.get("title")
    return PermanentSubmitError(
        _one_line(str(detail)) if detail else f"refused by the carrier (HTTP {http_status})",
        gateway_status=f"HTTP {http_status}",
        gateway_error=str(code) if code else str(http_status),
    )


def _accepted(response: requests.Response) -> SubmitResult:
    answer = json.loads(response.content)
    if not isinstance(answer, dict):
        raise TransientSubmitError("the carrier's answer is not a JSON object")
    if answer.get("errors"):
        raise _error(answer, response.status_code)
    raw_state = answer.get("status")
    state = raw_state.strip() if isinstance(raw_state, str) and raw_state.strip() else "accepted"
    status = STATES.get(state.lower(), Status.SUBMITTED)
    if status.is_final and status != Status.DELIVERED:
        raise PermanentSubmitError(
            f"the carrier answered {state}", gateway_status=state, status=status
        )
    gateway_id = _id_text(answer.get("message_id"))
    if not gateway_id:
        raise TransientSubmitError("the carrier's answer carries no message_id")
    return SubmitResult(gateway_id=gateway_id, gateway_status=state, status=status)


def _refused(response: requests.Response) -> PermanentSubmitError:
    try:
        answer: Any = json.loads(response.content)
    except ValueError:
        answer = None
    return _error(answer, response.status_code)


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


# --- receipts ---------------------------------------------------------------------------------


def read_receipts(request: HttpRequest, carrier: CarrierConfig) -> list[Receipt]:
    """Parameters come from the query string, then from a form body, in order."""
    params = list(request.query)
    foreign_body = False
    if request.body.strip():
        # A body without a content type is read as a form, as most HTTP clients send one.
        if request.content_type in (FORM, ""):
            params.extend(request.form())
        else:
            foreign_body = True
    _authenticate(request, params, carrier)
    if foreign_body:
        raise UnsupportedMediaType(f"the body must be {FORM}")
    return _receipts(params)


def _first(params: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in params if key == name), None)


def _authenticate(
    request: HttpRequest, params: list[tuple[str, str]], carrier: CarrierConfig
) -> None:
    """`_login`/`_password` or Basic; both are always checked so the timing tells nothing."""
    basic = request.basic_auth()
    by_params = credentials_match(
        _first(params, "_login"),
        _first(params, "_password"),
        carrier.dlr_login,
        carrier.dlr_password,
    )
    by_basic = credentials_match(
        basic[0] if basic else None,
        basic[1] if basic else None,
        carrier.dlr_login,
        carrier.dlr_password,
    )
    if not (by_params | by_basic):
        raise ReceiptAuthError(AUTH_DETAIL)


def _receipts(params: list[tuple[str, str]]) -> list[Receipt]:
    """Each `message_id` starts a group; any malformed group refuses the whole request."""
    groups: list[dict[str, str]] = []
    for name, value in params:
        if name == "message_id":
            groups.append({"message_id": value})
        elif name in _GROUP_FIELDS:
            if not groups:
                raise MalformedReceipt(f"group 1: {name} comes before any message_id")
            if name in groups[-1]:
                raise MalformedReceipt(f"group {len(groups)}: {name} is given twice")
            groups[-1][name] = value
    if not groups:
        raise MalformedReceipt("message_id is required")
    return [_receipt(number, group) for number, group in enumerate(groups, 1)]


def _receipt(number: int, group: dict[str, str]) -> Receipt:
    gateway_id = receipt_gateway_id(normalise_id(group["message_id"]), f"group {number}: ")
    if not gateway_id:
        raise MalformedReceipt(f"group {number}: message_id is empty")
    state = group.get("message_state")
    if state is None or not state.strip():
        raise MalformedReceipt(f"group {number}: message_state is missing")
    status = STATES.get(state.strip().lower())
    if status is None:
        raise MalformedReceipt(
            f"group {number}: message_state {state[:40]!r} is not one of {', '.join(STATES)}"
        )
    return Receipt(
        gateway_id=gateway_id,
        gateway_status=state.strip(),
        status=status,
        request_id=group.get("request_id"),
    )


def answer_receipts(receipts: list[Receipt]) -> HttpAnswer:
    """JSON:API `data`: an object for one receipt, a list for several, in request order."""
    items = [_data_item(receipt) for receipt in receipts]
    data: dict[str, Any] | list[dict[str, Any]] = items[0] if len(items) == 1 else items
    return HttpAnswer(status=200, body=json.dumps({"data": data}), content_type=JSON_API)


def _data_item(receipt: Receipt) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "type": "dlr",
        "attributes": {"status": "ok"},
    }
    if receipt.request_id is not None:
        item["meta"] = {"request_id": receipt.request_id}
    return item


def answer_error(error: ReceiptError) -> HttpAnswer:
    """JSON:API `errors`, never together with `data`."""
    document = {"errors": [{"code": error.code, "title": error.title, "detail": error.detail}]}
    return HttpAnswer(status=error.status_code, body=json.dumps(document), content_type=JSON_API)
