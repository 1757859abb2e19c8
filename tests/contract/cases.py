"""Requests generated from Xero's official OpenAPI specs, valid and invalid, for the operations
syncd uses: every query/header parameter and every request-body member (two levels deep, arrays
as one item) set to values derived from its schema's type, format, enum and bounds, plus values
of every other JSON type and null. Whether a request is valid is decided afterwards by the spec
itself (openapi-core, `tests.contract.openapi.conformance_errors`), not here.

A few members have rules the spec states only in prose (a page is "greater than 0", `states`
is "INPROGRESS or CLOSED", a project's contact must exist, an email address must be one); for
those, `PROSE` replaces the schema-derived values that would break the prose rule, so each case
tests the spec's types and formats and nothing else. Pure; no IO.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

UUID_A = "b021e7cb-1903-4292-b48b-5b27b4271e3e"
UUID_B = "216830cb-9a68-487e-928b-c1a7ccc4fc81"
DATE_TIMES = (
    "2019-12-10T12:59:59Z",
    "2017-04-23T18:25:43.511Z",
    "2026-06-30T10:00:00+10:00",
    "2026-06-30t00:00:00z",
    "2019-12-10T12:59:59",
    "2019-12-10",
    "2019-02-30T00:00:00Z",
    "10/12/2019 12:59",
    "",
)
_OTHER_TYPES: dict[str, Any] = {
    "string": "text",
    "number": 7.5,
    "integer": 7,
    "boolean": True,
    "object": {},
    "array": [],
}
_MISSING = object()


@dataclass(frozen=True)
class Case:
    """One request: the base request of its operation with one thing changed (`label`)."""

    operation: str
    label: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = _MISSING
    path_value: str | None = None

    @property
    def has_body(self) -> bool:
        return self.body is not _MISSING


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node` with `$ref`s followed (OpenAPI 3.0: a reference replaces its siblings)."""
    while "$ref" in node:
        target: Any = document
        for part in str(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _simple(schema: dict[str, Any]) -> Any:
    """One plain valid value of a (resolved) schema."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("format") == "uuid":
        return UUID_A
    if schema.get("format") == "date-time":
        return DATE_TIMES[0]
    return {"string": "text", "number": 1, "integer": 1, "boolean": True, "array": []}.get(
        str(kind), {}
    )


def body_values(document: dict[str, Any], schema: dict[str, Any]) -> list[Any]:
    """Values for a body member: its own kinds (and formats, enums, lengths) and the others."""
    schema = resolve(document, schema)
    kind = schema.get("type")
    values: list[Any] = [None]
    values += [v for k, v in _OTHER_TYPES.items() if k != kind]
    if kind == "string":
        form = schema.get("format")
        if "enum" in schema:
            first, last = schema["enum"][0], schema["enum"][-1]
            values += [first, last, first.lower(), f"NOT-{first}"]
        elif form == "uuid":
            values += [UUID_A, UUID_A.upper(), "not-a-uuid", f"{UUID_A},{UUID_B}"]
            values.append(UUID_A.replace("-", ""))
        elif form == "date-time":
            values += list(DATE_TIMES)
        else:
            values.append("text")
            if isinstance(schema.get("example"), str):
                values.append(schema["example"])
            if "maxLength" in schema:
                values += ["x" * schema["maxLength"], "x" * (schema["maxLength"] + 1)]
    elif kind == "number":
        values += [0, 99.99, 350, "99.99"]
    elif kind == "integer":
        values += [0, 12, 1.5, "12"]
    elif kind == "boolean":
        values += [False, "true", "false"]
    elif kind == "array":
        values.append([_simple(resolve(document, schema.get("items", {})))])
    unique: list[Any] = []
    for value in values:
        if not any(type(value) is type(seen) and value == seen for seen in unique):
            unique.append(value)
    return unique


def members(
    document: dict[str, Any], schema: dict[str, Any], depth: int, skip: frozenset[str]
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path, schema) of each writable member up to `depth` levels (read-only ones are left
    out: Xero ignores them and the spec says not to send them)."""
    schema = resolve(document, schema)
    if schema.get("type") == "array":
        schema = resolve(document, schema.get("items", {}))
    for name, member in schema.get("properties", {}).items():
        if name in skip or member.get("readOnly"):
            continue
        yield (name,), member
        if depth > 1:
            for path, inner in members(document, member, depth - 1, frozenset()):
                yield (name, *path), inner


def place(
    document: dict[str, Any], schema: dict[str, Any], base: Any, path: tuple[str, ...], value: Any
) -> Any:
    """`base` (a dict, or None for a fresh one) with `value` at `path`; an array on the way
    holds one item."""
    schema = resolve(document, schema)
    is_array = schema.get("type") == "array"
    item_schema = resolve(document, schema.get("items", {})) if is_array else schema
    current = dict(base or {})
    name, rest = path[0], path[1:]
    if rest:
        member = item_schema["properties"][name]
        current[name] = place(document, member, None, rest, value)
    else:
        current[name] = value
    return [current] if is_array else current


# -- parameters -------------------------------------------------------------------------------


def query_values(document: dict[str, Any], parameter: dict[str, Any]) -> list[list[str]]:
    """Serialized values for a query/header parameter (each a list: several for a repeated,
    exploded array); form style, as the spec's `style`/`explode` say."""
    schema = resolve(document, parameter.get("schema", {}))
    kind = schema.get("type")
    if kind == "array":
        if parameter.get("explode", True):
            return [[UUID_A], [UUID_A, UUID_B], [f"{UUID_A},{UUID_B}"], ["not-a-uuid"], [""]]
        return [[UUID_A], [f"{UUID_A},{UUID_B}"], [f"{UUID_A},not-a-uuid"], ["not-a-uuid"]]
    if kind == "integer":
        found = ["1", "2", "x", "1.5", ""]
        for bound, step in (("minimum", -1), ("maximum", 1)):
            if bound in schema:
                found += [str(schema[bound]), str(schema[bound] + step)]
        return [[v] for v in dict.fromkeys(found)]
    if kind == "boolean":
        return [["true"], ["false"], ["nope"], [""]]
    if schema.get("format") == "uuid":
        return [[UUID_A], [UUID_A.upper()], ["not-a-uuid"], [""]]
    if schema.get("format") == "date-time":
        return [[v] for v in DATE_TIMES]
    return [["text"]]


# -- rules the spec states in prose -----------------------------------------------------------

Adjust = Callable[[Any], Any]


def _as_email(value: Any) -> Any:
    """A string that is spec-valid by type and length becomes an address of the same length."""
    if isinstance(value, str) and "@" not in value:
        return "x" * max(1, len(value) - 13) + "@acme.example"
    return value


def _existing(seed: str) -> Adjust:
    def adjust(value: Any) -> Any:
        if isinstance(value, str) and value.lower() == UUID_A:
            return seed.upper() if value.isupper() else seed
        return value

    return adjust


def prose(seed_contact: str) -> dict[tuple[str, str], Adjust | list[list[str]]]:
    """Per (operationId, member or parameter): either values to use instead of the generated
    ones (parameters), or a function adjusting each generated body value."""
    pages = [["1"], ["2"], ["x"], ["1.5"], [""]]  # "greater than 0" (page's description)
    return {
        ("getProjects", "states"): [["INPROGRESS"], ["CLOSED"], ["INPROGRESS,CLOSED"]],
        ("getProjects", "page"): pages,
        ("getProjectUsers", "page"): pages,
        ("getContacts", "where"): [['Name=="Acme Ltd"'], ['EmailAddress=="jo@acme.example"']],
        ("getContacts", "order"): [["Name ASC"], ["UpdatedDateUTC DESC"]],
        ("getContacts", "searchTerm"): [["acme"]],
        # The contact of a new project must exist (xero-facts 4.2), and an upsert by ContactID
        # updates that contact.
        ("createProject", "contactId"): _existing(seed_contact),
        ("updateOrCreateContacts", "ContactID"): _existing(seed_contact),
        # "Email address must be valid" is a documented Xero validation message.
        ("createContacts", "EmailAddress"): _as_email,
        ("updateOrCreateContacts", "EmailAddress"): _as_email,
        ("updateContact", "EmailAddress"): _as_email,
    }
