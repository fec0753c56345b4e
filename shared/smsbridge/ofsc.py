"""Oracle Field Service (OFSC) Outbound API: SOAP 1.1, document/literal, `urn:toatech:agent`.

smsbridge plays the "middleware": OFSC calls `send_message`, `get_message_status` and
`drop_message` on us, and we call `set_message_status` on OFSC when a message reaches a new
status. This module reads and writes those documents in both directions; it knows nothing of AWS
or of HTTP frameworks.

Reading never depends on namespace prefixes (elements are matched by local name) and goes through
`smsbridge.safexml`, which refuses DTDs and entities. Writing uses ElementTree with the prefixes
`soapenv` and `urn` and emits only the optional elements that have a value, because OFSC rejects
empty tags (an empty `<duration/>` is "not a valid Integer value").
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException

from smsbridge import auth, bounds, dates, safexml
from smsbridge.statuses import Status, heard

NAMESPACE = "urn:toatech:agent"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

ET.register_namespace("soapenv", SOAP_ENV)
ET.register_namespace("urn", NAMESPACE)

#: The operations OFSC calls on the middleware.
OPERATIONS: frozenset[str] = frozenset({"send_message", "get_message_status", "drop_message"})

#: OFSC sends batches of 10 or more; a `set_message_status` call carries at most this many.
MAX_STATUS_UPDATES = 100

#: The most messages one call may carry, per operation: each fits the 15 s function time-out
#: at 10 ms per DynamoDB call, and each is more than a 256 KiB body can hold (README, "Batch
#: sizes"). A call over it is refused with HTTP 413 before any work.
MAX_MESSAGES: dict[str, int] = {
    "send_message": 3_200,
    "get_message_status": 6_000,
    "drop_message": 6_000,
}

#: `result/code` values of `get_message_status`, `drop_message` and `set_message_status`.
CODE_OK = "OK"
CODE_ERROR = "ERROR"
CODE_NOT_FOUND = "NOT FOUND"

#: `result/desc` of a `drop_message` that came too late.
UNDER_PROCESSING = "the message is under processing"

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_FAULT_CODES = frozenset({"Client", "Server"})
_MAX_FAULTSTRING = 200
_MAX_ECHOED_NAME = 64
#: Characters XML 1.0 cannot carry, even escaped.
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PHONE = re.compile(r"\+?[0-9 ()\-]+")
_PHONE_DIGITS = (6, 16)
_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n"})
_MESSAGE_FIELDS = frozenset(
    {
        "message_id",
        "address",
        "body",
        "subject",
        "send_to",
        "app_host",
        "app_port",
        "app_url",
        "company_id",
    }
)


# --------------------------------------------------------------------------------------------
# Requests from OFSC


@dataclass(frozen=True, slots=True)
class OfscUser:
    """The `user` block: OFSC's credentials for this call."""

    now: str
    company: str
    login: str
    auth_string: str


@dataclass(frozen=True, slots=True)
class OfscMessage:
    """One `<message>` of a request (only `message_id` is set for get/drop)."""

    message_id: str
    address: str = ""
    body: str = ""
    subject: str = ""
    send_to: str = ""
    app_host: str = ""
    app_port: str = ""
    app_url: str = ""
    company_id: str = ""
    #: Every other child of `<message>`, by local name.
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OfscRequest:
    """A parsed call from OFSC."""

    #: "send_message" | "get_message_status" | "drop_message"
    operation: str
    user: OfscUser | None
    messages: list[OfscMessage]


class OfscFault(Exception):
    """A request that is answered with a SOAP Fault (`envelope`) and `http_status`."""

    def __init__(self, faultcode: str, faultstring: str, http_status: int = 500) -> None:
        super().__init__(faultstring)
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.http_status = http_status

    @property
    def envelope(self) -> str:
        """The SOAP 1.1 Fault document to answer with."""
        return fault(self.faultcode, self.faultstring)


def too_many_messages(operation: str, most: int) -> OfscFault:
    """The fault for a call with more messages than `MAX_MESSAGES` allows."""
    return OfscFault("Client", f"{operation} carries at most {most} messages", 413)


def authentication_failed() -> OfscFault:
    """The fault for a call whose Basic credentials or `user` block do not check out."""
    return OfscFault("Client", "authentication failed", 401)


