"""Carrier simulator of the local stack: the four carrier formats and the back office.

It plays Smartswitch, Concepto Móvil, Vibes and IP2SMS (submit endpoints, delivery receipts posted
back to smsbridge, IP2SMS status polls) and the originators' side (OFSC `set_message_status` calls
and JSON callbacks), so that the whole system runs on loopback. The outcome of a submission is
chosen by the last two digits of the destination number (SPEC 9); the wire formats are those of
docs/carrier-protocols.md. It is the other side of the protocol, so it shares no code with
smsbridge: the standard library, requests, and werkzeug to serve HTTP.
"""

from __future__ import annotations

import base64
import binascii
import copy
import heapq
import hmac
import itertools
import json
import logging
import queue
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import requests
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from tools.chaos import Faults

log = logging.getLogger(__name__)

#: Canonical receipt states the outcomes are written in; each format words them its own way.
ENROUTE = "enroute"
DELIVERED = "delivered"
UNDELIVERABLE = "undeliverable"
EXPIRED = "expired"
REJECTED = "rejected"
FINAL_STATES = frozenset({DELIVERED, UNDELIVERABLE, EXPIRED, REJECTED})
FAILED_STATES = frozenset({UNDELIVERABLE, EXPIRED, REJECTED})
#: Vibes forwarding by itself (alternate delivery it was asked for): the original's `Forwarded`
#: receipt (with `fwdToMessageId`), and the alternate's receipts (`ALT + state`, under the
#: alternate's own id, with `fwdFromMessageId`).
FORWARDED = "forwarded"
ALT = "alt:"

#: (connect, read) time-outs of the receipt posts.
RECEIPT_TIMEOUT = (2.0, 15.0)
#: How many times a receipt that got no answer or a 5xx is posted again.
RECEIPT_RETRIES = 4
MAX_BODY_BYTES = 1024 * 1024
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OFSC_NS = "urn:toatech:agent"
#: Numeric carrier ids: one counter for every simulator in the process, starting from the clock
#: (16 digits, within a JSON number's exact range), so ids stay unique across restarts too.
_NUMERIC_IDS = itertools.count(int(time.time() * 1000) * 1000)


# --------------------------------------------------------------------------------------------
# Outcomes (SPEC 9)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the simulated carrier does with one destination number."""

    #: Receipts after acceptance, in order, `delay_ms` apart (canonical states).
    receipts: tuple[str, ...] = (ENROUTE, DELIVERED)
    #: The submission is refused for good.
    reject: bool = False
    #: How many first tries of a reference are answered 503.
    unavailable: int = 0
    #: How many first tries of a reference are answered only after `late_ms`.
    late: int = 0
    #: The receipts are posted (and finished) before the submission is answered.
    before_answer: bool = False
    #: With alternate delivery asked for (Vibes), the carrier forwards the message by itself
    #: and posts these receipts instead (FORWARDED, ALT + state); `receipts` otherwise.
    forwarding: tuple[str, ...] | None = None


def outcome_for(number: str, sender_type: str = "SC") -> Outcome:
    """The outcome chosen by the last two digits of `number` on a carrier of `sender_type`."""
    ending = re.sub(r"\D", "", number)[-2:]
    match ending:
        case "11":
            return Outcome(receipts=(ENROUTE, UNDELIVERABLE))
        case "12":
            return Outcome(receipts=(), reject=True)
        case "13":
            return Outcome(unavailable=2)
        case "14":
            return Outcome(receipts=(ENROUTE,))
        case "15":
            return Outcome(receipts=(DELIVERED, ENROUTE, DELIVERED, ENROUTE))
        case "16":
            return Outcome(receipts=(ENROUTE, EXPIRED))
        case "17":
            return Outcome(late=2)
        case "18":
            final = DELIVERED if sender_type.upper() == "LC" else UNDELIVERABLE
            return Outcome(receipts=(ENROUTE, final))
        case "19":
            return Outcome(receipts=(DELIVERED,), before_answer=True)
        case "21":
            forward: tuple[str, ...] = (FORWARDED, ALT + ENROUTE, ALT + DELIVERED)
            return Outcome(receipts=(ENROUTE, UNDELIVERABLE), forwarding=forward)
        case "22":
            forward = (ALT + DELIVERED, FORWARDED)
            return Outcome(receipts=(ENROUTE, UNDELIVERABLE), forwarding=forward)
        case "23":
            # Receipt option FINAL: only the alternate's final comes.
            forward = (ALT + DELIVERED,)
            return Outcome(receipts=(ENROUTE, UNDELIVERABLE), forwarding=forward)
        case "24":
            forward = (FORWARDED, ALT + UNDELIVERABLE)
            return Outcome(receipts=(ENROUTE, UNDELIVERABLE), forwarding=forward)
        case _:
            return Outcome()


# --------------------------------------------------------------------------------------------
# Small helpers


class _BadRequest(Exception):
    """A request body the simulated carrier cannot read (answered 400)."""


