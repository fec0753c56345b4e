"""XML parsing that refuses DTDs, entity declarations and external references (defusedxml)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring


class UnsafeOrMalformedXml(ValueError):
    """The document is not well-formed XML, or it carries a DTD or entities (hostile)."""


def parse(document: bytes | str) -> Element:
    try:
        root: Element = fromstring(
            document, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise UnsafeOrMalformedXml(f"refused XML: {type(exc).__name__}") from exc
    except (ParseError, ValueError) as exc:
        raise UnsafeOrMalformedXml(f"malformed XML: {exc}") from exc
    return root


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
