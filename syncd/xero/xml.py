"""XML for Practice Manager, both ways: a small writer (ElementTree elements, so user data is
always element text or an attribute value, escaped by the library, never formatted into
markup) and the reading of XPM's `<Response>` envelope (defusedxml only: entity declarations,
external entities and DTDs are refused).

    <Response><Status>OK</Status>…</Response>
    <Response><Status>ERROR</Status><ErrorDescription>…</ErrorDescription></Response>

XPM reports many failures as HTTP 200 with Status ERROR, so the envelope is always checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from syncd.domain.errors import NotFound, PermanentError

# XPM gives no code for "no such record"; its description says so (docs/practice-manager.md).
_NOT_FOUND = re.compile(r"\bnot\s+found\b|\bdoes\s+not\s+exist\b", re.IGNORECASE)

Value = str | int | Decimal | date | None
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def node(tag: str, children: Mapping[str, Value] | None = None, **attributes: str) -> Element:
    """An element with one text child per entry of `children` (None values are left out)."""
    element = Element(tag, attrib=dict(attributes))
    for name, value in (children or {}).items():
        if value is not None:
            SubElement(element, name).text = xpm_text(value)
    return element


def xpm_text(value: str | int | Decimal | date) -> str:
    """XPM's request forms: dates as YYYYMMDD, money with two decimals; text without the
    characters XML 1.0 cannot carry (control characters, lone surrogates), which would make
    the whole body unreadable to XPM."""
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.01'))}"
    return _NOT_XML.sub(" ", str(value))


def document(root: Element) -> bytes:
    return bytes(tostring(root, encoding="utf-8", xml_declaration=True))


def read(xml: bytes) -> Element:
    """The root of an XPM answer; PermanentError when it is not XML defusedxml accepts."""
    try:
        root: Element = fromstring(xml, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise PermanentError(f"Practice Manager answered unreadable XML: {exc}") from None
    return root


def failure(root: Element) -> PermanentError | None:
    """The error a `<Response>` stands for, or None when its Status is OK."""
    if root.tag != "Response":
        return PermanentError(f"Practice Manager answered <{root.tag}>, not <Response>")
    status = text(root, "Status").upper()
    if status == "OK":
        return None
    if status == "ERROR":
        description = text(root, "ErrorDescription") or "no ErrorDescription given"
        kind = NotFound if _NOT_FOUND.search(description) else PermanentError
        return kind(f"Practice Manager refused the call: {description}")
    return PermanentError(f"Practice Manager answered Status {status or '(missing)'!r}")


def response(xml: bytes) -> Element:
    """The `<Response>` root of an OK answer; raises what `failure` finds."""
    root = read(xml)
    problem = failure(root)
    if problem is not None:
        raise problem
    return root


def text(element: Element, tag: str) -> str:
    """The stripped text of the child `tag`, or "" when it is absent or empty."""
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def optional(element: Element, tag: str) -> str | None:
    return text(element, tag) or None


def yes(element: Element, tag: str) -> bool:
    return text(element, tag).lower() in ("yes", "true")


def answer_date(element: Element, tag: str) -> date | None:
    """A date of an answer (`2026-12-31T00:00:00`); None when absent or unreadable."""
    value = text(element, tag)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        return None
