"""Outbound URLs that cannot reach inside: https only, public addresses only (SPEC 3.2).

Every URL smsbridge calls on a client's behalf goes through `check`: JSON `callback_url`s, the
OFSC target `https://{app_host}:{app_port}{app_url}` of a message (`ofsc_target`) and the
`callback_url` a client's configuration names. A URL is refused when it is not https, carries
credentials, or names or resolves to an address that `smsbridge.address_policy` forbids
(loopback, private, link-local and the cloud metadata service, site-local, unique-local,
multicast, unspecified, reserved, in every IPv6 form that embeds an IPv4 address). Legacy IPv4
spellings (`0x7f.1`, `2130706433`) are decoded as the C library would, without DNS. A client may
list hosts it is allowed to use anyway (`callback_hosts_allowed`, for local use): those may also
be plain http. Intake checks once; notify checks again before each call, since a name can be
re-pointed after it was accepted.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from urllib.parse import SplitResult, urlsplit

from smsbridge.address_policy import Address, parse, refusal

Resolver = Callable[[str, int], Iterable[str]]

MAX_URL_LENGTH = 2048
#: A host made of numbers only (decimal, octal, hex parts): an IPv4 address to inet_aton.
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


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


def _ip(text: str) -> Address | None:
    """The address a host names by itself (no DNS), legacy IPv4 spellings included."""
    address = parse(text)
    if address is None and _LEGACY_IPV4.match(text):
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
        except OSError:
            return None
    return address


def is_public(address: Address) -> bool:
    return refusal(address) is None


def _split(url: str, what: str) -> SplitResult:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"{what} must be a URL of at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise RefusedUrl(f"{what} must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise RefusedUrl(f"{what} is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RefusedUrl(f"{what} must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl(f"{what} must not carry credentials")
    return parts


def ofsc_target(configured: str, app_host: str, app_port: str, app_url: str) -> str:
    """Where an OFSC message's `set_message_status` goes: the client's configured callback URL,
    else https://{app_host}:{app_port}{app_url} of the message ('' when it names no host)."""
    if configured:
        return configured
    if not app_host:
        return ""
    port = f":{app_port}" if app_port else ""
    path = app_url if app_url.startswith("/") else f"/{app_url}"
    return f"https://{app_host}{port}{path}"


def check(
    url: str,
    allowed_hosts: Iterable[str] = (),
    *,
    resolver: Resolver | None = resolve,
    what: str = "callback_url",
) -> str:
    """Refuse a URL that may not be called (RefusedUrl, its message names `what` and the range
    refused); return it when it may.

    With a `resolver`, a host name is resolved and every address must be allowed; an
    unresolvable name raises UnresolvedHost. `resolver=None` checks the URL's own text only.
    """
    parts = _split(url, what)
    host = (parts.hostname or "").lower()
    allowed = host in {h.lower().strip("[]") for h in allowed_hosts}
    if parts.scheme != "https" and not allowed:
        raise RefusedUrl(f"{what} must be an https URL")
    if allowed:
        return url
    literal = _ip(host)
    if literal is not None:
        refused = refusal(literal)
        if refused is not None:
            raise RefusedUrl(f"{what} must not point at {refused}")
        return url
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise RefusedUrl(f"{what} must not point at a local host name ({host})")
    if resolver is None:
        return url
    for text in resolver(host, parts.port or 443):
        address = _ip(text)
        if address is None:
            raise RefusedUrl(f"{what} host {host} resolves to something that is not an address")
        refused = refusal(address)
        if refused is not None:
            raise RefusedUrl(f"{what} host {host} resolves to {refused}")
    return url