def parse_request(body: bytes) -> OfscRequest:
    """Read a call from OFSC; any unusable document raises `OfscFault` (Client, HTTP 500).

    The operation is the local name of the Body's first element (SOAPAction is not consulted).
    """
    try:
        root = safexml.parse(body)
    except safexml.UnsafeOrMalformedXml as exc:
        if isinstance(exc.__cause__, DefusedXmlException):
            raise OfscFault("Client", "refused XML: DTDs and entities are not allowed") from None
        if exc.__cause__ is None:  # undecodable bytes or nesting too deep: say which
            raise OfscFault("Client", str(exc)) from None
        raise OfscFault("Client", "the request is not well-formed XML") from None
    soap_body = _soap_body(root)
    if soap_body is None:
        raise OfscFault("Client", "the request is not a SOAP 1.1 envelope with a Body")
    operation_element = next(iter(soap_body), None)
    if operation_element is None:
        raise OfscFault("Client", "the SOAP Body is empty")
    operation = safexml.local_name(operation_element)
    if operation not in OPERATIONS:
        shown = operation[:_MAX_ECHOED_NAME] or "(none)"
        raise OfscFault("Client", f"unknown operation: {shown}")
    if operation_element.tag != f"{{{NAMESPACE}}}{operation}":
        raise OfscFault("Client", f"{operation} must be in the namespace {NAMESPACE}")

    user_element = safexml.child(operation_element, "user")
    user = None
    if user_element is not None:
        user = OfscUser(
            now=safexml.text_of(user_element, "now") or "",
            company=safexml.text_of(user_element, "company") or "",
            login=safexml.text_of(user_element, "login") or "",
            auth_string=safexml.text_of(user_element, "auth_string") or "",
        )

    messages: list[OfscMessage] = []
    messages_element = safexml.child(operation_element, "messages")
    if messages_element is not None:
        for position, item in enumerate(safexml.children(messages_element, "message"), 1):
            messages.append(_read_message(item, position))
    return OfscRequest(operation=operation, user=user, messages=messages)


def _soap_body(root: Element) -> Element | None:
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        return None
    for item in root:
        if item.tag == f"{{{SOAP_ENV}}}Body":
            return item
    return None


def _read_message(element: Element, position: int) -> OfscMessage:
    known: dict[str, str] = {}
    others: dict[str, str] = {}
    for item in element:
        name = safexml.local_name(item)
        if not name:
            continue
        value = _inner_text(item) if name == "body" else (item.text or "").strip()
        target = known if name in _MESSAGE_FIELDS else others
        target.setdefault(name, value)
    message_id = known.get("message_id", "")
    if not message_id:
        raise OfscFault("Client", f"message {position} has no message_id")
    return OfscMessage(
        message_id=message_id,
        address=known.get("address", ""),
        body=known.get("body", ""),
        subject=known.get("subject", ""),
        send_to=known.get("send_to", ""),
        app_host=known.get("app_host", ""),
        app_port=known.get("app_port", ""),
        app_url=known.get("app_url", ""),
        company_id=known.get("company_id", ""),
        fields=others,
    )


def _inner_text(element: Element) -> str:
    """The element's content: its text, or the markup it holds when OFSC sent it unescaped."""
    if len(element) == 0:
        return element.text or ""
    parts = [element.text or ""]
    parts.extend(ET.tostring(item, encoding="unicode") for item in element)
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Authentication of the `user` block


def _hex(algorithm: str, text: str) -> str:
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()


def auth_string_sha256(now: str, login: str, secret: str) -> str:
    """sha256(now + sha256(secret + sha256(login))), hex."""
    return _hex("sha256", now + _hex("sha256", secret + _hex("sha256", login)))


def auth_string_md5(now: str, password: str) -> str:
    """md5(now + md5(password)), hex: the legacy form."""
    return _hex("md5", now + _hex("md5", password))


def _auth_string(now: str, login: str, secret: str, hash_kind: str) -> str:
    if hash_kind == "sha256":
        return auth_string_sha256(now, login, secret)
    if hash_kind == "md5":
        return auth_string_md5(now, secret)
    raise ValueError(f"unknown OFSC auth hash kind: {hash_kind!r} (sha256 or md5)")


def parse_now(value: str) -> datetime:
    """The `now` of a `user` block (ISO 8601, e.g. 2011-07-07T09:30:58+00:00) as aware UTC;
    `dates.DateError` (a ValueError) when unreadable or out of range in UTC."""
    return dates.parse_iso(value)


