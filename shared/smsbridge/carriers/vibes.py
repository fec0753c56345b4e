"""Vibes: XML `mtMessage` submission; `mtMessageResponse` receipts answered with an empty 200.

Wire formats: docs/carrier-protocols.md (submit) and SPEC 3.3 / seed vibes-alternate-delivery.txt
(receipts). Vibes cannot send Basic auth on MT callbacks, so receipts may carry `?token=` instead.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree.ElementTree import Element

from smsbridge import dates, safexml
from smsbridge.auth import credentials_match, equals
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

#: `<type>` of a receipt whose `<status isError="false">` → canonical status (SPEC 2.2). The
#: seed: with final-only receipts Vibes calls back only when a message "succeeds or fails", and
#: its example of that call is `Carrier` / `Success`, so a carrier's success is delivery.
STATES: dict[str, Status] = {
    "Handset": Status.DELIVERED,
    "Carrier": Status.DELIVERED,
    "System": Status.ENROUTE,
    # The original's status once Vibes created an alternate for it (seed): not its end.
    "Forwarded": Status.ENROUTE,
}
FORWARDED = "Forwarded"
#: Any `isError="true"` receipt ...
ERROR_STATUS = Status.UNDELIVERABLE
#: ... except those whose `internalErrorCode` says the message was refused.
REFUSED_INTERNAL_CODES = frozenset({7, 9, 12})

XML_TYPES = frozenset({"application/xml", "text/xml", ""})
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_TYPES_BY_LOWER = {word.lower(): word for word in STATES}


def normalise_id(raw: str) -> str:
    """Vibes ids are UUIDs: trim white space and lower-case."""
    return raw.strip().lower()


# --- submission -------------------------------------------------------------------------------


def submit(
    session: requests.Session, carrier: CarrierConfig, submission: Submission
) -> SubmitResult:
    return post_submission(
        session,
        carrier,
        body=build_mt_message(carrier, submission),
        headers={"Content-Type": "application/xml", "Accept": "application/xml"},
        auth=(carrier.username, carrier.password),
        accepted=_accepted,
        refused=_refused,
    )


def build_mt_message(carrier: CarrierConfig, submission: Submission) -> bytes:
    """The `mtMessage` document; `submitterMessageId` is the reference key, equal on every try."""
    root = ET.Element(
        "mtMessage",
        {
            "submitterMessageId": submission.reference,
            "alternateDelivery": "true" if submission.alternate_delivery else "false",
        },
    )
    ET.SubElement(root, "destination", {"address": submission.to, "type": "MDN"})
    ET.SubElement(
        root,
        "source",
        {"address": submission.sender or carrier.sender, "type": carrier.sender_type},
    )
    ET.SubElement(root, "text").text = submission.text
    callback = callback_url(submission.receipt_url, carrier)
    if callback:
        ET.SubElement(root, "receiptOption", {"callbackUrl": callback}).text = "ALL"
    document: bytes = ET.tostring(root, encoding="utf-8")
    return _DECLARATION + document


def callback_url(receipt_url: str, carrier: CarrierConfig) -> str:
    """`receipt_url` with `token=<dlr_password>` added unless it already carries a token."""
    if not receipt_url or not carrier.dlr_password:
        return receipt_url
    parts = urlsplit(receipt_url)
    if any(name == "token" for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return receipt_url
    token = urlencode({"token": carrier.dlr_password})
    query = f"{parts.query}&{token}" if parts.query else token
    return urlunsplit(parts._replace(query=query))


def _find_error(root: Element) -> Element | None:
    return next((item for item in root.iter() if safexml.local_name(item) == "error"), None)


def _error(element: Element, http_status: int) -> PermanentSubmitError:
    code = (element.get("code") or "").strip()
    description = (element.get("description") or element.text or "").strip()
    return PermanentSubmitError(
        " ".join(description.split())[:200] or f"refused by the carrier (HTTP {http_status})",
        gateway_status=f"HTTP {http_status}",
        gateway_error=code or str(http_status),
    )


def _accepted(response: requests.Response) -> SubmitResult:
    root = safexml.parse(response.content)
    error = _find_error(root)
    if error is not None:
        raise _error(error, response.status_code)
    gateway_id = normalise_id(root.get("messageId") or "")
    if safexml.local_name(root) != "mtMessageRsp" or not gateway_id:
        raise TransientSubmitError("the carrier's answer is not an mtMessageRsp with a messageId")
    return SubmitResult(gateway_id=gateway_id, gateway_status="accepted")


def _refused(response: requests.Response) -> PermanentSubmitError:
    try:
        error = _find_error(safexml.parse(response.content))
    except safexml.UnsafeOrMalformedXml:
        error = None
    if error is None:
        return PermanentSubmitError(
            f"refused by the carrier (HTTP {response.status_code})",
            gateway_status=f"HTTP {response.status_code}",
            gateway_error=str(response.status_code),
        )
    return _error(error, response.status_code)


# --- receipts ---------------------------------------------------------------------------------


def read_receipts(request: HttpRequest, carrier: CarrierConfig) -> list[Receipt]:
    """Basic auth or `?token=`; then one `mtMessageResponse` document."""
    basic = request.basic_auth()
    token = next((value for name, value in request.query if name == "token"), None)
    by_basic = credentials_match(
        basic[0] if basic else None,
        basic[1] if basic else None,
        carrier.dlr_login,
        carrier.dlr_password,
    )
    by_token = equals(token, carrier.dlr_password)
    if not (by_basic | by_token):
        raise ReceiptAuthError("bad or missing credentials (Basic or token)")
    if request.content_type not in XML_TYPES:
        raise UnsupportedMediaType("Content-Type must be application/xml or text/xml")
    if not request.body.strip():
        raise MalformedReceipt("the body is empty")
    try:
        root = safexml.parse(request.body)
    except safexml.UnsafeOrMalformedXml as exc:
        raise MalformedReceipt(" ".join(str(exc).split())[:200] or "malformed XML") from None
    return [parse_receipt(root)]


def _attribute(root: Element, *names: str) -> str:
    for name in names:
        value = (root.get(name) or "").strip()
        if value:
            return value
    return ""


def _receipt_date(raw: str) -> datetime | None:
    """ISO 8601 as UTC; None when unreadable or out of range (the raw text is kept instead)."""
    try:
        return dates.parse_iso(raw)
    except dates.DateError:
        return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_receipt(root: Element) -> Receipt:
    """One `mtMessageResponse`; MalformedReceipt names what is missing or wrong."""
    if safexml.local_name(root) != "mtMessageResponse":
        raise MalformedReceipt(f"expected mtMessageResponse, got {safexml.local_name(root)[:40]}")
    gateway_id = receipt_gateway_id(normalise_id(root.get("messageId") or ""))
    if not gateway_id:
        raise MalformedReceipt("messageId is required")
    type_word = safexml.text_of(root, "type") or ""
    if not type_word:
        raise MalformedReceipt("type is required")
    status_element = safexml.child(root, "status")
    if status_element is None:
        raise MalformedReceipt("status is required")
    is_error = (status_element.get("isError") or "").strip().lower()
    if is_error not in ("true", "false"):
        raise MalformedReceipt("status isError must be true or false")
    error_code = safexml.text_of(status_element, "errorCode") or ""
    internal_code = safexml.text_of(status_element, "internalErrorCode") or ""

    known_type = _TYPES_BY_LOWER.get(type_word.lower())
    if is_error == "true":
        refused = _int(internal_code) in REFUSED_INTERNAL_CODES
        status = Status.REJECTED if refused else ERROR_STATUS
    else:
        if known_type is None:
            raise MalformedReceipt(f"type {type_word[:40]!r} is not one of {', '.join(STATES)}")
        status = STATES[known_type]

    extra: dict[str, str] = {}
    submitter = _attribute(root, "submitterMessageId")
    if submitter:
        extra["submitter_message_id"] = submitter
    raw_date = _attribute(root, "receiptDate")
    at = _receipt_date(raw_date) if raw_date else None
    if raw_date and at is None:
        extra["receipt_date"] = raw_date[:64]
    description = safexml.text_of(status_element, "description") or ""
    # The seed's prose also calls these forwardedMessageId / originalMessageId.
    forwarded_to = receipt_gateway_id(
        normalise_id(_attribute(root, "fwdToMessageId", "forwardedMessageId"))
    )
    forwarded_from = receipt_gateway_id(
        normalise_id(_attribute(root, "fwdFromMessageId", "originalMessageId"))
    )
    gateway_status = type_word
    if forwarded_to or known_type == FORWARDED:
        # Vibes carries the failed message on by itself (status `Forwarded`): the message is
        # not at its end, the alternate's receipts settle it.
        status = Status.ENROUTE
        gateway_status = FORWARDED
        note = f"forwarded by the carrier to {forwarded_to}" if forwarded_to else "forwarded"
        description = f"{description}; {note}" if description else note
    return Receipt(
        gateway_id=gateway_id,
        gateway_status=gateway_status,
        status=status,
        at=at,
        gateway_error="/".join(code for code in (error_code, internal_code) if code),
        description=description,
        forwarded_to=forwarded_to,
        forwarded_from=forwarded_from,
        extra=extra,
    )


def answer_receipts(receipts: list[Receipt]) -> HttpAnswer:
    return HttpAnswer(status=200, body="")


def answer_error(error: ReceiptError) -> HttpAnswer:
    return HttpAnswer(status=error.status_code, body=" ".join(error.detail.split()))
