"""IP2SMS: XML `<message>` submission and `<request id="..">status</request>` polling.

Wire formats: docs/carrier-protocols.md and seed ehealth-sms-status-log.txt. The carrier posts no
receipts; `read_receipts` accepts its `<status>` document anyway (Basic auth with the DLR
credentials), so the format is complete on both sides.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from smsbridge import dates, safexml
from smsbridge.auth import credentials_match
from smsbridge.carriers.base import (
    MalformedReceipt,
    PermanentSubmitError,
    PollError,
    Receipt,
    ReceiptAuthError,
    ReceiptError,
    Submission,
    SubmitResult,
    TransientSubmitError,
    UnsupportedMediaType,
    post_submission,
)
from smsbridge.config import CarrierConfig
from smsbridge.statuses import Status
from smsbridge.web import HttpAnswer, HttpRequest

if TYPE_CHECKING:
    import requests

#: IP2SMS state → canonical status (SPEC 2.2).
STATES: dict[str, Status] = {
    "Accepted": Status.SUBMITTED,
    "Pending": Status.SUBMITTED,
    "Enroute": Status.ENROUTE,
    "Unknown": Status.UNKNOWN,
    "Delivered": Status.DELIVERED,
    "Expired": Status.EXPIRED,
    "Deleted": Status.DELETED,
    "Undeliverable": Status.UNDELIVERABLE,
    "Rejected": Status.REJECTED,
    "Unaccepted": Status.UNACCEPTED,
    "Terminated": Status.TERMINATED,
}

XML_TYPES = frozenset({"application/xml", "text/xml", ""})
_STATES_BY_LOWER = {word.lower(): word for word in STATES}
_XML_HEADERS = {"Content-Type": "application/xml", "Accept": "application/xml"}


class StatusDocumentError(ValueError):
    """A `<status>` document that cannot be read (missing id, missing or unknown state)."""


def normalise_id(raw: str) -> str:
    """IP2SMS ids are digits: trim white space and leading zeros."""
    value = raw.strip()
    if value.isascii() and value.isdigit():
        return value.lstrip("0") or "0"
    return value


def _auth(carrier: CarrierConfig) -> tuple[str, str]:
    return (carrier.username, carrier.password)


# --- the <status> document (submission answer, poll answer, receipt) -------------------------


def _status_time(raw: str) -> datetime | None:
    """The `date` attribute: RFC 2822 as documented, ISO 8601 tolerated; None when unreadable
    or out of range (the raw text is then kept in the history as `carrier_time_text`)."""
    try:
        return dates.parse_rfc2822(raw)
    except dates.DateError:
        return None


def parse_status(root: Element, *, expected_id: str = "") -> Receipt:
    """Read `<status id=".." date=".."><state error="..">Word</state></status>`.

    The id may be left out only when `expected_id` says which message it is about.
    """
    if safexml.local_name(root) != "status":
        raise StatusDocumentError(f"expected status, got {safexml.local_name(root)[:40]}")
    gateway_id = normalise_id(root.get("id") or "") or expected_id
    if not gateway_id:
        raise StatusDocumentError("status id is required")
    if expected_id and gateway_id != expected_id:
        raise StatusDocumentError(f"status is about id {gateway_id[:40]}, not {expected_id}")
    state_element = safexml.child(root, "state")
    word = "" if state_element is None else (state_element.text or "").strip()
    if state_element is None or not word:
        raise StatusDocumentError("state is required")
    known = _STATES_BY_LOWER.get(word.lower())
    if known is None:
        raise StatusDocumentError(f"state {word[:40]!r} is not one of {', '.join(STATES)}")
    error = " ".join((state_element.get("error") or "").split())
    raw_date = (root.get("date") or "").strip()
    extra = {"ext_id": root.get("ext_id", "")} if root.get("ext_id") else {}
    at = _status_time(raw_date) if raw_date else None
    if raw_date and at is None:
        extra["receipt_date"] = raw_date[:64]
    return Receipt(
        gateway_id=gateway_id,
        gateway_status=word,
        status=STATES[known],
        at=at,
        gateway_error=error,
        description=error,
        extra=extra,
    )


# --- submission -------------------------------------------------------------------------------


def build_message(carrier: CarrierConfig, submission: Submission) -> bytes:
    """The `<message>`; `uniq_key` and `ext_id` carry the reference key, equal on every try."""
    root = ET.Element("message")
    service = {"id": "single", "source": submission.sender or carrier.sender}
    if submission.validity_minutes is not None:
        service["validity"] = f"+{submission.validity_minutes} min"
    service["uniq_key"] = submission.reference
    ET.SubElement(root, "service", service)
    ET.SubElement(root, "to", {"ext_id": submission.reference}).text = submission.to
    ET.SubElement(
        root, "body", {"content-type": "text/plain", "encoding": "plain"}
    ).text = submission.text
    document: bytes = ET.tostring(root, encoding="utf-8")
    return document


def submit(
    session: requests.Session, carrier: CarrierConfig, submission: Submission
) -> SubmitResult:
    return post_submission(
        session,
        carrier,
        body=build_message(carrier, submission),
        headers=_XML_HEADERS,
        auth=_auth(carrier),
        accepted=_accepted,
        refused=_refused,
    )


def _accepted(response: requests.Response) -> SubmitResult:
    try:
        receipt = parse_status(safexml.parse(response.content))
    except (safexml.UnsafeOrMalformedXml, StatusDocumentError) as exc:
        raise TransientSubmitError(f"unreadable answer: {exc}") from exc
    if receipt.gateway_error or (receipt.status.is_final and receipt.status != Status.DELIVERED):
        final = receipt.status if receipt.status.is_final else Status.FAILED
        raise PermanentSubmitError(
            receipt.gateway_error or f"the carrier answered {receipt.gateway_status}",
            gateway_status=receipt.gateway_status,
            gateway_error=receipt.gateway_error,
            status=final,
        )
    return SubmitResult(
        gateway_id=receipt.gateway_id,
        gateway_status=receipt.gateway_status,
        status=receipt.status,
        at=receipt.at,
    )


def _refused(response: requests.Response) -> PermanentSubmitError:
    try:
        receipt = parse_status(safexml.parse(response.content))
    except (safexml.UnsafeOrMalformedXml, StatusDocumentError):
        return PermanentSubmitError(
            f"refused by the carrier (HTTP {response.status_code})",
            gateway_status=f"HTTP {response.status_code}",
            gateway_error=str(response.status_code),
        )
    return PermanentSubmitError(
        receipt.gateway_error or f"refused by the carrier (HTTP {response.status_code})",
        gateway_status=receipt.gateway_status,
        gateway_error=receipt.gateway_error or str(response.status_code),
        status=receipt.status if receipt.status.is_final else Status.FAILED,
    )


# --- polling ----------------------------------------------------------------------------------


def poll(session: requests.Session, carrier: CarrierConfig, gateway_id: str) -> Receipt:
    """Ask for one message's state; PollError for anything that is not a readable answer."""
    import requests  # here, where a call is made

    wanted = normalise_id(gateway_id)
    root = ET.Element("request", {"id": wanted})
    root.text = "status"
    try:
        response = session.post(
            carrier.status_url,
            data=ET.tostring(root, encoding="utf-8"),
            headers=_XML_HEADERS,
            auth=_auth(carrier),
            timeout=(carrier.connect_timeout, carrier.read_timeout),
        )
    except requests.Timeout as exc:
        raise PollError(f"{carrier.name}: status request timed out") from exc
    except Exception as exc:
        raise PollError(f"{carrier.name}: status request failed ({type(exc).__name__})") from exc
    if not 200 <= response.status_code < 300:
        raise PollError(
            f"{carrier.name} answered the status request with HTTP {response.status_code}"
        )
    try:
        return parse_status(safexml.parse(response.content), expected_id=wanted)
    except (safexml.UnsafeOrMalformedXml, StatusDocumentError) as exc:
        raise PollError(f"{carrier.name}: unreadable status answer: {exc}") from exc


# --- receipts ---------------------------------------------------------------------------------


def read_receipts(request: HttpRequest, carrier: CarrierConfig) -> list[Receipt]:
    basic = request.basic_auth()
    if not credentials_match(
        basic[0] if basic else None,
        basic[1] if basic else None,
        carrier.dlr_login,
        carrier.dlr_password,
    ):
        raise ReceiptAuthError("bad or missing Basic credentials")
    if request.content_type not in XML_TYPES:
        raise UnsupportedMediaType("Content-Type must be application/xml or text/xml")
    if not request.body.strip():
        raise MalformedReceipt("the body is empty")
    try:
        return [parse_status(safexml.parse(request.body))]
    except (safexml.UnsafeOrMalformedXml, StatusDocumentError) as exc:
        raise MalformedReceipt(" ".join(str(exc).split())[:200] or "malformed XML") from None


def answer_receipts(receipts: list[Receipt]) -> HttpAnswer:
    return HttpAnswer(status=200, body="OK")


def answer_error(error: ReceiptError) -> HttpAnswer:
    return HttpAnswer(status=error.status_code, body=" ".join(error.detail.split()))
