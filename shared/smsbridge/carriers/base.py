"""What every carrier format module provides, and the values that cross that boundary.

A format module (`smsbridge.carriers.<format>`) owns its protocol in both directions: submitting a
message, polling its status (where the carrier is polled), reading delivery receipts posted to
`/dlr/{carrier}` and answering them in the carrier's own shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from smsbridge import bounds
from smsbridge.config import CarrierConfig
from smsbridge.statuses import Status
from smsbridge.web import HttpAnswer, HttpRequest

if TYPE_CHECKING:
    import requests


@dataclass(frozen=True, slots=True)
class Submission:
    """One message as a carrier receives it."""

    #: smsbridge's id of the message: the carrier-side reference key, the same on every try.
    reference: str
    #: E.164, with the leading '+'.
    to: str
    text: str
    sender: str
    #: ISO 3166 alpha-2 region of `to` (Concepto Móvil wants it), '' when unknown.
    country: str = ""
    validity_minutes: int | None = None
    alternate_delivery: bool = False
    #: Where the carrier should post receipts for this message ('' when it is polled).
    receipt_url: str = ""
    #: The client's own message id (Vibes keeps the submitter id across an alternate).
    client_message_id: str = ""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The carrier accepted the submission."""

    gateway_id: str
    #: The carrier's raw answer state ("Accepted", "accepted", "ok" ...).
    gateway_status: str
    status: Status = Status.SUBMITTED
    #: The carrier's own time of that state, where its answer gives one (IP2SMS `date`).
    at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gateway_status", bounds.GATEWAY_STATUS.cut(self.gateway_status))


class SubmitError(Exception):
    """The submission did not go through."""

    def __init__(
        self, description: str, *, gateway_status: str = "", gateway_error: str = ""
    ) -> None:
        super().__init__(description)
        #: The carrier's words, cut to their bounds (`smsbridge.bounds`).
        self.description = bounds.DESCRIPTION.cut(description)
        self.gateway_status = bounds.GATEWAY_STATUS.cut(gateway_status)
        self.gateway_error = bounds.GATEWAY_ERROR.cut(gateway_error)


class TransientSubmitError(SubmitError):
    """5xx, 429, connection error or time-out: try again later with the same reference.

    `unwell`: the failure says the carrier itself is unwell (5xx, time-out, refused connection),
    so it counts towards opening its circuit (SPEC 4.3); a 429 or an unreadable answer does not.
    """

    def __init__(
        self,
        description: str,
        *,
        gateway_status: str = "",
        gateway_error: str = "",
        unwell: bool = False,
    ) -> None:
        super().__init__(description, gateway_status=gateway_status, gateway_error=gateway_error)
        self.unwell = unwell


class PermanentSubmitError(SubmitError):
    """4xx or an error state: trying again cannot help. `status` is the final status to record."""

    def __init__(
        self,
        description: str,
        *,
        gateway_status: str = "",
        gateway_error: str = "",
        status: Status = Status.FAILED,
    ) -> None:
        super().__init__(description, gateway_status=gateway_status, gateway_error=gateway_error)
        self.status = status


class PollError(Exception):
    """A status poll failed (time-out, 5xx, garbage, unknown state): poll again later."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt (or polled status) in canonical form."""

    #: The carrier's message id, normalised with the format's `normalise_id`.
    gateway_id: str
    #: The carrier's own status word, as received.
    gateway_status: str
    status: Status
    #: The carrier's time of the event (doneDate, receiptDate ...), None when not given.
    at: datetime | None = None
    #: The carrier's error code(s), '' when none.
    gateway_error: str = ""
    description: str = ""
    #: The carrier's new id for a message it forwarded by itself (Vibes `fwdToMessageId`).
    forwarded_to: str = ""
    #: The carrier id this message was forwarded from (Vibes `fwdFromMessageId`).
    forwarded_from: str = ""
    #: Smartswitch `request_id`, echoed in the answer.
    request_id: str | None = None
    #: Other fields the format read; what is kept of each: smsbridge.receipts.RECEIPT_EXTRA_*.
    extra: dict[str, str] = field(default_factory=dict)
    #: Fields the carrier's documentation requires but this receipt lacks (still applied).
    missing_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """A carrier's text is bounded here, once for every format: cut to its bound and
        marked as cut (`smsbridge.bounds`)."""
        for name, bound in _RECEIPT_BOUNDS.items():
            value = getattr(self, name)
            if bound.problem(value):
                object.__setattr__(self, name, bound.cut(value))
        if any(
            _EXTRA_BOUNDS.get(k, bounds.RECEIPT_EXTRA).problem(v) for k, v in self.extra.items()
        ):
            cut = {
                k: _EXTRA_BOUNDS.get(k, bounds.RECEIPT_EXTRA).cut(v) for k, v in self.extra.items()
            }
            object.__setattr__(self, "extra", cut)