@dataclass(slots=True)
class _Reply:
    """An HTTP answer."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def _text_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode("utf-8"))


def _json_reply(status: int, document: Any) -> _Reply:
    return _Reply(status, json.dumps(document).encode("utf-8"), "application/json")


def _xml_reply(status: int, element: ET.Element, content_type: str = "application/xml") -> _Reply:
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="unicode")
    return _Reply(status, text.encode("utf-8"), content_type)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rfc2822(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC))


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for item in element:
        if _local(item.tag) == name:
            return item
    return None


def _parse_xml(body: bytes) -> ET.Element:
    # Loopback traffic from smsbridge only; Python's expat refuses entity expansion attacks.
    try:
        return ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise _BadRequest(f"malformed XML: {exc}") from exc


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise _BadRequest("the body is not JSON") from exc
    if not isinstance(document, dict):
        raise _BadRequest("the body is not a JSON object")
    return document


def _text_field(document: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = document.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    if value is None and not required:
        return ""
    raise _BadRequest(f"{name} is missing or not a string")


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# What one submission carries and what happens after it


@dataclass(slots=True)
class _Incoming:
    """A submission as read from the carrier's wire format."""

    reference: str
    to: str
    text: str
    sender: str
    api_key: str | None = None
    callback_url: str = ""
    receipt_option: str = "ALL"
    #: Vibes `alternateDelivery="true"`: the carrier may forward the message by itself.
    alternate_delivery: bool = False


@dataclass(slots=True)
class _Timeline:
    """IP2SMS state of one message: `Accepted`, then `states` one step every `delay` seconds."""

    states: tuple[str, ...]
    accepted_at: float
    #: Wall-clock time the steps started (None while the receipts are held back).
    started: float | None = None


@dataclass(slots=True)
class _Plan:
    """The receipts one accepted submission produces."""

    carrier: str
    fmt: _Format
    gateway_id: str
    reference: str
    states: tuple[str, ...]
    url: str
    dlr_login: str
    dlr_password: str
    submitted_ms: int
    timeline: _Timeline | None = None
    #: The id of the carrier's own alternate, when it forwards the message by itself.
    alternate_id: str = ""


# --------------------------------------------------------------------------------------------
# The four formats


class _Format:
    """One carrier wire format: reading submissions, answering them, posting receipts."""

    name: ClassVar[str] = ""
    polled: ClassVar[bool] = False

    def authorized(self, authorization: str | None, creds: dict[str, Any]) -> bool:
        """Basic auth with the carrier's submit `username`/`password` (unchecked when unset)."""
        username, password = creds.get("username"), creds.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return True
        given = _basic_credentials(authorization)
        if given is None:
            return False
        # Both compared, always, so a wrong login costs the same as a wrong password.
        user_ok = _same(given[0], username)
        password_ok = _same(given[1], password)
        return user_ok and password_ok

    def body_authorized(self, incoming: _Incoming, creds: dict[str, Any]) -> bool:
        return True

    def parse(self, body: bytes) -> _Incoming:
        raise NotImplementedError

    def new_id(self, counter: Iterator[int]) -> str:
        return str(next(counter))

    def accepted(self, gateway_id: str, incoming: _Incoming) -> _Reply:
        raise NotImplementedError

    def error(self, status: int, code: str, detail: str) -> _Reply:
        raise NotImplementedError

    def rejected(self, gateway_id: str, incoming: _Incoming) -> _Reply:
        return self.error(400, "rejected", "rejected by operator")

    def receipt_states(self, states: tuple[str, ...], incoming: _Incoming) -> tuple[str, ...]:
        return states

    def receipt_url(self, api_base_url: str, carrier: str, incoming: _Incoming) -> str:
        return f"{api_base_url}/dlr/{carrier}"

    def post(self, plan: _Plan, state: str) -> requests.Response | None:
        """Post one receipt; None when this format posts nothing for `state`."""
        return None


class _Smartswitch(_Format):
    name = "smartswitch"

    def parse(self, body: bytes) -> _Incoming:
        document = _parse_json_object(body)
        return _Incoming(
            reference=_text_field(document, "message_id", required=False),
            to=_text_field(document, "to"),
            text=_text_field(document, "text"),
            sender=_text_field(document, "from", required=False),
        )

    def accepted(self, gateway_id: str, incoming: _Incoming) -> _Reply:
        return _json_reply(200, {"message_id": gateway_id, "status": "accepted"})

    def error(self, status: int, code: str, detail: str) -> _Reply:
        title = code.replace("_", " ").capitalize()
        reply = _json_reply(status, {"errors": [{"code": code, "title": title, "detail": detail}]})
        if status == 401:
            reply.headers["WWW-Authenticate"] = 'Basic realm="smartswitch"'
        return reply

    def post(self, plan: _Plan, state: str) -> requests.Response:
        params = [
            ("message_id", plan.gateway_id),
            ("message_state", state),
            ("_login", plan.dlr_login),
            ("_password", plan.dlr_password),
        ]
        return requests.post(plan.url, params=params, timeout=RECEIPT_TIMEOUT)


