"""XML parsing that refuses DTDs, entity declarations and external references (defusedxml).

Bytes are decoded here, once, in the encoding the XML declaration names (a byte-order mark wins;
UTF-8 when neither is given), and the element tree is bounded in depth, so that no caller can
meet a `UnicodeDecodeError` or walk a tree deep enough for a `RecursionError`.
"""

from __future__ import annotations

import codecs
import re
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

#: Deeper documents are refused: SOAP with a structured OFSC body needs fewer than ten levels.
MAX_DEPTH = 64

_DECLARED_ENCODING = re.compile(
    rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._\-]{1,40})["']"""
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UnsafeOrMalformedXml(ValueError):
    """The document is not well-formed XML, or it carries a DTD or entities (hostile)."""


class UndecodableXml(UnsafeOrMalformedXml):
    """The bytes are not text in the encoding the document declares (UTF-8 when it names none)."""


def decode(document: bytes) -> str:
    """The text of an XML document: BOM, else the declared encoding, else UTF-8 (strict)."""
    encoding = next((name for bom, name in _BOMS if document.startswith(bom)), None)
    if encoding is None:
        declared = _DECLARED_ENCODING.match(document)
        encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise UndecodableXml(f"unknown encoding {encoding!r}") from None
    if not codec._is_text_encoding:  # e.g. "base64" or "rot13": not a character encoding
        raise UndecodableXml(f"unknown encoding {encoding!r}")
    try:
        return document.decode(codec.name)
    except (UnicodeDecodeError, ValueError):
        raise UndecodableXml(f"the body is not valid {codec.name}") from None


def parse(document: bytes | str, *, max_depth: int = MAX_DEPTH) -> Element:
    """The root element; refused (UnsafeOrMalformedXml) when hostile, malformed or too deep."""
    text = decode(document) if isinstance(document, bytes) else document
    try:
        root: Element = fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise UnsafeOrMalformedXml(f"refused XML: {type(exc).__name__}") from exc
    except (ParseError, ValueError) as exc:
        raise UnsafeOrMalformedXml(f"malformed XML: {exc}") from exc
    if depth_over(root, max_depth):
        raise UnsafeOrMalformedXml(f"refused XML: nested deeper than {max_depth} elements")
    return root


def depth_over(root: Element, limit: int) -> bool:
    """Whether the tree is deeper than `limit` levels (walked without recursion)."""
    level: list[Element] = [root]
    for _ in range(limit):
        level = [item for element in level for item in element]
        if not level:
            return False
    return True


def local_name(element: Element) -> str:
    """The tag without its namespace, so parsing never depends on prefixes."""
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def child(element: Element, name: str) -> Element | None:
    """The first direct child whose local name is `name`."""
    for item in element:
        if local_name(item) == name:
            return item
    return None


def children(element: Element, name: str) -> list[Element]:
    return [item for item in element if local_name(item) == name]


def text_of(element: Element, name: str) -> str | None:
    """Stripped text of the first direct child named `name` (None when absent)."""
    found = child(element, name)
    if found is None:
        return None
    return (found.text or "").strip()
