"""Xero's official OpenAPI specs for contract tests: loading (parsed once per session), a
recording httpx transport, `assert_conforms`, which checks recorded requests and responses
against the spec of the Xero host they were meant for, and `webhook_errors`, which checks a
webhook body the sandbox sent against the webhooks spec's payload schema.

The specs are read from `SYNCD_XERO_OPENAPI_DIR` (default `<repo>/../shared/xero-openapi`).
A few known defects of the published specs are repaired in memory before use; each repair is
listed in `REPAIRS` with the reason, so a discrepancy is never silently papered over.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator, OAS31Validator, oas31_format_checker
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_FILES = {
    "projects": "xero-projects.yaml",
    "accounting": "xero_accounting.yaml",
    "identity": "xero-identity.yaml",
    "webhooks": "xero-webhooks.yaml",
}
XERO_HOST = "https://api.xero.com"
# Paths the sandbox serves that no published spec describes (login pages, revocation) and the
# sandbox's own control API: recorded, but there is nothing to validate them against.
UNSPECIFIED = ("/identity/connect/authorize", "/connect/revocation", "/_sandbox/")
# Platform answers documented outside the specs (auth, limits, outages, and the sandbox's 422
# for an Idempotency-Key reused on a different request, for which Xero documents no status):
# their bodies are not validated, only the request that caused them.
PLATFORM_STATUSES = frozenset({401, 403, 404, 406, 422, 429, 500, 502, 503, 504})


def spec_dir() -> Path:
    configured = os.environ.get("SYNCD_XERO_OPENAPI_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "xero-openapi"


def _require(name: str) -> Path:
    path = spec_dir() / SPEC_FILES[name]
    if not path.is_file():
        pytest.skip(
            f"Xero's OpenAPI spec {path.name} is not in {path.parent}. Contract tests need "
            f"{', '.join(SPEC_FILES.values())} from Xero's public repository "
            "https://github.com/XeroAPI/Xero-OpenAPI (e.g. `git clone --depth 1 "
            "https://github.com/XeroAPI/Xero-OpenAPI` and copy them), in that directory or in "
            "the one SYNCD_XERO_OPENAPI_DIR names."
        )
    return path


# -- repairs of the published specs -----------------------------------------------------------


def _booleans_from_strings(document: dict[str, Any]) -> int:
    """Accounting: several `type: boolean` schemas declare `default: "false"` (a string). The
    spec then fails OpenAPI validation and openapi-core rejects every Contact it fills defaults
    into. Repair: the booleans the strings mean."""
    fixed = 0

    def walk(node: Any) -> None:
        nonlocal fixed
        if isinstance(node, dict):
            if node.get("type") == "boolean":
                for key in ("default", "example"):
                    if isinstance(node.get(key), str):
                        node[key] = node[key].strip().lower() == "true"
                        fixed += 1
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(document)
    return fixed


def _connection_dates(document: dict[str, Any]) -> int:
    """Identity: `Connection.createdDateUtc`/`updatedDateUtc` are declared `format: date-time`
    (RFC 3339, which needs a zone), but Xero sends them without one (seven fractional digits,
    no "Z"), as the spec's own example shows. Repair: a pattern for Xero's actual form."""
    properties = document["components"]["schemas"]["Connection"]["properties"]
    for name in ("createdDateUtc", "updatedDateUtc"):
        properties[name].pop("format", None)
        properties[name]["pattern"] = (
            r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})?$"
        )
    return 2


def _event_dates_without_zone(document: dict[str, Any]) -> int:
    """Webhooks: `eventDateUtc` is declared `format: date-time` (RFC 3339, which needs a zone),
    but Xero sends it without one, with milliseconds, as the spec's own examples show. Repair:
    a pattern for Xero's actual form."""
    events = document["components"]["schemas"]["WebhookEvent"]["properties"]["events"]
    date = events["items"]["properties"]["eventDateUtc"]
    date.pop("format", None)
    date["pattern"] = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}$"
    return 1


REPAIRS: dict[str, tuple[Callable[[dict[str, Any]], int], ...]] = {
    "accounting": (_booleans_from_strings,),
    "identity": (_connection_dates,),
    "webhooks": (_event_dates_without_zone,),
}


