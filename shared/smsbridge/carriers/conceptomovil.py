"""Concepto Móvil: JSON submission with a raw token; JSON receipts answered in plain text.

Wire formats: docs/carrier-protocols.md (submit) and SPEC 3.3 / seed bulk-api-dlr-webhook-es.txt
(receipts).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from smsbridge import dates
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

#: `statusDelivery` → canonical status (SPEC 2.2).
STATES: dict[str, Status] = {
    "DELIVERED": Status.DELIVERED,
    "REJECTED": Status.REJECTED,
    "UNDELIVERABLE": Status.UNDELIVERABLE,
    # The seed: "rechazado por el operador, se desconoce el código de error" (SPEC 2.2).
    "UNKNOWN": Status.REJECTED,
}
#: Description of an `UNKNOWN` receipt, which carries no error code of its own.
UNKNOWN_DESCRIPTION = "rejected by the operator, which gave no error code"

JSON = "application/json"


def normalise_id(raw: str) -> str:
    """Concepto Móvil ids are digits (sent as numbers or strings): trim white space and zeros."""
    value = raw.strip()
    if value.isascii() and value.isdigit():
        return value.lstrip("0") or "0"
    return value


# --- submission -------------------------------------------------------------------------------


def submit(
    session: requests.Session, carrier: CarrierConfig, submission: Submission
) -> SubmitResult:
    body = {
        "apiKey": carrier.api_key,
        "country": submission.country,
        "message": submission.text,
        "msisdns": [submission.to.removeprefix("+")],
        "tag": submission.reference,
        "dlr": True,
    }
    return post_submission(
        session,
        carrier,
        body=json.dumps(body).encode("utf-8"),
        headers={
            "Content-Type": JSON,
            "Accept": JSON,
            "Authorization": carrier.token,
        },
        accepted=_accepted,
        refused=_refused,
    )


def _id_text(value: Any) -> str:
    """A carrier id given as a JSON string or a non-negative integer, normalised ('' otherwise)."""
    if isinstance(value, str):
        return normalise_id(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return ""


def _message(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("message"), str):
        return " ".join(answer["message"].split())[:200]
    return ""


def _accepted(response: requests.Response) -> SubmitResult:
    answer = json.loads(response.content)
    if not isinstance(answer, dict):
        raise TransientSubmitError("the carrier's answer is not a JSON object")
    raw_state = answer.get("status")
    state = raw_state.strip() if isinstance(raw_state, str) and raw_state.strip() else "ok"
    if state.lower() == "error":
        raise PermanentSubmitError(
            _message(answer) or "refused by the carrier",
            gateway_status=state,
            gateway_error=str(response.status_code),
        )
    gateway_id = _id_text(answer.get("id"))
    if not gateway_id:
        raise TransientSubmitError("the carrier's answer carries no id")
    return SubmitResult(gateway_id=gateway_id, gateway_status=state)


def _refused(response: requests.Response) -> PermanentSubmitError:
    try:
        answer: Any = json.loads(response.content)
    except ValueError:
        answer = None
    state = answer.get("status") if isinstance(answer, dict) else None
    return PermanentSubmitError(
        _message(answer) or f"refused by the carrier (HTTP {response.status_code})",
        gateway_status=state if isinstance(state, str) else f"HTTP {response.status_code}",
        gateway_error=str(response.status_code),
    )


# --- receipts ---------------------------------------------------------------------------------


def read_receipts(request: HttpRequest, carrier: CarrierConfig) -> list[Receipt]:
    """Basic auth, then a JSON object or a list of objects; one bad item refuses them all."""
    basic = request.basic_auth()
    if not credentials_match(
        basic[0] if basic else None,
        basic[1] if basic else None,
        carrier.dlr_login,
        carrier.dlr_password,
    ):
        raise ReceiptAuthError("bad or missing Basic credentials")
    if request.content_type != JSON:
        raise UnsupportedMediaType(f"Content-Type must be {JSON}")
    try:
        document = json.loads(request.body)
    except (ValueError, RecursionError):
        raise MalformedReceipt("the body is not valid JSON") from None
    if isinstance(document, dict):
        return [_receipt(document, "")]
    if isinstance(document, list):
        if not document:
            raise MalformedReceipt("the list holds no receipts")
        return [_receipt(item, f"item {n}: ") for n, item in enumerate(document, 1)]
    raise MalformedReceipt("the body must be a JSON object or a list of objects")


def _epoch_ms(value: Any) -> datetime | None:
    """Epoch milliseconds (number or digit string) as an aware UTC datetime; None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        if len(value.strip().lstrip("0")) > len(str(dates.MAX_EPOCH_MS)):
            return None  # out of range, and int() refuses strings of over 4,300 digits
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None
    try:
        return dates.from_epoch_ms(value)
    except dates.DateError:
        return None


def _receipt(item: Any, where: str) -> Receipt:
    if not isinstance(item, dict):
        raise MalformedReceipt(f"{where}a receipt must be a JSON object")
    gateway_id = receipt_gateway_id(_id_text(item.get("messageId")), where)
    if not gateway_id:
        raise MalformedReceipt(f"{where}messageId is required (a string or a number)")
    raw_state = item.get("statusDelivery")
    if not isinstance(raw_state, str) or not raw_state.strip():
        raise MalformedReceipt(f"{where}statusDelivery is required")
    status = STATES.get(raw_state.strip().upper())
    if status is None:
        raise MalformedReceipt(
            f"{where}statusDelivery {raw_state[:40]!r} is not one of {', '.join(STATES)}"
        )
    sent = _epoch_ms(item.get("sendDate"))
    if sent is None:
        raise MalformedReceipt(f"{where}sendDate is required (epoch milliseconds)")
    done: datetime | None = None
    if item.get("doneDate") is not None:
        done = _epoch_ms(item["doneDate"])
        if done is None:
            raise MalformedReceipt(f"{where}doneDate must be epoch milliseconds")
    extra = {"send_date": sent.isoformat()}
    operator = item.get("carrier")
    missing: tuple[str, ...] = ()
    if isinstance(operator, str) and operator.strip():
        extra["carrier"] = operator.strip()
    else:
        # Required by the seed, but a carrier's omission must not lose a status.
        missing = ("carrier",)
    word = raw_state.strip()
    return Receipt(
        gateway_id=gateway_id,
        gateway_status=word,
        status=status,
        at=done,
        description=UNKNOWN_DESCRIPTION if word.upper() == "UNKNOWN" else "",
        extra=extra,
        missing_fields=missing,
    )


def answer_receipts(receipts: list[Receipt]) -> HttpAnswer:
    return HttpAnswer(status=200, body="OK")


def answer_error(error: ReceiptError) -> HttpAnswer:
    """Plain text, one line: the seed asks for text and the HTTP code (401 on bad credentials)."""
    return HttpAnswer(status=error.status_code, body=" ".join(error.detail.split()))
