"""The sandbox refuses exactly what Xero's official specs refuse, for the Projects and Contacts
operations syncd uses: its hand-written schema copies equal the published ones, and requests
generated from the published schemas (tests.contract.cases) are accepted when the spec's own
validator (openapi-core) says they are valid and refused with Xero's 400 shapes otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from syncd.sandbox import schemas
from syncd.sandbox.models import Limits, Tenant
from syncd.sandbox.state import SandboxState
from tests.contract import cases, openapi
from tests.contract.cases import Case
from tests.sandbox.flow import ACCOUNTING, PROJECTS, Session, connect

# operationId: (spec, method, path in the spec)
OPERATIONS: dict[str, tuple[str, str, str]] = {
    "getProjects": ("projects", "GET", "/Projects"),
    "createProject": ("projects", "POST", "/Projects"),
    "getProject": ("projects", "GET", "/Projects/{projectId}"),
    "updateProject": ("projects", "PUT", "/Projects/{projectId}"),
    "patchProject": ("projects", "PATCH", "/Projects/{projectId}"),
    "getProjectUsers": ("projects", "GET", "/ProjectsUsers"),
    "getContacts": ("accounting", "GET", "/Contacts"),
    "createContacts": ("accounting", "PUT", "/Contacts"),
    "updateOrCreateContacts": ("accounting", "POST", "/Contacts"),
    "getContact": ("accounting", "GET", "/Contacts/{ContactID}"),
    "getContactByContactNumber": ("accounting", "GET", "/Contacts/{ContactNumber}"),
    "updateContact": ("accounting", "POST", "/Contacts/{ContactID}"),
}
# Checked by the gate for every operation (tenant: 403; a key over 128 characters: 400).
GATE_HEADERS = frozenset({"xero-tenant-id", "idempotency-key"})
# Keywords that decide validity; descriptions, examples and defaults do not.
ESSENTIAL = frozenset(
    {"type", "format", "enum", "maxLength", "minimum", "maximum", "required", "readOnly"}
    | {"items", "properties", "$ref", "nullable", "pattern", "minLength", "allOf", "oneOf"}
)


def _essential(node: Any, *, members: bool = False) -> Any:
    if isinstance(node, dict):
        if members:
            return {name: _essential(schema) for name, schema in node.items()}
        return {
            key: _essential(value, members=key == "properties")
            for key, value in node.items()
            if key in ESSENTIAL
        }
    if isinstance(node, list):
        return [_essential(item) for item in node]
    return node


def _operation(operation: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The spec document, the operation object and its parameters (path-level ones too)."""
    spec, method, path = OPERATIONS[operation]
    document = openapi.load_document(spec)
    item = document["paths"][path]
    found = item[method.lower()]
    assert found["operationId"] == operation
    parameters = [
        cases.resolve(document, p) for p in [*item.get("parameters", []), *found["parameters"]]
    ]
    return document, found, [p for p in parameters if p["name"].lower() not in GATE_HEADERS]


def _reachable(document: dict[str, Any], name: str, seen: set[str]) -> set[str]:
    seen.add(name)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] not in seen:
                _reachable(document, ref.rsplit("/", 1)[-1], seen)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document["components"]["schemas"][name])
    return seen