@functools.cache
def load_document(name: str) -> dict[str, Any]:
    """The parsed (and repaired) spec document; parsed once per test session."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with _require(name).open("rb") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=loader)  # noqa: S506
    for repair in REPAIRS.get(name, ()):
        repair(document)
    return document


@functools.cache
def load_spec(name: str) -> OpenAPI:
    """An openapi-core app for a spec; the repaired spec must itself be valid OpenAPI."""
    return OpenAPI.from_dict(load_document(name))


# -- recording --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    request: httpx.Request
    response: httpx.Response | None  # None: the answer never arrived (a dropped connection)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps another transport and records every request with its (fully read) response."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    @property
    def pairs(self) -> list[tuple[httpx.Request, httpx.Response | None]]:
        return [(e.request, e.response) for e in self.exchanges]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError:
            self.exchanges.append(Exchange(request, None))
            raise
        content = await response.aread()
        await response.aclose()
        recorded = httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )
        self.exchanges.append(Exchange(request, recorded))
        return recorded

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- adapting httpx to openapi-core ----------------------------------------------------------


@dataclass
class _SpecRequest:
    """openapi-core's Request protocol over a recorded httpx request, addressed at Xero."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)


@dataclass
class _SpecResponse:
    status_code: int
    headers: Headers
    content_type: str
    data: bytes | None


def _canonical_path(path: str, templates: Iterable[str]) -> str:
    """`path` with literal segments spelled as in the spec (Xero matches paths in any case)."""
    parts = path.split("/")
    for template in templates:
        pattern = template.split("/")
        if len(pattern) != len(parts):
            continue
        if all(
            p.startswith("{") or p.lower() == s.lower() for p, s in zip(pattern, parts, strict=True)
        ):
            return "/".join(
                s if p.startswith("{") else p for p, s in zip(pattern, parts, strict=True)
            )
    return path


def spec_name_for(path: str) -> str | None:
    lower = path.lower()
    if lower.startswith("/projects.xro/2.0/"):
        return "projects"
    if lower.startswith("/api.xro/2.0/"):
        return "accounting"
    if lower == "/connections" or lower.startswith("/connections/"):
        return "identity"
    if lower == "/connect/token":
        return "token"
    return None


def _server_prefix(name: str) -> str:
    return {"projects": "/projects.xro/2.0", "accounting": "/api.xro/2.0"}.get(name, "")


def _adapt(name: str, request: httpx.Request) -> _SpecRequest:
    prefix = _server_prefix(name)
    relative = request.url.path[len(prefix) :]
    templates = load_document(name)["paths"].keys()
    path = prefix + _canonical_path(relative, templates)
    content_type = request.headers.get("content-type", "")
    query = parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
    return _SpecRequest(
        host_url=XERO_HOST,
        path=path,
        method=request.method.lower(),
        body=request.content or None,
        content_type=content_type.lower(),
        parameters=RequestParameters(
            query=ImmutableMultiDict(query), header=Headers(list(request.headers.items()))
        ),
    )


def _adapt_response(response: httpx.Response) -> _SpecResponse:
    return _SpecResponse(
        status_code=response.status_code,
        headers=Headers(list(response.headers.items())),
        content_type=response.headers.get("content-type", "").lower(),
        data=response.content or None,
    )


def _describe(error: BaseException) -> str:
    """One line for the error, then one per schema violation found beneath it."""
    summary = f"{type(error).__name__}: {error}"
    details = [summary if len(summary) <= 160 else summary[:157] + "..."]
    cause: BaseException | None = error.__cause__
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            details.extend(
                f"  - {e.message[:200]} at {list(e.absolute_path)}" for e in schema_errors
            )
        else:
            details.append(f"  - {str(cause)[:200]}")
        cause = cause.__cause__
    return "\n".join(details)


