"""Request checks as strict as Xero's OpenAPI specs: JSON bodies against the hand-written schema
copies in syncd.sandbox.schemas, and query/header parameters read by the spec's serialization
rules. Pure functions over values; imports only the schema copies and `pages.BadParameter`.

The checker understands the subset the specs use: `type` (draft 4 meanings: an integer is not
a float, a boolean is not a number), `format` (`uuid`: 8-4-4-4-12 hex digits in any case;
`date-time`: RFC 3339, so a time zone is required and a bare date is refused; `double`: a
finite number), `enum`, `maxLength`, `minimum`/`maximum`, `required`, `items`, `properties`,
`$ref`. No schema in these specs is nullable, so `null` is refused wherever a typed value is
given (a schema with no `type`, like Accounting's BatchPaymentDetails, takes anything).
Read-only members (e.g. a contact's `UpdatedDateUTC`) are skipped, as Xero ignores them.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, QueryParams

from syncd.sandbox.pages import BadParameter
from syncd.sandbox.schemas import BODIES, PARAMETERS, Parameter, Schema

_UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# RFC 3339 `date-time`, read case-insensitively (the spec validators upper-case it first).
_DATE_TIME = re.compile(
    r"^(\d{4})-(0[1-9]|1[0-2])-(\d{2})T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$",
    re.ASCII,
)
_INTEGER = re.compile(r"^-?\d+$", re.ASCII)
_MAX_DEPTH = 32
_KINDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One way a value disagrees with its schema. `malformed`: the value has the wrong type,
    format or enum member, so Xero could not even read the body (Accounting answers
    PostDataInvalidException); otherwise it is readable but out of bounds (a ValidationException
    item, e.g. a name over 255 characters)."""

    path: tuple[str | int, ...]
    message: str
    malformed: bool = True


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def is_date_time(value: str) -> bool:
    """RFC 3339 date-time (the spec's `format: date-time`), e.g. `2019-12-10T12:59:59Z`."""
    match = _DATE_TIME.match(value.upper())
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    return year > 0 and 1 <= day <= calendar.monthrange(year, month)[1]


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return True


def _format_problem(value: Any, form: str) -> str | None:
    if form == "uuid" and isinstance(value, str) and not is_uuid(value):
        return "must be a UUID (8-4-4-4-12 hexadecimal digits)"
    if form == "date-time" and isinstance(value, str) and not is_date_time(value):
        return "must be an RFC 3339 date-time with a time zone, e.g. 2019-12-10T12:59:59Z"
    if form == "double" and isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def check(value: Any, schema: Schema, components: Mapping[str, Schema]) -> list[Problem]:
    """Every way `value` disagrees with `schema` (empty: it conforms)."""
    found: list[Problem] = []
    _check(value, schema, components, (), found)
    return found


def _check(
    value: Any,
    schema: Schema,
    components: Mapping[str, Schema],
    path: tuple[str | int, ...],
    found: list[Problem],
) -> None:
    if len(path) > _MAX_DEPTH:
        found.append(Problem(path, "is nested too deeply"))
        return
    if "$ref" in schema:
        # OpenAPI 3.0: a reference replaces its siblings.
        _check(value, components[str(schema["$ref"]).rsplit("/", 1)[-1]], components, path, found)
        return
    kind = schema.get("type")
    if value is None:
        if kind is not None:  # a schema without a type takes anything, null too
            found.append(Problem(path, "must not be null"))
        return
    if kind is not None and not _is_kind(value, kind):
        found.append(Problem(path, f"must be {_KINDS.get(kind, kind)}"))
        return
    problem = _format_problem(value, schema.get("format", ""))
    if problem is not None:
        found.append(Problem(path, problem))
        return
    if "enum" in schema and value not in schema["enum"]:
        found.append(Problem(path, f"must be one of {', '.join(map(str, schema['enum']))}"))
        return
    _bounds(value, schema, path, found)
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                found.append(Problem((*path, name), "is required", malformed=False))
        for name, member in schema.get("properties", {}).items():
            if name in value and not member.get("readOnly"):
                _check(value[name], member, components, (*path, name), found)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], components, (*path, index), found)


def _bounds(value: Any, schema: Schema, path: tuple[str | int, ...], found: list[Problem]) -> None:
    limit = schema.get("maxLength")
    if limit is not None and isinstance(value, str) and len(value) > limit:
        found.append(Problem(path, f"must not be longer than {limit} characters", False))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(Problem(path, f"must be at least {schema['minimum']}", False))
        if "maximum" in schema and value > schema["maximum"]:
            found.append(Problem(path, f"must be at most {schema['maximum']}", False))


def body_problems(operation: str, body: Any) -> list[Problem]:
    """How the parsed JSON body of `operation` (a spec operationId) disagrees with its schema."""
    components, name = BODIES[operation]
    return check(body, components[name], components)


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, refusing what is not JSON (NaN and Infinity included) and
    nesting too deep to read: ValueError."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw, parse_constant=constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


# -- parameters -------------------------------------------------------------------------------


def _raw_values(query: QueryParams, name: str) -> list[str]:
    """Every value given for `name`; parameter names match in any case (ASP.NET)."""
    return [value for key, value in query.multi_items() if key.lower() == name.lower()]


def _scalar(raw: str, schema: Schema, name: str) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            value: Any = int(raw) if _INTEGER.match(raw) else None
        except ValueError:  # more digits than Python converts
            value = None
        if value is None:
            raise BadParameter(name, f"must be an integer, not {raw[:40]!r}")
    elif kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise BadParameter(name, f"must be true or false, not {raw[:40]!r}")
        value = raw.lower() == "true"
    else:
        value = raw
    problems = check(value, schema, {})
    if problems:
        raise BadParameter(name, f"{problems[0].message}, not {raw[:80]!r}")
    return value


def read_parameter(parameter: Parameter, query: QueryParams, headers: Headers) -> Any:
    """The typed value of one query or header parameter (None: not given), or BadParameter."""
    name, schema = parameter.name, parameter.schema
    if parameter.where == "header":
        raw = headers.get(name)
        return None if raw is None else _scalar(raw, schema, name)
    given = _raw_values(query, name)
    if not given:
        return None
    if schema.get("type") == "array":
        if parameter.explode:
            parts = given
        elif len(given) > 1:
            raise BadParameter(name, "is a comma-separated list: give it once")
        else:
            parts = given[0].split(",")
        return [_scalar(part, schema["items"], name) for part in parts]
    if len(given) > 1:
        raise BadParameter(name, "takes one value: give it once")
    return _scalar(given[0], schema, name)


def read_parameters(operation: str, query: QueryParams, headers: Headers) -> dict[str, Any]:
    """The query and header parameters of `operation` that were given, typed as the spec
    declares them (lists for arrays); BadParameter names the first one that is not."""
    found: dict[str, Any] = {}
    for parameter in PARAMETERS[operation]:
        if parameter.where == "path":
            continue
        value = read_parameter(parameter, query, headers)
        if value is not None:
            found[parameter.name] = value
    return found


def dotted(path: tuple[str | int, ...]) -> str:
    """A body path for people: `Contacts[0].EmailAddress`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.removeprefix(".") or "The body"


def field_label(path: tuple[str | int, ...]) -> str:
    """A body path as ASP.NET names it in `modelState`: `model.DeadlineUtc`, `model.Items[0]`."""
    label = "model"
    for part in path:
        label += f"[{part}]" if isinstance(part, int) else f".{part[:1].upper()}{part[1:]}"
    return label
