"""The error bodies Xero answers with, one builder per API family.

Platform errors (401/403/429/faults) use Xero's problem shape (`Title`, `Status`, `Detail`);
Projects uses `{"message", "modelState"}`; Accounting uses `ValidationException`; identity uses
RFC 6749's `{"error"}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def problem(status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Xero's platform error body, e.g. 403 `AuthenticationUnsuccessful`."""
    body: dict[str, Any] = {
        "Type": None,
        "Title": TITLES.get(status, "Error"),
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def projects_error(
    message: str, model_state: Mapping[str, Sequence[str]] | None = None, *, status: int = 400
) -> JSONResponse:
    """The Projects API's error body (spec component `Error`)."""
    body: dict[str, Any] = {"message": message}
    if model_state:
        body["modelState"] = {key: list(values) for key, values in model_state.items()}
    return JSONResponse(body, status_code=status)


def accounting_validation(elements: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """The Accounting API's 400 `ValidationException` (spec component `Error`)."""
    body = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "Validation failed for one or more items",
        "Elements": [dict(element) for element in elements],
    }
    return JSONResponse(body, status_code=400)


def accounting_error(status: int, error_type: str, message: str) -> JSONResponse:
    """Other Accounting API errors (bad query, not found); the spec documents only 400 bodies."""
    return JSONResponse({"Type": error_type, "Message": message}, status_code=status)


def post_data_invalid(detail: str) -> JSONResponse:
    """The Accounting API's 400 for a body it cannot read into its model (a value of the wrong
    type, format or enum): ErrorNumber 14, `PostDataInvalidException`."""
    body = {
        "ErrorNumber": 14,
        "Type": "PostDataInvalidException",
        "Message": f"JSON for post data was invalid: {detail}",
    }
    return JSONResponse(body, status_code=400)


def oauth_error(error: str, description: str | None = None, *, status: int = 400) -> JSONResponse:
    body = {"error": error}
    if description:
        body["error_description"] = description
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
    return JSONResponse(body, status_code=status, headers=headers)