def verify_user(
    user: OfscUser,
    *,
    login: str,
    secret: str,
    hash_kind: str,
    now: datetime,
    max_skew_seconds: int = 1800,
) -> bool:
    """Check a `user` block against one client's configured login and secret.

    Login and auth_string are both compared in constant time and the hash is always computed,
    so the cost does not tell which part was wrong. For a login with no client, call it with any
    login and secret (an empty login never matches) to spend the same time.
    `now` of the block must lie within `max_skew_seconds` of the server clock `now`.
    """
    expected = _auth_string(user.now, login, secret, hash_kind)
    login_ok = auth.equals(user.login, login)
    hash_ok = auth.equals(user.auth_string.strip().lower(), expected)
    try:
        sent_at = parse_now(user.now)
    except ValueError:
        fresh = False
    else:
        server = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        fresh = abs((server - sent_at).total_seconds()) <= max_skew_seconds
    return login_ok & hash_ok & fresh


def format_now(moment: datetime) -> str:
    """OFSC's date-time form: GMT YYYY-MM-DDTHH:MM:SS+00:00."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def make_user(
    login: str, company: str, secret: str, now: datetime, hash_kind: str = "sha256"
) -> OfscUser:
    """The `user` block smsbridge sends to OFSC with `set_message_status`."""
    stamp = format_now(now)
    return OfscUser(
        now=stamp,
        company=company,
        login=login,
        auth_string=_auth_string(stamp, login, secret, hash_kind),
    )


# --------------------------------------------------------------------------------------------
# Recipient and text of a send_message message


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where a message goes and what it says, as found in `address` and `body`."""

    to: str
    text: str
    type: str | None = None
    sender: str | None = None
    alternate_delivery: bool | None = None


def is_phone_number(value: str) -> bool:
    """Digits with an optional leading +, spaces, dashes and parentheses; 6 to 16 digits."""
    value = value.strip()
    if not _PHONE.fullmatch(value):
        return False
    digits = sum(char.isdigit() for char in value)
    return _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]


def recipient_of(message: OfscMessage) -> Recipient:
    """Find the number and the text of a `send_message` message (SPEC 3.1).

    The number is `address` when that is a phone number, else the `to` of a structured body:
    JSON `{"to", "text", "type", "sender", "alternate_delivery"}` (a body between braces) or XML
    `<sms><to/><text/><type/><sender/><alternate_delivery/></sms>` (a body between angle
    brackets). Any other body is the text, and `address` the number, whatever it holds (the
    number check downstream judges it). A body that looks structured but cannot be read
    (invalid JSON, hostile or malformed XML, wrong types), or a message with no number or no
    text, raises `ValueError` with a description for OFSC.
    """
    address = message.address.strip()
    structured = _structured_body(message.body)
    if structured is None:
        to, text = address, message.body.strip()
        kind = sender = None
        alternate = None
    else:
        to = address if is_phone_number(address) else structured.get("to", "")
        text = structured.get("text") or ""
        kind = structured.get("type") or None
        sender = structured.get("sender") or None
        alternate = _flag(structured.get("alternate_delivery"))
    if not to:
        raise ValueError("no recipient: address is not a phone number and the body names none")
    if not text:
        raise ValueError("the message has no text")
    for bound, value in (
        (bounds.TO, to),
        (bounds.TEXT, text),
        (bounds.TYPE, kind or ""),
        (bounds.SENDER, sender or ""),
    ):
        problem = bound.problem(value)
        if problem:
            raise ValueError(problem)
    return Recipient(to=to, text=text, type=kind, sender=sender, alternate_delivery=alternate)


def _structured_body(body: str) -> dict[str, str] | None:
    """The fields of a JSON or XML body, or None for a plain-text body."""
    stripped = body.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        return _json_body(stripped)
    if stripped.startswith("<") and stripped.endswith(">"):
        return _xml_body(stripped)
    return None


def _json_body(text: str) -> dict[str, str]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("the body looks like JSON but is not valid JSON") from None
    if not isinstance(document, dict):
        raise ValueError("the body JSON must be an object")
    fields: dict[str, str] = {}
    for name in ("to", "text", "type", "sender"):
        value = document.get(name)
        if value is None:
            continue
        if name == "to" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"the body JSON field {name!r} must be a string")
        fields[name] = value.strip()
    flag = document.get("alternate_delivery")
    if flag is not None:
        if isinstance(flag, bool):
            fields["alternate_delivery"] = "true" if flag else "false"
        elif isinstance(flag, str):
            fields["alternate_delivery"] = flag
        else:
            raise ValueError("the body JSON field 'alternate_delivery' must be true or false")
    if not fields.keys() & {"to", "text"}:
        raise ValueError("the body JSON has neither 'to' nor 'text'")
    return fields