class _Conceptomovil(_Format):
    name = "conceptomovil"
    WORDS: ClassVar[dict[str, str]] = {
        DELIVERED: "DELIVERED",
        UNDELIVERABLE: "UNDELIVERABLE",
        EXPIRED: "UNDELIVERABLE",
        REJECTED: "REJECTED",
    }

    def authorized(self, authorization: str | None, creds: dict[str, Any]) -> bool:
        token = creds.get("token")
        if not isinstance(token, str):
            return True
        given = (authorization or "").strip()
        if given.lower().startswith("bearer "):
            given = given[7:].strip()
        return _same(given, token)

    def body_authorized(self, incoming: _Incoming, creds: dict[str, Any]) -> bool:
        api_key = creds.get("api_key")
        return not isinstance(api_key, str) or _same(incoming.api_key or "", api_key)

    def parse(self, body: bytes) -> _Incoming:
        document = _parse_json_object(body)
        msisdns = document.get("msisdns")
        if not isinstance(msisdns, list) or len(msisdns) != 1:
            raise _BadRequest("msisdns must be a list of one number")
        msisdn = str(msisdns[0]).strip().lstrip("+")
        if not msisdn.isdigit():
            raise _BadRequest("msisdns holds something that is not a number")
        return _Incoming(
            reference=_text_field(document, "tag", required=False),
            to=f"+{msisdn}",
            text=_text_field(document, "message"),
            sender="",
            api_key=_text_field(document, "apiKey", required=False),
        )

    def accepted(self, gateway_id: str, incoming: _Incoming) -> _Reply:
        return _json_reply(200, {"id": int(gateway_id), "status": "ok"})

    def error(self, status: int, code: str, detail: str) -> _Reply:
        return _json_reply(status, {"status": "error", "message": detail})

    def receipt_states(self, states: tuple[str, ...], incoming: _Incoming) -> tuple[str, ...]:
        # No word for enroute: only the final is reported.
        return tuple(state for state in states if state in self.WORDS)

    def post(self, plan: _Plan, state: str) -> requests.Response:
        document = {
            "messageId": int(plan.gateway_id),
            "statusDelivery": self.WORDS[state],
            "sendDate": plan.submitted_ms,
            "doneDate": int(time.time() * 1000),
            "carrier": "TELCEL",
        }
        return requests.post(
            plan.url,
            json=document,
            auth=(plan.dlr_login, plan.dlr_password),
            timeout=RECEIPT_TIMEOUT,
        )


