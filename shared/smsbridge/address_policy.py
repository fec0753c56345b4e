"""Which IP addresses smsbridge may call out to: one policy for every outbound URL.

An address is refused when it lies in a range that does not reach a public host (loopback,
private, link-local and the cloud metadata service, site-local, unique-local, multicast,
unspecified, documentation, reserved...), in any of its forms. IPv6 forms that embed an IPv4
address are decoded first and the IPv4 address is judged as well:

- IPv4-mapped `::ffff:0:0/96` (RFC 4291) and NAT64 `64:ff9b::/96` (RFC 6052) reach the IPv4
  host they embed: they are judged as that address, and pass when it is public;
- IPv4-compatible `::/96` (RFC 4291, deprecated), IPv4-translated `::ffff:0:0:0/96` (RFC 2765),
  local-use NAT64 `64:ff9b:1::/48` (RFC 8215), 6to4 `2002::/16` (RFC 3056; its relays are
  deprecated by RFC 7526) and Teredo `2001::/32` (RFC 4380, client address obfuscated) are not
  globally reachable forms: they are always refused, naming the embedded address when that one
  is forbidden too.

The ranges are listed here rather than taken from `ipaddress`' `is_global`, whose answers for
these IPv6 ranges changed within Python 3.12 patch releases: the policy must not depend on the
runtime's patch level.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Range:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    #: What the range is, in words ("loopback").
    what: str
    #: Where it is defined ("RFC 1122").
    rfc: str

    def describe(self) -> str:
        return f"{self.what}, {self.network}, {self.rfc}"


def _r(cidr: str, what: str, rfc: str) -> Range:
    return Range(ipaddress.ip_network(cidr), what, rfc)


#: Forbidden IPv4 ranges, most specific first (the first match names the refusal).
IPV4_FORBIDDEN: tuple[Range, ...] = (
    _r("169.254.169.254/32", "cloud metadata service", "RFC 3927 link-local"),
    _r("0.0.0.0/8", "unspecified / this network", "RFC 791"),
    _r("10.0.0.0/8", "private", "RFC 1918"),
    _r("100.64.0.0/10", "carrier-grade NAT", "RFC 6598"),
    _r("127.0.0.0/8", "loopback", "RFC 1122"),
    _r("169.254.0.0/16", "link-local", "RFC 3927"),
    _r("172.16.0.0/12", "private", "RFC 1918"),
    _r("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    _r("192.0.2.0/24", "documentation", "RFC 5737"),
    _r("192.88.99.0/24", "6to4 relay anycast", "RFC 7526"),
    _r("192.168.0.0/16", "private", "RFC 1918"),
    _r("198.18.0.0/15", "benchmarking", "RFC 2544"),
    _r("198.51.100.0/24", "documentation", "RFC 5737"),
    _r("203.0.113.0/24", "documentation", "RFC 5737"),
    _r("224.0.0.0/4", "multicast", "RFC 5771"),
    _r("240.0.0.0/4", "reserved and broadcast", "RFC 1112, RFC 919"),
)

#: Forbidden IPv6 ranges that embed no IPv4 address, most specific first.
IPV6_FORBIDDEN: tuple[Range, ...] = (
    _r("::/128", "unspecified", "RFC 4291"),
    _r("::1/128", "loopback", "RFC 4291"),
    _r("fd00:ec2::254/128", "cloud metadata service", "RFC 4193 unique-local"),
    _r("fc00::/7", "unique-local", "RFC 4193"),
    _r("fe80::/10", "link-local", "RFC 4291"),
    _r("fec0::/10", "site-local", "RFC 3879"),
    _r("ff00::/8", "multicast", "RFC 4291"),
    _r("100::/64", "discard-only", "RFC 6666"),
    _r("2001:db8::/32", "documentation", "RFC 3849"),
    _r("3fff::/20", "documentation", "RFC 9637"),
    _r("2001::/23", "IETF protocol assignments", "RFC 2928"),
)

#: IPv6 forms that embed an IPv4 address. `reaches` says the form reaches the embedded host
#: (judged as it); the others are refused whatever they embed.
MAPPED = _r("::ffff:0:0/96", "IPv4-mapped", "RFC 4291")
TRANSLATED = _r("::ffff:0:0:0/96", "IPv4-translated", "RFC 2765")
COMPATIBLE = _r("::/96", "IPv4-compatible (deprecated)", "RFC 4291")
NAT64 = _r("64:ff9b::/96", "NAT64 well-known prefix", "RFC 6052")
NAT64_LOCAL = _r("64:ff9b:1::/48", "NAT64 local-use prefix", "RFC 8215")
SIX_TO_FOUR = _r("2002::/16", "6to4", "RFC 3056")
TEREDO = _r("2001::/32", "Teredo", "RFC 4380")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an address may not be called."""

    address: Address
    #: The range the address (or the IPv4 address it embeds) lies in, if any.
    range: Range | None = None
    #: The IPv4 address embedded in an IPv6 form, and that form.
    embedded: ipaddress.IPv4Address | None = None
    form: Range | None = None

    def __str__(self) -> str:
        if self.form is None:
            return f"{self.address} ({self.range.describe() if self.range else 'forbidden'})"
        form = f"{self.form.what} form ({self.form.network}, {self.form.rfc})"
        if self.range is not None:
            return f"{self.embedded} ({self.range.describe()}) in the {form} {self.address}"
        return f"{self.address}, a {form} that is not globally reachable"


def _match(address: Address, ranges: tuple[Range, ...]) -> Range | None:
    for candidate in ranges:
        if address in candidate.network:
            return candidate
    return None


def _v4(value: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(value & 0xFFFFFFFF)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[Range, ipaddress.IPv4Address] | None:
    """The IPv6 form that embeds an IPv4 address and that address (None: no such form).

    `::` and `::1` are the unspecified and loopback addresses, not IPv4-compatible ones.
    """
    value = int(address)
    if address in MAPPED.network:
        return MAPPED, _v4(value)
    if address in TRANSLATED.network:
        return TRANSLATED, _v4(value)
    if address in COMPATIBLE.network and value > 1:
        return COMPATIBLE, _v4(value)
    if address in NAT64.network:
        return NAT64, _v4(value)
    if address in NAT64_LOCAL.network:
        return NAT64_LOCAL, _v4(value)
    if address in SIX_TO_FOUR.network:
        return SIX_TO_FOUR, _v4(value >> 80)
    if address in TEREDO.network:
        # The client's address is the last 32 bits, inverted; the server's is bits 32-63.
        client, server = _v4(~value), _v4(value >> 64)
        if _match(client, IPV4_FORBIDDEN) is None and _match(server, IPV4_FORBIDDEN) is not None:
            return TEREDO, server
        return TEREDO, client
    return None


def refusal(address: Address) -> Refusal | None:
    """Why `address` may not be called, or None when it may (a public address)."""
    if isinstance(address, ipaddress.IPv4Address):
        found = _match(address, IPV4_FORBIDDEN)
        return Refusal(address, found) if found else None
    embedded = embedded_ipv4(address)
    if embedded is not None:
        form, ipv4 = embedded
        inside = _match(ipv4, IPV4_FORBIDDEN)
        if inside is not None:
            return Refusal(address, inside, ipv4, form)
        if form in (MAPPED, NAT64):
            return None
        return Refusal(address, None, ipv4, form)
    found = _match(address, IPV6_FORBIDDEN)
    return Refusal(address, found) if found else None


def parse(text: str) -> Address | None:
    """An IP address literal (an IPv6 zone id is dropped), None when `text` is not one."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
