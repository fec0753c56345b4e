"""The one address policy for outbound URLs: every form of a forbidden address is refused, and
the refusal names the range (SPEC 3.2)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from smsbridge import callback_urls

# (URL, the range the refusal must name, the RFC that defines it). The IPv6 forms are the ones
# that embed an IPv4 address: each is decoded and its IPv4 address judged.
FORBIDDEN: list[tuple[str, str, str]] = [
    # NAT64 well-known prefix 64:ff9b::/96 (RFC 6052) of the metadata address and of loopback.
    ("https://[64:ff9b::a9fe:a9fe]/", "169.254.169.254/32", "RFC 3927"),
    ("https://[64:ff9b::7f00:1]/", "127.0.0.0/8", "RFC 6052"),
    ("https://[64:ff9b::a00:1]/", "10.0.0.0/8", "RFC 1918"),
    # NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215).
    ("https://[64:ff9b:1::7f00:1]/", "127.0.0.0/8", "RFC 8215"),
    ("https://[64:ff9b:1::808:808]/", "64:ff9b:1::/48", "RFC 8215"),
    # IPv4-compatible ::/96 (RFC 4291, deprecated).
    ("https://[::127.0.0.1]/", "127.0.0.0/8", "RFC 4291"),
    ("https://[::169.254.169.254]/", "169.254.169.254/32", "RFC 4291"),
    ("https://[::8.8.8.8]/", "::/96", "RFC 4291"),
    # IPv4-translated ::ffff:0:0:0/96 (RFC 2765).
    ("https://[::ffff:0:7f00:1]/", "127.0.0.0/8", "RFC 2765"),
    ("https://[::ffff:0:c0a8:101]/", "192.168.0.0/16", "RFC 2765"),
    # IPv4-mapped ::ffff:0:0/96 (RFC 4291): judged as the IPv4 address.
    ("https://[::ffff:127.0.0.1]/", "127.0.0.0/8", "RFC 1122"),
    ("https://[::ffff:a9fe:a9fe]/", "169.254.169.254/32", "RFC 3927"),
    # 6to4 2002::/16 (RFC 3056).
    ("https://[2002:7f00:1::]/", "127.0.0.0/8", "RFC 3056"),
    ("https://[2002:a9fe:a9fe::1]/", "169.254.169.254/32", "RFC 3056"),
    ("https://[2002:808:808::1]/", "2002::/16", "RFC 3056"),
    # Teredo 2001::/32 (RFC 4380): the client address is the last 32 bits, inverted.
    ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "127.0.0.0/8", "RFC 4380"),
    ("https://[2001:0:4136:e378:8000:63bf:5601:5601]/", "169.254.169.254/32", "RFC 4380"),
    # IPv6 ranges that embed nothing.
    ("https://[fec0::1]/", "fec0::/10", "RFC 3879"),
    ("https://[fc00::1]/", "fc00::/7", "RFC 4193"),
    ("https://[fd12:3456::1]/", "fc00::/7", "RFC 4193"),
    ("https://[fd00:ec2::254]/", "fd00:ec2::254/128", "RFC 4193"),
    ("https://[fe80::1%25eth0]/", "fe80::/10", "RFC 4291"),
    ("https://[ff02::1]/", "ff00::/8", "RFC 4291"),
    ("https://[::]/", "::/128", "RFC 4291"),
    ("https://[::1]/", "::1/128", "RFC 4291"),
    ("https://[2001:db8::1]/", "2001:db8::/32", "RFC 3849"),
    ("https://[100::1]/", "100::/64", "RFC 6666"),
    # IPv4 ranges, including spellings that only the C library reads.
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254/32", "RFC 3927"),
    ("https://127.0.0.1/", "127.0.0.0/8", "RFC 1122"),
    ("https://0x7f.1/", "127.0.0.0/8", "RFC 1122"),
    ("https://2130706433/", "127.0.0.0/8", "RFC 1122"),
    ("https://0/", "0.0.0.0/8", "RFC 791"),
    ("https://10.1.2.3/", "10.0.0.0/8", "RFC 1918"),
    ("https://172.16.0.1/", "172.16.0.0/12", "RFC 1918"),
    ("https://192.168.1.1/", "192.168.0.0/16", "RFC 1918"),
    ("https://100.64.0.1/", "100.64.0.0/10", "RFC 6598"),
    ("https://169.254.1.1/", "169.254.0.0/16", "RFC 3927"),
    ("https://224.0.0.1/", "224.0.0.0/4", "RFC 5771"),
    ("https://255.255.255.255/", "240.0.0.0/4", "RFC 919"),
    ("https://198.18.0.1/", "198.18.0.0/15", "RFC 2544"),
]


@pytest.mark.parametrize(("url", "cidr", "rfc"), FORBIDDEN)
def test_every_form_of_a_forbidden_address_is_refused_naming_its_range(
    url: str, cidr: str, rfc: str
) -> None:
    with pytest.raises(callback_urls.RefusedUrl) as refused:
        callback_urls.check(url, resolver=None)
    assert cidr in str(refused.value)
    assert rfc in str(refused.value)


@pytest.mark.parametrize(("url", "cidr", "rfc"), FORBIDDEN)
def test_a_name_that_resolves_to_a_forbidden_form_is_refused(url: str, cidr: str, rfc: str) -> None:
    """The check at send time resolves the name again: every answer is judged the same way."""
    literal = url.split("//", 1)[1].split("/", 1)[0].strip("[]").replace("%25", "%")

    def resolver(host: str, port: int) -> Iterable[str]:
        return ["93.184.216.34", literal]

    with pytest.raises(callback_urls.RefusedUrl) as refused:
        callback_urls.check("https://hooks.example.com/x", resolver=resolver)
    assert cidr in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
        # The forms that reach the IPv4 host they embed pass when that host is public.
        "https://[::ffff:93.184.216.34]/hook",
        "https://[64:ff9b::5db8:d822]/hook",
    ],
)
def test_public_addresses_pass(url: str) -> None:
    assert callback_urls.check(url, resolver=None) == url


def test_a_host_the_client_allows_passes_in_any_form() -> None:
    assert callback_urls.check("http://127.0.0.1:3001/x", ["127.0.0.1"], resolver=None)
    assert callback_urls.check("https://[::1]/x", ["[::1]"], resolver=None)
    with pytest.raises(callback_urls.RefusedUrl):
        callback_urls.check("https://[::ffff:127.0.0.1]/x", ["127.0.0.1"], resolver=None)


def test_the_ofsc_target_is_the_configured_url_or_the_messages_host() -> None:
    assert (
        callback_urls.ofsc_target("https://cb.example/x", "h", "1", "/y") == "https://cb.example/x"
    )
    assert (
        callback_urls.ofsc_target("", "h.example", "8443", "soap") == "https://h.example:8443/soap"
    )
    assert callback_urls.ofsc_target("", "", "", "/soap") == ""
