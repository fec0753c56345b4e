"""Credential checks and the callback signature."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from smsbridge import auth
from smsbridge.auth import credentials_match, equals, hmac_sha256_hex


@pytest.mark.parametrize(
    ("given", "expected", "result"),
    [
        ("demo-token", "demo-token", True),
        ("demo-token ", "demo-token", False),
        ("Demo-token", "demo-token", False),
        ("demo", "demo-token", False),
        ("", "demo-token", False),
        (None, "demo-token", False),
        # An unset secret never matches, not even an empty answer.
        ("", "", False),
        (None, "", False),
        ("anything", "", False),
        ("contraseña", "contraseña", True),
    ],
)
def test_equals(given: str | None, expected: str, result: bool) -> None:
    assert equals(given, expected) is result


@pytest.mark.parametrize(
    ("login", "password", "result"),
    [
        ("smartswitch", "smartswitch-secret", True),
        ("smartswitch", "wrong", False),
        ("wrong", "smartswitch-secret", False),
        ("wrong", "wrong", False),
        (None, "smartswitch-secret", False),
        ("smartswitch", None, False),
        (None, None, False),
    ],
)
def test_credentials_match(login: str | None, password: str | None, result: bool) -> None:
    assert credentials_match(login, password, "smartswitch", "smartswitch-secret") is result


def test_credentials_match_never_matches_unset_credentials() -> None:
    assert not credentials_match("", "", "", "")
    assert not credentials_match("login", "", "login", "")


def test_credentials_match_always_compares_both_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong login must not skip the password comparison (timing would tell)."""
    compared: list[tuple[str | None, str]] = []
    real = auth.equals

    def spy(given: str | None, expected: str) -> bool:
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(auth, "equals", spy)
    assert not auth.credentials_match("nobody", "guess", "ofsc", "ofsc-secret")
    assert compared == [("nobody", "ofsc"), ("guess", "ofsc-secret")]


def test_hmac_sha256_hex_known_vector() -> None:
    # RFC 4231, test case 2.
    assert (
        hmac_sha256_hex("Jefe", b"what do ya want for nothing?")
        == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_hmac_sha256_hex_signs_the_callback_body() -> None:
    body = b'{"message_id":"demo-0001","status":"delivered"}'
    signature = hmac_sha256_hex("demo-callback-secret", body)
    expected = hmac.new(b"demo-callback-secret", body, hashlib.sha256).hexdigest()
    assert signature == expected
    assert len(signature) == 64
    assert signature != hmac_sha256_hex("other-secret", body)
    assert signature != hmac_sha256_hex("demo-callback-secret", body + b" ")
