"""Practice Manager over the wire, for the sandbox's tests: request bodies built with ElementTree
and answers read with defusedxml, independent of syncd's own XPM adapter."""

from __future__ import annotations

from collections.abc import Mapping
from xml.etree.ElementTree import Element, SubElement, tostring

import httpx
from defusedxml.ElementTree import fromstring

XPM = "/practicemanager/3.1"
XML = {"Content-Type": "application/xml"}


def body(tag: str, fields: Mapping[str, str | None] | None = None) -> bytes:
    """`<tag>` with one text child per field, in the mapping's order (None: left out)."""
    root = Element(tag)
    for name, value in (fields or {}).items():
        if value is not None:
            SubElement(root, name).text = value
    return bytes(tostring(root, encoding="utf-8"))


def assign(number: str, uuid: str, *elements: tuple[str, str | None]) -> bytes:
    """A `job.api/assign` body: ID, UUID, then (tag, uuid attribute or None) elements."""
    root = Element("Job")
    SubElement(root, "ID").text = number
    SubElement(root, "UUID").text = uuid
    for tag, staff in elements:
        SubElement(root, tag, {} if staff is None else {"uuid": staff})
    return bytes(tostring(root, encoding="utf-8"))


def job_add(**changes: str | None) -> bytes:
    """A valid `job.api/add` body for `client_uuid`, with fields changed or (None) left out."""
    fields: dict[str, str | None] = {
        "Name": "Individual Tax Return - Olivia Chen",
        "Description": "FY26 return",
        "ClientUUID": None,
        "StartDate": "20261203",
        "DueDate": "20261231",
    }
    fields.update(changes)
    return body("Job", fields)


def answer(response: httpx.Response) -> Element:
    """The `<Response>` of an XPM answer, which is always HTTP 200 text/xml."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root: Element = fromstring(response.content)
    assert root.tag == "Response"
    return root


def ok(response: httpx.Response) -> Element:
    root = answer(response)
    assert tags(root)[0] == "Status"
    assert root.findtext("Status") == "OK", response.text
    return root


def refused(response: httpx.Response) -> str:
    """The ErrorDescription of an HTTP 200 Status ERROR answer."""
    root = answer(response)
    assert [c.tag for c in root] == ["Status", "ErrorDescription"], response.text
    assert root.findtext("Status") == "ERROR"
    description = root.findtext("ErrorDescription") or ""
    assert description
    return description


def tags(element: Element | None) -> list[str]:
    assert element is not None
    return [child.tag for child in element]


def one(root: Element, path: str) -> Element:
    found = root.find(path)
    assert found is not None, path
    return found