def _xml_body(text: str) -> dict[str, str]:
    try:
        root = safexml.parse(text)
    except safexml.UnsafeOrMalformedXml as exc:
        if isinstance(exc.__cause__, DefusedXmlException):
            raise ValueError("the body XML is refused: DTDs and entities are not allowed") from None
        raise ValueError("the body looks like XML but is not well-formed") from None
    if safexml.local_name(root) != "sms":
        raise ValueError("the body XML must be an <sms> element")
    fields: dict[str, str] = {}
    for name in ("to", "text", "type", "sender", "alternate_delivery"):
        value = safexml.text_of(root, name)
        if value is not None:
            fields[name] = value
    return fields


def _flag(value: str | None) -> bool | None:
    lowered = (value or "").strip().lower()
    if not lowered:
        return None
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("alternate_delivery must be true or false")


def parse_send_to(value: str) -> datetime | None:
    """`send_to` (GMT 'YYYY-MM-DD HH24:MI:SS', ISO 8601 tolerated) as aware UTC; '' is None;
    an unreadable or out-of-range value raises `dates.DateError` (a ValueError)."""
    if not value.strip():
        return None
    try:
        return dates.parse_gmt(value)
    except dates.DateError as exc:
        raise dates.DateError(f"send_to: {exc}") from None


# --------------------------------------------------------------------------------------------
# Answers to OFSC


@dataclass(frozen=True, slots=True)
class MessageResponse:
    """One `message_response` of `send_message_response`."""

    message_id: str
    #: sending | sent | failed | delivered
    status: str
    description: str | None = None
    data: str | None = None
    external_id: str | None = None
    duration: int | None = None
    #: GMT YYYY-MM-DDTHH:MM:SS+00:00
    sent: str | None = None
    fault_attempt: int | None = None
    stop_further_attempts: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """One `message_response` of `get_message_status_response` / `drop_message_response`."""

    message_id: str
    code: str
    desc: str | None = None


#: The `result` of `get_message_status` for each canonical status (SPEC 3.1). `forwarded` is
#: SENDING: OFSC hears the alternate's outcome, which the caller looks up.
def _ofsc_result(status: Status) -> tuple[str, str]:
    if status == Status.QUEUED:
        return CODE_OK, "WAITING"
    return CODE_OK, heard(status).ofsc_status.upper()


OFSC_RESULT: dict[Status, tuple[str, str]] = {status: _ofsc_result(status) for status in Status}


def status_result(message_id: str, status: Status | None) -> Result:
    """The `get_message_status` result for a message in `status` (None: unknown message)."""
    if status is None:
        return Result(message_id, CODE_NOT_FOUND)
    code, desc = OFSC_RESULT[status]
    return Result(message_id, code, desc)


def drop_result(message_id: str, status: Status | None) -> Result:
    """The `drop_message` result, given the message's status after the attempt to cancel it."""
    if status is None:
        return Result(message_id, CODE_NOT_FOUND)
    if status == Status.CANCELLED:
        return Result(message_id, CODE_OK)
    return Result(message_id, CODE_ERROR, UNDER_PROCESSING)


def send_message_response(responses: list[MessageResponse]) -> str:
    """The `send_message_response` envelope; optional fields only when they have a value."""
    envelope, body = _envelope()
    operation = _add(body, "send_message_response")
    for response in responses:
        if not response.message_id or not response.status:
            raise ValueError("a message_response needs a message_id and a status")
        item = _add(operation, "message_response")
        _add(item, "message_id", response.message_id)
        _add(item, "status", response.status)
        _add_optional(item, "description", response.description)
        _add_optional(item, "data", response.data)
        _add_optional(item, "external_id", response.external_id)
        _add_optional(item, "duration", _integer(response.duration, "duration"))
        _add_optional(item, "sent", response.sent)
        _add_optional(item, "fault_attempt", _integer(response.fault_attempt, "fault_attempt"))
        if response.stop_further_attempts:
            _add(item, "stop_further_attempts", "1")
    return _serialize(envelope)


def get_message_status_response(results: list[Result]) -> str:
    """The `get_message_status_response` envelope: message_id and result{code, desc} each."""
    return _results_envelope("get_message_status_response", results)


def drop_message_response(results: list[Result]) -> str:
    """The `drop_message_response` envelope: message_id and result{code, desc} each."""
    return _results_envelope("drop_message_response", results)