def _token_errors(request: httpx.Request, response: httpx.Response | None) -> Iterator[str]:
    """The token endpoint is not a path in xero-identity.yaml; its form and answer are checked
    against the spec's `RefreshToken` and `AccessToken` schema components."""
    components = load_document("identity")["components"]
    form = dict(parse_qsl(request.content.decode("utf-8")))
    if form.get("grant_type") == "refresh_token":
        schema = {"$ref": "#/components/schemas/RefreshToken", "components": components}
        for error in OAS30Validator(schema).iter_errors(form):
            yield f"request form: {error.message}"
    if response is None:
        return
    body = response.json()
    if response.status_code == 200:
        schema = {"$ref": "#/components/schemas/AccessToken", "components": components}
        for error in OAS30Validator(schema).iter_errors(body):
            yield f"response: {error.message} at {list(error.absolute_path)}"
        for required in ("access_token", "expires_in", "token_type"):
            if required not in body:
                yield f"response: {required} missing"
    elif not isinstance(body, dict) or not isinstance(body.get("error"), str):
        yield 'error response is not RFC 6749 {"error": "..."}'


def conformance_errors(request: httpx.Request, response: httpx.Response | None) -> list[str]:
    """Everything about one exchange that disagrees with Xero's spec (empty: it conforms)."""
    path = request.url.path
    if path.startswith(UNSPECIFIED):
        return []
    name = spec_name_for(path)
    if name is None:
        return [f"no Xero spec covers {request.method} {path}"]
    if name == "token":
        return list(_token_errors(request, response))
    app = load_spec(name)
    adapted = _adapt(name, request)
    problems: list[str] = []
    with warnings.catch_warnings():
        # openapi-core cannot evaluate OAuth2 security schemes and says so with a warning.
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        problems.extend(f"request: {_describe(e)}" for e in app.iter_request_errors(adapted))
        if response is not None and response.status_code not in PLATFORM_STATUSES:
            problems.extend(
                f"response {response.status_code}: {_describe(e)}"
                for e in app.iter_response_errors(adapted, _adapt_response(response))
            )
    return problems


def assert_conforms(pairs: Iterable[tuple[httpx.Request, httpx.Response | None]]) -> list[str]:
    """Validate each request and response against its spec; returns what was checked, as
    "METHOD path -> spec" lines, and fails listing every disagreement."""
    checked: list[str] = []
    failures: list[str] = []
    for request, response in pairs:
        label = f"{request.method} {request.url.path}"
        errors = conformance_errors(request, response)
        checked.append(f"{label} -> {spec_name_for(request.url.path) or 'unspecified'}")
        if errors:
            status = response.status_code if response is not None else "dropped"
            body = response.text[:500] if response is not None else ""
            failures.append(f"{label} ({status}):\n" + "\n".join(errors) + f"\n  body: {body}")
    if failures:
        raise AssertionError("not as Xero's spec says:\n\n" + "\n\n".join(failures))
    return checked


# -- webhook payloads -------------------------------------------------------------------------

PayloadKind = Literal["spec", "intent"]


def webhook_schema(kind: PayloadKind = "spec") -> dict[str, Any]:
    """The webhooks spec's `WebhookEvent` payload schema (JSON Schema 2020-12, OpenAPI 3.1's
    dialect), for one kind of body:

    - "spec": as published (repaired), for CONTACT and INVOICE deliveries. Xero has no Projects
      or Practice Manager webhooks (xero-facts 1.1), and neither has the sandbox.
    - "intent": intent-to-receive bodies, which carry no events and sequence numbers 0, below
      the spec's minimum of 1 (xero-facts 1.4, 1.6).
    """
    schema: dict[str, Any] = copy.deepcopy(
        load_document("webhooks")["components"]["schemas"]["WebhookEvent"]
    )
    properties = schema["properties"]
    if kind == "intent":
        properties["events"]["maxItems"] = 0
        for name in ("firstEventSequence", "lastEventSequence"):
            properties[name] = {"type": "integer", "const": 0}
    return schema


def webhook_errors(body: bytes, kind: PayloadKind = "spec") -> list[str]:
    """Everything about a webhook body that disagrees with the schema (empty: it conforms)."""
    validator = OAS31Validator(webhook_schema(kind), format_checker=oas31_format_checker)
    return [
        f"{error.message} at {list(error.absolute_path)}"
        for error in validator.iter_errors(json.loads(body))
    ]
