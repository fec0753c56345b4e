"""Constant-time credential checks: a failed check costs the same, whether the login exists
or not."""

from __future__ import annotations

import hashlib
import hmac


def equals(given: str | None, expected: str) -> bool:
    """Compare two secrets in constant time (None never matches, but costs the same)."""
    probe = (given or "").encode("utf-8")
    ok = hmac.compare_digest(probe, expected.encode("utf-8"))
    return ok and given is not None and expected != ""


def credentials_match(
    given_login: str | None,
    given_password: str | None,
    expected_login: str,
    expected_password: str,
) -> bool:
    """Both parts are always compared, so timing does not tell which one was wrong."""
    login_ok = equals(given_login, expected_login)
    password_ok = equals(given_password, expected_password)
    return login_ok & password_ok


def hmac_sha256_hex(secret: str, payload: bytes) -> str:
    """Signature for JSON callbacks: `X-Smsbridge-Signature: sha256=<this>`."""
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
