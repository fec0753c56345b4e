"""Constant-time credential checks: a failed check costs the same, whether the login exists
or not."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from smsbridge.config import ClientConfig
from smsbridge.web import HttpRequest


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
    """HMAC-SHA256 of `payload` with `secret`, in hex."""
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def json_client_of(
    request: HttpRequest, clients: Iterable[ClientConfig], kinds: tuple[str, ...] = ("json",)
) -> ClientConfig | None:
    """The client of one of `kinds` a request authenticates as (Bearer token or Basic), None
    when none does (support clients use the JSON API's credentials too).

    Every such client is compared, so the time taken does not depend on which one matched.
    """
    token = request.bearer_token()
    basic = request.basic_auth()
    found: ClientConfig | None = None
    for client in clients:
        if client.kind not in kinds:
            continue
        by_token = token is not None and equals(token, client.token)
        by_basic = basic is not None and credentials_match(
            basic[0], basic[1], client.login, client.password
        )
        if by_token or by_basic:
            found = client
    return found