@pytest.mark.parametrize("operation", sorted(schemas.BODIES))
def test_body_schema_copies_equal_the_spec(operation: str) -> None:
    """The sandbox's copy of each request-body schema, and of every schema it references,
    has the same types, formats, enums, bounds and requirements as the published spec."""
    document, found, _ = _operation(operation)
    registry, name = schemas.BODIES[operation]
    declared = found["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert declared.rsplit("/", 1)[-1] == name
    published = document["components"]["schemas"]
    for component in sorted(_reachable(document, name, set())):
        assert component in registry, f"{component} is not copied into syncd.sandbox.schemas"
        assert registry[component] == _essential(published[component]), component


@pytest.mark.parametrize("operation", sorted(schemas.PARAMETERS))
def test_parameter_copies_equal_the_spec(operation: str) -> None:
    """Names, places, requirement, serialization (explode) and schemas of the parameters."""
    _, _, parameters = _operation(operation)
    published = [
        (
            p["name"],
            p["in"],
            bool(p.get("required", False)),
            bool(p.get("explode", True)),
            _essential(p["schema"]),
        )
        for p in parameters
    ]
    copied = [
        (p.name, p.where, p.required, p.explode, p.schema) for p in schemas.PARAMETERS[operation]
    ]
    assert copied == published


# -- generated requests -----------------------------------------------------------------------


@dataclass
class World:
    session: Session
    tenant: Tenant
    contact_id: str
    project_id: str


@pytest.fixture
async def world(client: httpx.AsyncClient, state: SandboxState) -> World:
    state.set_limits(Limits(per_minute=10**9, per_day=10**9, concurrent=10**6))
    session = await connect(client)
    contact = state.add_contact(session.tenant_id, "Acme Ltd", "jo@acme.example")
    state.add_user(session.tenant_id, "Ann Accountant", "ann@practice.example")
    project = state.add_project(
        session.tenant_id, contact_id=contact.contact_id, name="Books", deadline=None, estimate=None
    )
    return World(session, state.tenant(session.tenant_id), contact.contact_id, project.project_id)


def _base(operation: str, world: World) -> Any:
    return {
        "createProject": {"contactId": world.contact_id, "name": "New Kitchen"},
        "updateProject": {"name": "Renamed"},
        "patchProject": {"status": "CLOSED"},
        "createContacts": {"Contacts": [{"Name": "Case Co"}]},
        "updateOrCreateContacts": {"Contacts": [{"Name": "Case Co"}]},
        "updateContact": {"Contacts": [{"Name": "Acme Renamed"}]},
    }.get(operation)


def generate(operation: str, world: World) -> Iterator[Case]:
    """Every case for one operation: each parameter, path value and body member varied."""
    document, found, parameters = _operation(operation)
    prose = cases.prose(world.contact_id)
    for parameter in parameters:
        name = parameter["name"]
        if parameter["in"] == "path":
            yield from _path_cases(operation, name, world)
            continue
        chosen = prose.get((operation, name))
        values = chosen if isinstance(chosen, list) else cases.query_values(document, parameter)
        for value in values:
            if parameter["in"] == "header":
                yield Case(operation, f"header {name}: {value[0]!r}", headers={name: value[0]})
            else:
                yield Case(operation, f"{name}={value!r}", query=[(name, v) for v in value])
    if "requestBody" in found:
        schema = found["requestBody"]["content"]["application/json"]["schema"]
        yield from _body_cases(operation, document, schema, _base(operation, world), prose)


def _path_cases(operation: str, name: str, world: World) -> Iterator[Case]:
    if name == "ContactNumber":
        return  # any string is a valid contact number; an unknown one is a 404
    real = world.project_id if name == "projectId" else world.contact_id
    values = [real, real.upper(), "not-a-uuid", real.replace("-", "")]
    if operation == "getContact":
        values = values[:2]  # on GET, anything else is read as a ContactNumber
    for value in values:
        yield Case(operation, f"path {name}={value!r}", path_value=value)


def _body_cases(
    operation: str,
    document: dict[str, Any],
    schema: dict[str, Any],
    base: dict[str, Any],
    prose: dict[tuple[str, str], Any],
) -> Iterator[Case]:
    for value in ("text", [], 5, None):
        yield Case(operation, f"body = {value!r}", body=value)
    root = cases.resolve(document, schema)
    for name in root.get("required", []):
        rest = {key: value for key, value in base.items() if key != name}
        yield Case(operation, f"body without {name}", body=rest)
    targets: list[tuple[dict[str, Any], dict[str, Any], frozenset[str], bool]]
    if "Contacts" in root.get("properties", {}):
        # A batch: the members of its one contact, then the envelope's other members.
        contact = document["components"]["schemas"]["Contact"]
        targets = [(contact, base["Contacts"][0], frozenset(), True)]
        targets.append((schema, base, frozenset({"Contacts"}), False))
    else:
        targets = [(schema, base, frozenset(), False)]
    for target, start, skip, in_batch in targets:
        for path, member in cases.members(document, target, 2, skip):
            adjust = prose.get((operation, ".".join(path)))
            for value in cases.body_values(document, member):
                if callable(adjust):
                    value = adjust(value)
                body = cases.place(document, target, start, path, value)
                prefix = "Contacts[0]." if in_batch else ""
                label = f"body {prefix}{'.'.join(path)} = {json.dumps(value)[:60]}"
                yield Case(operation, label, body={"Contacts": [body]} if in_batch else body)


def _url(operation: str, case: Case, world: World) -> str:
    spec, _, path = OPERATIONS[operation]
    base = PROJECTS if spec == "projects" else ACCOUNTING
    value = case.path_value
    if value is None:
        value = world.project_id if "{projectId}" in path else world.contact_id
    return base + path.replace("{projectId}", value).replace("{ContactID}", value)


async def _verdict(client: httpx.AsyncClient, world: World, case: Case) -> tuple[bool, str | None]:
    """Whether the spec says the case is valid, and what went wrong if the sandbox disagrees."""
    spec, method, _ = OPERATIONS[case.operation]
    headers = {**world.session.headers(), **case.headers}
    content = None
    if case.has_body:
        headers["Content-Type"] = "application/json"
        content = json.dumps(case.body).encode()
    request = client.build_request(
        method,
        _url(case.operation, case, world),
        params=case.query,
        headers=headers,
        content=content,
    )
    spec_errors = [e for e in openapi.conformance_errors(request, None) if e.startswith("request")]
    contacts, projects = dict(world.tenant.contacts), dict(world.tenant.projects)
    try:
        answer = await client.send(request)
    finally:
        world.tenant.contacts.clear()
        world.tenant.contacts.update(contacts)
        world.tenant.projects.clear()
        world.tenant.projects.update(projects)
    said = f"{answer.status_code} {answer.text[:160]}"
    if not spec_errors:
        return True, None if answer.is_success else f"valid by the spec, sandbox answered {said}"
    refusals = {400, 404} if case.path_value is not None and spec == "accounting" else {400}
    if answer.status_code not in refusals:
        return False, f"invalid by the spec ({spec_errors[0][:160]}), sandbox answered {said}"
    shape = "message" if spec == "projects" else "Type"
    if shape not in answer.json():
        return False, f"refused without Xero's {spec} error shape: {said}"
    return False, None


@pytest.mark.parametrize("operation", sorted(set(OPERATIONS) - {"getContactByContactNumber"}))
async def test_sandbox_accepts_exactly_what_the_spec_accepts(
    client: httpx.AsyncClient, world: World, operation: str
) -> None:
    """Each generated request: accepted if the spec says valid, else a 400 in Xero's shape
    (or a 404 for a malformed Accounting id in the path)."""
    generated = list(generate(operation, world))
    wrong: list[str] = []
    valid = 0
    for case in generated:
        spec_valid, problem = await _verdict(client, world, case)
        valid += spec_valid
        if problem is not None:
            wrong.append(f"{case.label}: {problem}")
    assert not wrong, f"{len(wrong)} of {len(generated)} disagree:\n" + "\n".join(wrong)
    assert valid > 0, "no case is valid: the base request is wrong"
    # GET /Contacts/{x} reads any x that is not a UUID as a ContactNumber: nothing is invalid.
    assert valid < len(generated) or operation == "getContact", "no case is invalid"