class _Vibes(_Format):
    name = "vibes"
    #: state -> (type, isError, description, errorCode, internalErrorCode)
    RECEIPTS: ClassVar[dict[str, tuple[str, bool, str, str, str]]] = {
        # A carrier's success is delivery (SPEC 2.2): in progress is a System receipt.
        ENROUTE: ("System", False, "Sent to carrier", "", ""),
        DELIVERED: ("Handset", False, "Delivered", "", ""),
        UNDELIVERABLE: ("Carrier", True, "Undeliverable", "100", "255"),
        EXPIRED: ("Carrier", True, "expired", "101", "255"),
        REJECTED: ("Carrier", True, "Rejected by carrier", "102", "9"),
    }

    def new_id(self, counter: Iterator[int]) -> str:
        return str(uuid.uuid4())

    def parse(self, body: bytes) -> _Incoming:
        root = _parse_xml(body)
        if _local(root.tag) != "mtMessage":
            raise _BadRequest("the root element is not mtMessage")
        destination = _child(root, "destination")
        to = destination.get("address", "").strip() if destination is not None else ""
        if not to:
            raise _BadRequest("destination address is missing")
        source = _child(root, "source")
        text = _child(root, "text")
        option = _child(root, "receiptOption")
        return _Incoming(
            reference=root.get("submitterMessageId", "").strip(),
            to=to,
            text=(text.text or "") if text is not None else "",
            sender=source.get("address", "") if source is not None else "",
            callback_url=option.get("callbackUrl", "").strip() if option is not None else "",
            receipt_option=((option.text or "ALL") if option is not None else "NONE")
            .strip()
            .upper(),
            alternate_delivery=root.get("alternateDelivery", "").strip().lower() == "true",
        )

    def accepted(self, gateway_id: str, incoming: _Incoming) -> _Reply:
        return _xml_reply(200, ET.Element("mtMessageRsp", {"messageId": gateway_id}))

    def error(self, status: int, code: str, detail: str) -> _Reply:
        reply = _xml_reply(status, ET.Element("error", {"code": code, "description": detail}))
        if status == 401:
            reply.headers["WWW-Authenticate"] = 'Basic realm="vibes"'
        return reply

    def receipt_states(self, states: tuple[str, ...], incoming: _Incoming) -> tuple[str, ...]:
        if not incoming.callback_url:
            return ()
        match incoming.receipt_option:
            case "NONE":
                return ()
            case "FINAL":
                return tuple(s for s in states if s.removeprefix(ALT) in FINAL_STATES)
            case "ERROR":
                return tuple(s for s in states if s.removeprefix(ALT) in FAILED_STATES)
            case _:
                return states

    def receipt_url(self, api_base_url: str, carrier: str, incoming: _Incoming) -> str:
        return incoming.callback_url

    def post(self, plan: _Plan, state: str) -> requests.Response:
        attributes = {
            "messageId": plan.gateway_id,
            "submitterMessageId": plan.reference,
            "receiptDate": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if state == FORWARDED:
            # The original failed at the carrier and Vibes created the alternate (seed).
            attributes["fwdToMessageId"] = plan.alternate_id
            state = UNDELIVERABLE
        elif state.startswith(ALT):
            attributes["messageId"] = plan.alternate_id
            attributes["fwdFromMessageId"] = plan.gateway_id
            state = state.removeprefix(ALT)
        kind, is_error, description, error_code, internal_code = self.RECEIPTS[state]
        root = ET.Element("mtMessageResponse", attributes)
        ET.SubElement(root, "type").text = kind
        status = ET.SubElement(root, "status", {"isError": "true" if is_error else "false"})
        ET.SubElement(status, "description").text = description
        if error_code:
            ET.SubElement(status, "errorCode").text = error_code
        if internal_code:
            ET.SubElement(status, "internalErrorCode").text = internal_code
        body = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
        return requests.post(
            plan.url,
            data=body.encode("utf-8"),
            headers={"Content-Type": "application/xml"},
            timeout=RECEIPT_TIMEOUT,
        )


class _Ip2sms(_Format):
    name = "ip2sms"
    polled = True
    #: state -> (IP2SMS word, error text)
    WORDS: ClassVar[dict[str, tuple[str, str]]] = {
        ENROUTE: ("Enroute", ""),
        DELIVERED: ("Delivered", ""),
        UNDELIVERABLE: ("Undeliverable", "subscriber unreachable"),
        EXPIRED: ("Expired", "validity period expired"),
        REJECTED: ("Rejected", "rejected by operator"),
    }

    def parse(self, body: bytes) -> _Incoming:
        root = _parse_xml(body)
        if _local(root.tag) != "message":
            raise _BadRequest("the root element is not message")
        service = _child(root, "service")
        to = _child(root, "to")
        text = _child(root, "body")
        number = (to.text or "").strip() if to is not None else ""
        if not number:
            raise _BadRequest("to is missing")
        uniq_key = service.get("uniq_key", "").strip() if service is not None else ""
        ext_id = to.get("ext_id", "").strip() if to is not None else ""
        return _Incoming(
            reference=uniq_key or ext_id,
            to=number,
            text=(text.text or "") if text is not None else "",
            sender=service.get("source", "") if service is not None else "",
        )

    def status(
        self, gateway_id: str, reference: str, word: str, error: str, at: float, *, code: int = 200
    ) -> _Reply:
        """`<status id=".." date=".."><state error="..">Word</state></status>`."""
        attributes = {"id": gateway_id, "date": _rfc2822(at)}
        if reference:
            attributes["ext_id"] = reference
        root = ET.Element("status", attributes)
        ET.SubElement(root, "state", {"error": error}).text = word
        return _xml_reply(code, root)

    def accepted(self, gateway_id: str, incoming: _Incoming) -> _Reply:
        return self.status(gateway_id, incoming.reference, "Accepted", "", time.time())

    def rejected(self, gateway_id: str, incoming: _Incoming) -> _Reply:
        word, error = self.WORDS[REJECTED]
        return self.status(gateway_id, incoming.reference, word, error, time.time())

    def error(self, status: int, code: str, detail: str) -> _Reply:
        reply = _text_reply(status, detail)
        if status == 401:
            reply.headers["WWW-Authenticate"] = 'Basic realm="ip2sms"'
        return reply


FORMATS: dict[str, _Format] = {
    fmt.name: fmt for fmt in (_Smartswitch(), _Conceptomovil(), _Vibes(), _Ip2sms())
}


# --------------------------------------------------------------------------------------------
# Timers


class _Scheduler:
    """Runs callables after a delay on a few daemon worker threads."""

    def __init__(self, workers: int = 16) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._sequence = itertools.count()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._workers = workers
        self._started = False
        self._stopped = False

    def start(self) -> None:
        with self._cond:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._clock, name="sim-clock", daemon=True).start()
        for number in range(self._workers):
            threading.Thread(target=self._work, name=f"sim-receipts-{number}", daemon=True).start()

    def call_later(self, delay: float, job: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._sequence), job))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        for _ in range(self._workers):
            self._jobs.put(None)

    def _clock(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._jobs.put(heapq.heappop(self._heap)[2])

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopped:
                return
            try:
                job()
            except Exception:
                log.exception("simulator: a receipt job failed")


# --------------------------------------------------------------------------------------------
# HTTP


@dataclass(slots=True)
class _Routed:
    """A reply, how long to hold it back, and what to do once it is written."""

    reply: _Reply
    wait: float = 0.0
    after: Callable[[], None] | None = None


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, as a carrier's server: HTTP/1.0, one connection per request
    (a late answer after the client's read time-out then never meets its next try on a kept-alive
    connection), and the header names as sent (`SOAPAction`), which a WSGI environ does not keep."""

    protocol_version = "HTTP/1.0"
    server_version = "smsbridge-simulator/1"

    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ["simulator.headers"] = list(self.headers.items())
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("simulator: %s %s", self.requestline, code)


# --------------------------------------------------------------------------------------------
# The simulator


class Simulator:
    """The simulated carriers and back office, on one HTTP port."""

    def __init__(
        self,
        api_base_url: str,
        config: dict[str, Any],
        secrets: dict[str, Any],
        *,
        delay_ms: int = 300,
        late_ms: int = 2500,
        faults: Faults | None = None,
    ) -> None:
        self._api = api_base_url.rstrip("/")
        #: Injected faults (`make soak`): 5xx, late answers, duplicate/reordered/early receipts.
        self._faults = faults
        self._delay = max(delay_ms, 0) / 1000
        self._late = max(late_ms, 0) / 1000
        carrier_secrets = secrets.get("carriers") or {}
        #: carrier name -> (format, its configuration, its secrets)
        self._carriers: dict[str, tuple[_Format, dict[str, Any], dict[str, Any]]] = {}
        for name, settings in (config.get("carriers") or {}).items():
            fmt = FORMATS.get(str((settings or {}).get("format", "")))
            if fmt is None:
                log.warning("simulator: carrier %s has no known format; not simulated", name)
                continue
            self._carriers[name] = (fmt, dict(settings), dict(carrier_secrets.get(name) or {}))
        self._lock = threading.Lock()
        self._ids = _NUMERIC_IDS
        self._submissions: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        #: Every receipt post and how it was answered (the soak's story of a wrong final).
        self._receipts: list[dict[str, str]] = []
        #: (path, query) -> calls the back office received there (for `?fail=N`)
        self._back_office_calls: dict[tuple[str, str], int] = {}
        #: (carrier, reference) -> tries seen / carrier id of the taken message / held receipts
        self._tries: dict[tuple[str, str], int] = {}
        self._taken: dict[tuple[str, str], str] = {}
        self._held: dict[tuple[str, str], _Plan] = {}
        #: (carrier, carrier id) -> IP2SMS state of the message
        self._timelines: dict[tuple[str, str], _Timeline] = {}
        #: carrier -> when its outage ends (time.monotonic()), `POST /_sim/outage/{carrier}`
        self._outages: dict[str, float] = {}
        self._stopping = threading.Event()
        self._scheduler = _Scheduler()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._url = ""

    # ---- life cycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in a daemon thread; returns the base URL."""
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("the simulator was already started")
        self._scheduler.start()
        server = make_server(host, port, self._app, threaded=True, request_handler=_RequestHandler)
        self._server = server
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self._url = f"http://{shown}:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="simulator",
            daemon=True,
        )
        self._thread.start()
        return self._url

    def stop(self) -> None:
        """Stop the server and forget pending receipts; idempotent."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        self._scheduler.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the simulator is not started")
        return self._url

    # ---- what was recorded

    def submissions(self) -> list[dict[str, Any]]:
        """Every submission the carriers received (dropped repeats with taken=False)."""
        with self._lock:
            return copy.deepcopy(self._submissions)

    def receipts(self) -> list[dict[str, str]]:
        """Every receipt posted: carrier, gateway_id, reference, state, at, and the answer
        (an HTTP status, or the name of the error when none came)."""
        with self._lock:
            return copy.deepcopy(self._receipts)

    def callbacks(self) -> list[dict[str, Any]]:
        """Every OFSC set_message_status call and JSON callback received, with headers."""
        with self._lock:
            return copy.deepcopy(self._callbacks)

    def reset(self) -> None:
        """Forget the recorded submissions and callbacks and the references already taken.

        Receipts already on their way and IP2SMS message states are kept, so that messages in
        flight still finish.
        """
        with self._lock:
            self._submissions.clear()
            self._receipts.clear()
            self._callbacks.clear()
            self._back_office_calls.clear()
            self._tries.clear()
            self._taken.clear()
            self._outages.clear()  # and any carrier outage

    def _fault(self, name: str) -> bool:
        if self._faults is None:
            return False
        rate: float = getattr(self._faults.rates, name)
        return self._faults.roll(name, rate)

    # ---- HTTP

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        method = request.method.upper()
        target = str(environ.get("RAW_URI") or request.full_path)
        headers = Headers(environ.get("simulator.headers") or list(request.headers.items()))
        try:
            body = request.get_data()
        except RequestEntityTooLarge:
            routed = _Routed(_text_reply(413, "request body too large"))
        except (ValueError, OSError):
            routed = _Routed(_text_reply(400, "unreadable request body"))
        else:
            try:
                routed = self._route(method, target, headers, body)
            except Exception:
                log.exception("simulator: %s %s failed", method, urlsplit(target).path)
                routed = _Routed(_text_reply(500, "internal error"))
        if routed.wait > 0:
            self._stopping.wait(routed.wait)
        reply = routed.reply
        response = Response(reply.body, reply.status, content_type=reply.content_type)
        for name, value in reply.headers.items():
            response.headers[name] = value
        if routed.after is not None:
            response.call_on_close(routed.after)
        return response(environ, start_response)

    # ---- routing

    def _route(self, method: str, target: str, headers: Headers, body: bytes) -> _Routed:
        split = urlsplit(target)
        parts = [unquote(part) for part in split.path.strip("/").split("/")]
        query = parse_qs(split.query)
        if parts[0] == "_sim":
            return self._route_sim(method, split.path, parts[1:], query, split.query, headers, body)
        if len(parts) == 2 and parts[0] in self._carriers:
            fmt, settings, creds = self._carriers[parts[0]]
            if parts[1] == "send" or (parts[1] == "status" and fmt.polled):
                if method != "POST":
                    return _Routed(_text_reply(405, "method not allowed"))
                authorization = headers.get("Authorization")
                if parts[1] == "status":
                    return _Routed(self._status(parts[0], fmt, creds, authorization, body))
                return self._submit(parts[0], fmt, settings, creds, authorization, body)
        return _Routed(_text_reply(404, "not found"))

    def _route_sim(
        self,
        method: str,
        path: str,
        parts: list[str],
        query: dict[str, list[str]],
        raw_query: str,
        headers: Headers,
        body: bytes,
    ) -> _Routed:
        name = parts[0] if parts else ""
        if name == "outage":
            return _Routed(self._outage(method, parts[1:], query))
        recorded = {
            "submissions": self.submissions,
            "receipts": self.receipts,
            "callbacks": self.callbacks,
        }
        if name not in (*recorded, "reset", "ofsc", "callback") or (
            name != "callback" and len(parts) != 1
        ):
            return _Routed(_text_reply(404, "not found"))
        if method != ("GET" if name in recorded else "POST"):
            return _Routed(_text_reply(405, "method not allowed"))
        if name in recorded:
            return _Routed(_json_reply(200, _filtered(recorded[name](), query)))
        if name == "reset":
            self.reset()
            return _Routed(_json_reply(200, {"status": "ok"}))
        back_office = self._ofsc if name == "ofsc" else self._json_callback
        return _Routed(back_office(path, raw_query, query, headers, body))

    # ---- carrier outages

    def outage(self, carrier: str, seconds: float) -> None:
        """Make `carrier`'s submit endpoint answer 503 for `seconds` (0 ends an outage)."""
        with self._lock:
            if seconds > 0:
                self._outages[carrier] = time.monotonic() + seconds
            else:
                self._outages.pop(carrier, None)

    # ---- carriers

    def _submit(
        self,
        carrier: str,
        fmt: _Format,
        settings: dict[str, Any],
        creds: dict[str, Any],
        authorization: str | None,
        body: bytes,
    ) -> _Routed:
        if not fmt.authorized(authorization, creds):
            return _Routed(fmt.error(401, "authentication", "bad credentials"))
        try:
            incoming = fmt.parse(body)
        except _BadRequest as exc:
            return _Routed(fmt.error(400, "invalid_parameter", str(exc)))
        if not fmt.body_authorized(incoming, creds):
            return _Routed(fmt.error(401, "authentication", "bad credentials"))
        outcome = outcome_for(incoming.to, str(settings.get("sender_type") or "SC"))
        key = (carrier, incoming.reference or f"~{uuid.uuid4()}")
        with self._lock:
            if self._outages.get(carrier, 0.0) > time.monotonic():
                self._record(carrier, incoming, taken=False, gateway_id="", answer="outage")
                return _Routed(fmt.error(503, "unavailable", "service temporarily unavailable"))
            tries = self._tries[key] = self._tries.get(key, 0) + 1
            gateway_id = self._taken.get(key)
            chaos_5xx = gateway_id is None and self._fault("carrier_5xx")
            if gateway_id is None and (tries <= outcome.unavailable or chaos_5xx):
                self._record(carrier, incoming, taken=False, gateway_id="", answer="unavailable")
                reply = fmt.error(503, "unavailable", "service temporarily unavailable")
                return _Routed(reply)
            if gateway_id is None and outcome.reject:
                # IP2SMS answers a refusal with an id whose status stays Rejected.
                refused_id = fmt.new_id(self._ids) if fmt.polled else ""
                if refused_id:
                    timeline = _Timeline((REJECTED,), time.time(), time.time() - self._delay)
                    self._timelines[(carrier, refused_id)] = timeline
                self._record(
                    carrier, incoming, taken=False, gateway_id=refused_id, answer="rejected"
                )
                return _Routed(fmt.rejected(refused_id, incoming))
            taken = gateway_id is None
            if gateway_id is None:
                gateway_id = fmt.new_id(self._ids)
                self._taken[key] = gateway_id
                self._held[key] = self._plan(
                    carrier,
                    fmt,
                    creds=creds,
                    gateway_id=gateway_id,
                    incoming=incoming,
                    outcome=outcome,
                )
            self._record(
                carrier,
                incoming,
                taken=taken,
                gateway_id=gateway_id,
                answer="accepted" if taken else "repeat",
            )
            late = tries <= outcome.late or (taken and self._fault("carrier_timeout"))
            plan = None if late else self._held.pop(key, None)
            early = outcome.before_answer
            if plan is not None and self._faults is not None and not fmt.polled:
                plan.states, chaos_early = self._faults.receipts(plan.states)
                early = early or chaos_early
        reply = fmt.accepted(gateway_id, incoming)
        if late:
            return _Routed(reply, wait=self._late)
        if plan is None:
            return _Routed(reply)
        if early:
            self._release(plan, now=True)
            return _Routed(reply)
        return _Routed(reply, after=partial(self._release, plan))

    def _outage(self, method: str, parts: list[str], query: dict[str, list[str]]) -> _Reply:
        """`POST /_sim/outage/{carrier}?seconds=N`: its submit endpoint answers 503 for N
        seconds; `DELETE` ends the outage early."""
        if len(parts) != 1 or parts[0] not in self._carriers:
            return _text_reply(404, "not found")
        carrier = parts[0]
        if method == "DELETE":
            self.outage(carrier, 0)
            return _json_reply(200, {"carrier": carrier, "outage_seconds": 0})
        if method != "POST":
            return _text_reply(405, "method not allowed")
        try:
            seconds = float((query.get("seconds") or [""])[-1])
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= 86_400:
            return _text_reply(400, "seconds must be a number of seconds above 0 (at most a day)")
        self.outage(carrier, seconds)
        return _json_reply(200, {"carrier": carrier, "outage_seconds": seconds})

    def _plan(
        self,
        carrier: str,
        fmt: _Format,
        *,
        creds: dict[str, Any],
        gateway_id: str,
        incoming: _Incoming,
        outcome: Outcome,
    ) -> _Plan:
        receipts = outcome.receipts
        alternate_id = ""
        if outcome.forwarding is not None and incoming.alternate_delivery:
            receipts, alternate_id = outcome.forwarding, fmt.new_id(self._ids)
        plan = _Plan(
            carrier=carrier,
            fmt=fmt,
            gateway_id=gateway_id,
            reference=incoming.reference,
            states=fmt.receipt_states(receipts, incoming),
            url=fmt.receipt_url(self._api, carrier, incoming),
            dlr_login=str(creds.get("dlr_login") or ""),
            dlr_password=str(creds.get("dlr_password") or ""),
            submitted_ms=int(time.time() * 1000),
            alternate_id=alternate_id,
        )
        if fmt.polled:
            plan.timeline = _Timeline(plan.states, time.time())
            self._timelines[(carrier, gateway_id)] = plan.timeline
        return plan

    def _record(
        self, carrier: str, incoming: _Incoming, *, taken: bool, gateway_id: str, answer: str
    ) -> None:
        self._submissions.append(
            {
                "carrier": carrier,
                "reference": incoming.reference,
                "to": incoming.to,
                "text": incoming.text,
                "sender": incoming.sender,
                "taken": taken,
                "gateway_id": gateway_id,
                "at": _now_iso(),
                "answer": answer,
                "alternate_delivery": incoming.alternate_delivery,
            }
        )

    def _release(self, plan: _Plan, *, now: bool = False) -> None:
        """Start the receipts of a submission: at once and in this thread when `now`."""
        if plan.timeline is not None:
            with self._lock:
                plan.timeline.started = time.time() - (self._delay if now else 0.0)
            return
        if not plan.states:
            return
        if now:
            for index, state in enumerate(plan.states):
                if not self._post_receipt(plan, state):
                    # Not answered: posted again like any receipt, and the rest after it.
                    retry = partial(self._post_chain, plan, index, 1)
                    self._scheduler.call_later(1.0, retry)
                    return
            return
        self._scheduler.call_later(self._delay, partial(self._post_chain, plan, 0))

    def _post_chain(self, plan: _Plan, index: int, attempt: int = 0) -> None:
        """Post receipt `index`, then schedule the next one `delay_ms` after it finished.

        Like a carrier, post a receipt again after a time-out or a 5xx (RECEIPT_RETRIES times,
        1, 2, 4 ... seconds apart) before moving on.
        """
        if self._stopping.is_set():
            return
        posted = self._post_receipt(plan, plan.states[index])
        if not posted and attempt < RECEIPT_RETRIES:
            retry = partial(self._post_chain, plan, index, attempt + 1)
            self._scheduler.call_later(float(2**attempt), retry)
            return
        if index + 1 < len(plan.states):
            self._scheduler.call_later(self._delay, partial(self._post_chain, plan, index + 1))

    def _post_receipt(self, plan: _Plan, state: str) -> bool:
        """False when the receipt is worth posting again (no answer, or a 5xx)."""
        at, what = _now_iso(), f"receipt {state} for {plan.carrier} {plan.gateway_id}"
        try:
            response = plan.fmt.post(plan, state)
        except requests.RequestException as exc:
            if self._stopping.is_set():
                return True
            self._posted(plan, state, at, type(exc).__name__)
            # The exception's text may hold the URL and its query (the DLR password): not logged.
            log.warning("simulator: %s not posted: %s", what, type(exc).__name__)
            return False
        if response is not None:
            self._posted(plan, state, at, str(response.status_code))
        if response is not None and not response.ok:
            log.warning("simulator: %s answered HTTP %s", what, response.status_code)
            return response.status_code < 500
        return True

    def _posted(self, plan: _Plan, state: str, at: str, answer: str) -> None:
        with self._lock:
            self._receipts.append(
                {
                    "carrier": plan.carrier,
                    "gateway_id": plan.gateway_id,
                    "reference": plan.reference,
                    "state": state,
                    "at": at,
                    "answer": answer,
                }
            )

    def _status(
        self,
        carrier: str,
        fmt: _Format,
        creds: dict[str, Any],
        authorization: str | None,
        body: bytes,
    ) -> _Reply:
        """IP2SMS status request: `<request id="..">status</request>`."""
        if not fmt.authorized(authorization, creds):
            return fmt.error(401, "authentication", "bad credentials")
        try:
            root = _parse_xml(body)
        except _BadRequest as exc:
            return fmt.error(400, "invalid_parameter", str(exc))
        raw_id = root.get("id", "").strip()
        if _local(root.tag) != "request" or not raw_id:
            return fmt.error(400, "invalid_parameter", 'expected <request id="..">status</request>')
        gateway_id = raw_id.lstrip("0") or "0"
        now = time.time()
        with self._lock:
            found = self._timelines.get((carrier, gateway_id))
            state = self._state_at(found, now) if found is not None else None
        if state is None or not isinstance(fmt, _Ip2sms):
            return _Ip2sms().status(raw_id, "", "Unknown", "message not found", now, code=404)
        word, error, at = state
        return fmt.status(raw_id, "", word, error, at)

    def _state_at(self, timeline: _Timeline, now: float) -> tuple[str, str, float]:
        """(IP2SMS word, error text, time of that state) of a timeline at `now`."""
        if timeline.started is None or not timeline.states:
            return "Accepted", "", timeline.accepted_at
        step = max(self._delay, 0.001)
        count = int((now - timeline.started) / step)
        if count <= 0:
            return "Accepted", "", timeline.accepted_at
        index = min(count, len(timeline.states)) - 1
        # A status API never leaves a final state: later steps (repeats) do not show.
        first_final = next(
            (i for i, state in enumerate(timeline.states) if state in FINAL_STATES), index
        )
        index = min(index, first_final)
        word, error = _Ip2sms.WORDS[timeline.states[index]]
        return word, error, timeline.started + (index + 1) * step

    # ---- back office

    def _back_office_call(
        self,
        kind: str,
        path: str,
        raw_query: str,
        query: dict[str, list[str]],
        headers: Headers,
        body: bytes,
    ) -> tuple[dict[str, Any], int | None]:
        """A back-office call's record, and the error status to answer it with, per
        `?fail=N|always` (counted per path and query)."""
        fail = (query.get("fail") or [""])[-1].strip().lower()
        key = (path, raw_query)
        with self._lock:
            calls = self._back_office_calls[key] = self._back_office_calls.get(key, 0) + 1
        failing = 503 if fail == "always" else None
        if fail.isdigit() and calls <= int(fail):
            failing = 500
        entry = {"kind": kind, "path": path, "query": raw_query, "headers": dict(headers.items())}
        entry.update(body=body.decode("utf-8", "replace"), at=_now_iso())
        return entry, failing

    def _record_call(self, entry: dict[str, Any], answered: int) -> None:
        entry["answered"] = answered
        with self._lock:
            self._callbacks.append(entry)

    def _ofsc(
        self,
        path: str,
        raw_query: str,
        query: dict[str, list[str]],
        headers: Headers,
        body: bytes,
    ) -> _Reply:
        """OFSC `set_message_status`: record it and answer per message (`OK`, or `?code=`).

        `?fail=N` answers the first N calls with a SOAP Fault (HTTP 500), `?fail=always` with 503.
        """
        entry, failing = self._back_office_call("ofsc", path, raw_query, query, headers, body)
        entry.update(operation="", messages=[], user={})
        try:
            root = _parse_xml(body)
        except _BadRequest:
            root = None
        if root is not None:
            body_element = _child(root, "Body")
            operation = body_element[0] if body_element is not None and len(body_element) else None
            entry["operation"] = _local(operation.tag) if operation is not None else ""
            entry["messages"] = [
                {_local(item.tag): (item.text or "").strip() for item in element}
                for element in root.iter()
                if _local(element.tag) == "message"
            ]
            user = next((e for e in root.iter() if _local(e.tag) == "user"), None)
            if user is not None:
                entry["user"] = {_local(item.tag): (item.text or "").strip() for item in user}
        if root is None or failing is not None:
            reason = "the request is not XML" if root is None else "simulated back-office failure"
            fault = (
                "<SOAP-ENV:Fault><faultcode>SOAP-ENV:"
                f"{'Client' if root is None else 'Server'}</faultcode>"
                f"<faultstring>{reason}</faultstring></SOAP-ENV:Fault>"
            )
            status = 500 if root is None or failing is None else failing
            self._record_call(entry, status)
            return _Reply(status, _envelope(fault), "text/xml; charset=utf-8")
        code = escape((query.get("code") or ["OK"])[-1])
        answers = "".join(
            f"<message_response><message_id>{escape((element.text or '').strip())}</message_id>"
            f"<result><code>{code}</code></result></message_response>"
            for element in root.iter()
            if _local(element.tag) == "message_id"
        )
        response = f"<urn:set_message_status_response>{answers}</urn:set_message_status_response>"
        self._record_call(entry, 200)
        return _Reply(200, _envelope(response), "text/xml; charset=utf-8")

    def _json_callback(
        self,
        path: str,
        raw_query: str,
        query: dict[str, list[str]],
        headers: Headers,
        body: bytes,
    ) -> _Reply:
        """A JSON `callback_url` call: record it (raw body kept for signature checks).

        `?fail=N` answers 500 to the first N calls to this path and query, `?fail=always` 503.
        """
        entry, failing = self._back_office_call("json", path, raw_query, query, headers, body)
        try:
            entry["json"] = json.loads(entry["body"])
        except ValueError:
            entry["json"] = None
        self._record_call(entry, failing or 200)
        return _text_reply(failing or 200, "simulated failure" if failing else "OK")


def _envelope(content: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV_NS}" xmlns:urn="{OFSC_NS}">'
        f"<SOAP-ENV:Body>{content}</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    ).encode()


def _filtered(items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Keep the items whose fields equal every query parameter (`?carrier=vibes&taken=true`)."""
    wanted = {name: values[-1].lower() for name, values in query.items() if values}
    return [
        item
        for item in items
        if all(str(item.get(name)).lower() == value for name, value in wanted.items())
    ]


__all__ = ["Outcome", "Simulator", "outcome_for"]
