"""The Accounting API's contact query language, as far as syncd and its tests need it: `where`
(equality on Name, EmailAddress and the other string fields, `Guid("…")` ids, Contains /
StartsWith / EndsWith, joined by AND / OR), `searchTerm` and `order`. `parse_where_over` reads
the same `where` over any record type (the invoices use it with their own fields).

Comparisons are case- and accent-insensitive, as Xero's are. Pure functions; no IO.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from syncd.sandbox.models import Contact

T = TypeVar("T")


class QueryError(ValueError):
    """A `where` or `order` clause the sandbox cannot evaluate (Xero: QueryParseException)."""


Predicate = Callable[[Contact], bool]

_FIELDS: dict[str, Callable[[Contact], str | None]] = {
    "name": lambda c: c.name,
    "emailaddress": lambda c: c.email,
    "firstname": lambda c: c.first_name,
    "lastname": lambda c: c.last_name,
    "contactnumber": lambda c: c.contact_number,
    "accountnumber": lambda c: c.account_number,
    "companynumber": lambda c: c.company_number,
    "taxnumber": lambda c: c.tax_number,
    "contactstatus": lambda c: c.status,
    "contactid": lambda c: c.contact_id,
}
_BOOLEANS: dict[str, Callable[[Contact], bool]] = {
    "iscustomer": lambda c: False,
    "issupplier": lambda c: False,
    "hasattachments": lambda c: False,
}
_CASE = r"(?:\.ToLower\(\)|\.ToUpper\(\))?"
_STRING = r'"(?P<text>(?:[^"\\]|\\.)*)"'
_COMPARE = re.compile(
    rf"^(?P<field>[A-Za-z][A-Za-z.]*){_CASE}\s*(?P<op>==|!=|=)\s*"
    rf'(?:{_STRING}|(?P<word>null|true|false)|[Gg]uid\(\s*"(?P<guid>[^"]*)"\s*\))$'
)
_CALL = re.compile(
    rf"^(?P<field>[A-Za-z][A-Za-z.]*){_CASE}\.(?P<method>Contains|StartsWith|EndsWith)\(\s*{_STRING}\s*\)$"
)
_ORDER = re.compile(r"^(?P<field>[A-Za-z]+)(?:\s+(?P<dir>ASC|DESC))?$", re.IGNORECASE)


def fold(value: str | None) -> str:
    """Case- and accent-insensitive form of a string."""
    decomposed = unicodedata.normalize("NFKD", value or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _split(expression: str, words: tuple[str, ...]) -> list[str]:
    """Split on any of `words` (e.g. " AND ", "&&") outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(expression):
        char = expression[index]
        if char == '"' and (index == 0 or expression[index - 1] != "\\"):
            quoted = not quoted
        if not quoted:
            hit = next((w for w in words if expression[index : index + len(w)].upper() == w), None)
            if hit is not None:
                parts.append("".join(current))
                current = []
                index += len(hit)
                continue
        current.append(char)
        index += 1
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _clause(
    text: str,
    fields: Mapping[str, Callable[[T], str | None]],
    booleans: Mapping[str, Callable[[T], bool]],
) -> Callable[[T], bool]:
    match = _COMPARE.match(text)
    if match:
        field, op = match["field"].lower(), match["op"]
        negate = op == "!="
        if field in booleans and match["word"] in ("true", "false"):
            getter_b = booleans[field]
            expected = match["word"] == "true"
            return lambda c: (getter_b(c) == expected) != negate
        if field not in fields:
            raise QueryError(f"unsupported field {match['field']!r} in where")
        getter = fields[field]
        if match["word"] == "null":
            return lambda c: (getter(c) in (None, "")) != negate
        if match["word"] is not None:
            raise QueryError(f"{match['field']} cannot be compared with {match['word']}")
        wanted = fold(match["guid"] if match["guid"] is not None else _unescape(match["text"]))
        return lambda c: (fold(getter(c)) == wanted) != negate
    match = _CALL.match(text)
    if match:
        field = match["field"].lower()
        if field not in fields:
            raise QueryError(f"unsupported field {match['field']!r} in where")
        getter = fields[field]
        needle = fold(_unescape(match["text"]))
        method = match["method"]
        if method == "Contains":
            return lambda c: needle in fold(getter(c))
        if method == "StartsWith":
            return lambda c: fold(getter(c)).startswith(needle)
        return lambda c: fold(getter(c)).endswith(needle)
    raise QueryError(f"cannot parse where clause {text!r}")


def parse_where_over(
    expression: str,
    fields: Mapping[str, Callable[[T], str | None]],
    booleans: Mapping[str, Callable[[T], bool]] | None = None,
) -> Callable[[T], bool]:
    """A predicate for a `where` expression over records whose string `fields` (lower-case
    names, dotted for nested ones) and `booleans` are given: clauses joined by AND/&& and
    OR/||."""
    alternatives: list[list[Callable[[T], bool]]] = []
    for alternative in _split(expression.strip(), (" OR ", "||")):
        clauses = _split(alternative, (" AND ", "&&"))
        if any(not clause for clause in clauses):
            raise QueryError(f"cannot parse where clause {expression!r}")
        alternatives.append([_clause(clause, fields, booleans or {}) for clause in clauses])
    return lambda c: any(all(p(c) for p in clauses) for clauses in alternatives)


def parse_where(expression: str) -> Predicate:
    """A predicate over contacts for a `where` expression."""
    return parse_where_over(expression, _FIELDS, _BOOLEANS)


def mentions_status(expression: str) -> bool:
    return "contactstatus" in expression.lower()


def matches_search(contact: Contact, term: str) -> bool:
    """Xero's `searchTerm`: a case-insensitive substring over the contact's names and numbers."""
    needle = fold(term)
    haystack = (
        contact.name,
        contact.first_name,
        contact.last_name,
        contact.contact_number,
        contact.company_number,
        contact.email,
    )
    return any(needle in fold(value) for value in haystack)


def _sort_key(field: str) -> Callable[[Contact], str]:
    if field == "updateddateutc":
        return lambda c: f"{c.updated_at.timestamp():020.6f}"
    getter = _FIELDS.get(field)
    if getter is None:
        raise QueryError(f"unsupported order field {field!r}")
    return lambda c: fold(getter(c))


def order_contacts(contacts: Sequence[Contact], order: str | None) -> list[Contact]:
    """Sort by `order` ("Name ASC, EmailAddress DESC"); Xero's default is UpdatedDateUTC ASC,
    ContactID ASC."""
    ordered = sorted(contacts, key=lambda c: c.contact_id)
    keys: list[tuple[str, bool]] = [("updateddateutc", False)]
    if order and order.strip():
        keys = []
        for part in order.split(","):
            match = _ORDER.match(part.strip())
            if not match:
                raise QueryError(f"cannot parse order {order!r}")
            keys.append((match["field"].lower(), (match["dir"] or "ASC").upper() == "DESC"))
    for field, descending in reversed(keys):
        key = _sort_key(field)
        ordered.sort(key=key, reverse=descending)
    return ordered