def _results_envelope(name: str, results: list[Result]) -> str:
    envelope, body = _envelope()
    operation = _add(body, name)
    for result in results:
        item = _add(operation, "message_response")
        _add(item, "message_id", result.message_id)
        outcome = _add(item, "result")
        _add(outcome, "code", result.code)
        _add_optional(outcome, "desc", result.desc)
    return _serialize(envelope)


def fault(faultcode: str, faultstring: str) -> str:
    """A SOAP 1.1 Fault envelope; `faultcode` is "Client" or "Server"."""
    if faultcode not in _FAULT_CODES:
        raise ValueError(f"faultcode must be Client or Server, not {faultcode!r}")
    envelope, body = _envelope()
    element = ET.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    ET.SubElement(element, "faultcode").text = f"soapenv:{faultcode}"
    ET.SubElement(element, "faultstring").text = _clean(faultstring)[:_MAX_FAULTSTRING]
    return _serialize(envelope)


# --------------------------------------------------------------------------------------------
# Callbacks to OFSC: set_message_status


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One `message` of a `set_message_status` call."""

    message_id: str
    #: sending | delivered | failed | sent
    status: str
    description: str | None = None
    #: GMT YYYY-MM-DDTHH:MM:SS+00:00
    sent: str | None = None
    data: str | None = None


def set_message_status_request(user: OfscUser, updates: list[StatusUpdate]) -> str:
    """The `set_message_status` SOAP request to OFSC, 1 to 100 updates."""
    if not updates:
        raise ValueError("set_message_status needs at least one update")
    if len(updates) > MAX_STATUS_UPDATES:
        raise ValueError(f"set_message_status carries at most {MAX_STATUS_UPDATES} updates")
    envelope, body = _envelope()
    operation = _add(body, "set_message_status")
    user_element = _add(operation, "user")
    _add(user_element, "now", user.now)
    _add(user_element, "login", user.login)
    _add(user_element, "company", user.company)
    _add(user_element, "auth_string", user.auth_string)
    messages = _add(operation, "messages")
    for update in updates:
        if not update.message_id or not update.status:
            raise ValueError("a status update needs a message_id and a status")
        item = _add(messages, "message")
        _add(item, "message_id", update.message_id)
        _add(item, "status", update.status)
        _add_optional(item, "description", update.description)
        _add_optional(item, "data", update.data)
        _add_optional(item, "sent", update.sent)
    return _serialize(envelope)


def parse_set_message_status_response(body: bytes) -> dict[str, str]:
    """OFSC's answer to `set_message_status`: message_id -> result code ("OK", "NOT FOUND").

    A SOAP Fault raises `OfscFault` with OFSC's faultcode and faultstring; a document that is
    not a `set_message_status_response` envelope raises `ValueError`.
    """
    root = safexml.parse(body)
    soap_body = _soap_body(root)
    if soap_body is None:
        raise ValueError("the answer is not a SOAP 1.1 envelope with a Body")
    answer = next(iter(soap_body), None)
    if answer is None:
        raise ValueError("the answer's SOAP Body is empty")
    name = safexml.local_name(answer)
    if name == "Fault":
        code = (safexml.text_of(answer, "faultcode") or "").rsplit(":", 1)[-1] or "Server"
        reason = safexml.text_of(answer, "faultstring") or ""
        raise OfscFault(code, reason[:_MAX_FAULTSTRING])
    if name != "set_message_status_response":
        raise ValueError(f"unexpected answer: {name[:_MAX_ECHOED_NAME]}")
    codes: dict[str, str] = {}
    for item in safexml.children(answer, "message_response"):
        message_id = safexml.text_of(item, "message_id")
        outcome = safexml.child(item, "result")
        if not message_id or outcome is None:
            continue
        codes[message_id] = safexml.text_of(outcome, "code") or ""
    return codes


# --------------------------------------------------------------------------------------------
# XML writing


def _envelope() -> tuple[Element, Element]:
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    return envelope, body


def _add(parent: Element, name: str, text: str | None = None) -> Element:
    element = ET.SubElement(parent, f"{{{NAMESPACE}}}{name}")
    if text is not None:
        element.text = _clean(text)
    return element


def _add_optional(parent: Element, name: str, text: str | None) -> None:
    if text is not None and _clean(text).strip():
        _add(parent, name, text)


def _integer(value: int | None, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    return str(value)


def _clean(text: str) -> str:
    return _NOT_XML_CHARS.sub("", text)


def _serialize(envelope: Element) -> str:
    return _XML_DECLARATION + ET.tostring(envelope, encoding="unicode")