_RECEIPT_BOUNDS = {
    "gateway_status": bounds.GATEWAY_STATUS,
    "gateway_error": bounds.GATEWAY_ERROR,
    "description": bounds.DESCRIPTION,
}
#: `Receipt.extra` keys with a bound of their own (every other one: `bounds.RECEIPT_EXTRA`).
_EXTRA_BOUNDS = {"carrier": bounds.OPERATOR, "receipt_date": bounds.CARRIER_TIME_TEXT}


#: A carrier id is refused above this many bytes (UTF-8): the pointer item's key
#: `gw#{carrier}#{id}` must stay well inside DynamoDB's 2,048-byte partition key limit.
MAX_GATEWAY_ID_BYTES = 256


def receipt_gateway_id(value: str, where: str = "") -> str:
    """A carrier id read from a receipt, refused (MalformedReceipt) when it cannot be a key."""
    if len(value.encode("utf-8", "surrogatepass")) > MAX_GATEWAY_ID_BYTES:
        raise MalformedReceipt(f"{where}the message id is longer than {MAX_GATEWAY_ID_BYTES} bytes")
    if not value.isprintable():
        raise MalformedReceipt(f"{where}the message id holds control characters")
    return value


class ReceiptError(Exception):
    """A receipt request that is refused; answered in the format's own shape."""

    status_code = 400
    code = "invalid_parameter"
    title = "Invalid parameter"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ReceiptAuthError(ReceiptError):
    status_code = 401
    code = "authentication"
    title = "Authentication error"


class MalformedReceipt(ReceiptError):
    status_code = 400
    code = "invalid_parameter"
    title = "Invalid parameter"


class UnsupportedMediaType(ReceiptError):
    status_code = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class PayloadTooLarge(ReceiptError):
    status_code = 413
    code = "payload_too_large"
    title = "Payload too large"


class ReceiptUnavailable(ReceiptError):
    """smsbridge could not take the receipt now (an internal failure): a 5xx in the format's own
    shape, so the carrier posts it again later; applying it twice is harmless."""

    status_code = 503
    code = "internal_error"
    title = "Internal error"


class CarrierFormat(Protocol):
    """The interface of a format module (each module implements these as functions)."""

    def submit(
        self, session: requests.Session, carrier: CarrierConfig, submission: Submission
    ) -> SubmitResult: ...

    def normalise_id(self, raw: str) -> str: ...

    def read_receipts(self, request: HttpRequest, carrier: CarrierConfig) -> list[Receipt]: ...

    def answer_receipts(self, receipts: list[Receipt]) -> HttpAnswer: ...

    def answer_error(self, error: ReceiptError) -> HttpAnswer: ...


def post_submission(
    session: requests.Session,
    carrier: CarrierConfig,
    *,
    body: bytes,
    headers: Mapping[str, str],
    accepted: Callable[[requests.Response], SubmitResult],
    refused: Callable[[requests.Response], PermanentSubmitError],
    auth: tuple[str, str] | None = None,
) -> SubmitResult:
    """POST one submission to `carrier.submit_url` and classify the outcome.

    `accepted` reads a 2xx answer, `refused` turns any other 4xx into the carrier's error.
    Connection errors, time-outs, 5xx and 429 are transient, and so is anything that goes wrong
    while reading an answer: the carrier may have taken the message, and the retry reuses the
    reference key. Only TransientSubmitError and PermanentSubmitError ever leave this function,
    and their texts name the carrier and the kind of failure, never a URL or a credential.
    The rules are those of docs/carrier-protocols.md.
    """
    import requests  # here, where a call is made: receipts and intake never import it

    try:
        response = session.post(
            carrier.submit_url,
            data=body,
            headers=dict(headers),
            auth=auth,
            timeout=(carrier.connect_timeout, carrier.read_timeout),
        )
    except requests.Timeout as exc:
        raise TransientSubmitError(f"{carrier.name}: submission timed out", unwell=True) from exc
    except requests.ConnectionError as exc:
        raise TransientSubmitError(f"{carrier.name}: connection failed", unwell=True) from exc
    except (
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidURL,
        requests.exceptions.URLRequired,
    ) as exc:
        raise PermanentSubmitError(f"{carrier.name}: submit_url is not a usable URL") from exc
    except Exception as exc:
        raise TransientSubmitError(
            f"{carrier.name}: submission failed ({type(exc).__name__})"
        ) from exc

    code = response.status_code
    if code >= 500 or code == 429:
        raise TransientSubmitError(
            f"{carrier.name} answered HTTP {code}", gateway_error=str(code), unwell=code >= 500
        )
    if not (200 <= code < 300 or 400 <= code < 500):
        raise TransientSubmitError(
            f"{carrier.name}: unexpected HTTP {code}", gateway_error=str(code)
        )
    try:
        if code < 300:
            return accepted(response)
        error = refused(response)
    except SubmitError:
        raise
    except Exception as exc:
        if code >= 400:
            raise PermanentSubmitError(
                f"{carrier.name} refused the message (HTTP {code})", gateway_error=str(code)
            ) from exc
        raise TransientSubmitError(
            f"{carrier.name}: unreadable answer ({type(exc).__name__})"
        ) from exc
    raise error
