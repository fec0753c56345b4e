"""Signed JSON callbacks that cannot be replayed (SPEC 3.2), in the form webhook users know from
Stripe, Twilio and Standard Webhooks.

    X-Smsbridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<event id>.<raw body>">
    X-Smsbridge-Event-Id: <random id, the same on every retry of one event>

The key is the client's `callback_secret`. The time and the event id are inside the signed
text, so a captured callback sent again later fails the time window, and one sent again under a
new event id (to pass the receiver's de-duplication) fails the signature. Every try of an event
is signed afresh with the time of that try; the event id stays the same.

`verify` is the reference implementation of the receiving side (the README shows the same in ten
lines); the tests and the local tools use it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Smsbridge-Signature"
EVENT_ID_HEADER = "X-Smsbridge-Event-Id"
#: How far a receiver should let the signed time stray from its clock.
TOLERANCE_SECONDS = 300
SCHEME = "v1"


def new_event_id() -> str:
    """A random event id (128 bits): nobody can guess the next one."""
    return f"evt_{secrets.token_hex(16)}"


def _mac(secret: str, timestamp: int, event_id: str, body: bytes) -> str:
    signed = f"{timestamp}.{event_id}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, event_id: str, body: bytes, timestamp: int) -> str:
    """The `X-Smsbridge-Signature` value for one try of one event."""
    return f"t={timestamp},{SCHEME}={_mac(secret, timestamp, event_id, body)}"


def verify(
    secret: str,
    header: str,
    event_id: str,
    body: bytes,
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """True when `header` signs (`t`, `event_id`, `body`) with `secret` and `t` lies within
    `tolerance` seconds of `now`. Several `v1` values (a secret being rotated) are allowed."""
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and timestamp is None:
            timestamp = int(value)
        elif key == SCHEME and value:
            given.append(value)
    if timestamp is None or not given or abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, event_id, body)
    return any(hmac.compare_digest(expected.encode(), value.encode()) for value in given)
