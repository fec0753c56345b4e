"""Callback URLs that cannot reach inside: https only, public addresses only (SPEC 3.2).

A callback URL is refused when it is not https, carries credentials, or names or resolves to an
address that is not globally routable (loopback, private, link-local and so the cloud metadata
service, carrier-grade NAT, reserved, multicast, unspecified; IPv4-mapped IPv6 is unwrapped).
A client may list hosts it is allowed to use anyway (`callback_hosts_allowed`, for local use):
those may also be plain http. Intake checks once; notify checks again before each call, since a
name can be re-pointed after it was accepted.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import SplitResult, urlsplit

Resolver = Callable[[str, int], Iterable[str]]

MAX_URL_LENGTH = 2048
_INSIDE = "callback_url must not point at a loopback, private or reserved address"


class RefusedUrl(ValueError):
    """The URL may not be called; the message says why."""


class UnresolvedHost(OSError):
    """The host name does not resolve now (notify retries later)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (UnresolvedHost when none)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvedHost(f"{host} does not resolve") from exc
    return [str(info[4][0]) for info in infos]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise RefusedUrl("callback_url must be a URL of at most 2048 characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise RefusedUrl("callback_url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise RefusedUrl("callback_url is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RefusedUrl("callback_url must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("callback_url must not carry credentials")
    return parts


def check(
    url: str,
    allowed_hosts: Iterable[str] = (),
    *,
    resolver: Resolver | None = resolve,
) -> str:
    """Refuse a callback URL that may not be called (RefusedUrl); return it when it may.

    With a `resolver`, a host name is resolved and every address must be public; an
    unresolvable name raises UnresolvedHost. `resolver=None` checks the URL's own text only.
    """
    parts = _split(url)
    host = (parts.hostname or "").lower()
    allowed = host in {h.lower().strip("[]") for h in allowed_hosts}
    if parts.scheme != "https" and not allowed:
        raise RefusedUrl("callback_url must be an https URL")
    if allowed:
        return url
    literal = _ip(host)
    if literal is not None:
        if not is_public(literal):
            raise RefusedUrl(_INSIDE)
        return url
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise RefusedUrl(_INSIDE)
    if resolver is None:
        return url
    for text in resolver(host, parts.port or 443):
        address = _ip(text)
        if address is None or not is_public(address):
            raise RefusedUrl("callback_url resolves to a loopback, private or reserved address")
    return url
