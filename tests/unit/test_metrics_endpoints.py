"""Xero call paths become route templates: ids never reach a metric label, whatever they are,
and a path of no known shape is "other", so the label set stays bounded."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.observability.endpoints import OTHER, endpoint_of

UUID = "0b7a0d5e-86a5-4c3c-a1a8-3c1b6a1b6f00"


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/projects.xro/2.0/Projects", "projects.xro/2.0/Projects"),
        (f"/projects.xro/2.0/Projects/{UUID}", "projects.xro/2.0/Projects/{id}"),
        (f"/projects.xro/2.0/Projects/{UUID}/Tasks", "projects.xro/2.0/Projects/{id}/Tasks"),
        (
            f"/projects.xro/2.0/Projects/{UUID}/Tasks/{UUID}",
            "projects.xro/2.0/Projects/{id}/Tasks/{id}",
        ),
        ("/projects.xro/2.0/ProjectsUsers", "projects.xro/2.0/ProjectsUsers"),
        ("/api.xro/2.0/Contacts", "api.xro/2.0/Contacts"),
        (f"/api.xro/2.0/Contacts/{UUID}", "api.xro/2.0/Contacts/{id}"),
        (f"/api.xro/2.0/Invoices/{UUID}", "api.xro/2.0/Invoices/{id}"),
        ("/api.xro/2.0/Contacts?where=Name%3D%22x%22", "api.xro/2.0/Contacts"),
        ("/practicemanager/3.1/job.api/current", "practicemanager/3.1/job.api/current"),
        ("/practicemanager/3.1/job.api/get/J000123", "practicemanager/3.1/job.api/get/{number}"),
        (f"/practicemanager/3.1/job.api/client/{UUID}", "practicemanager/3.1/job.api/client/{id}"),
        (f"/practicemanager/3.1/client.api/get/{UUID}", "practicemanager/3.1/client.api/get/{id}"),
        ("/practicemanager/3.1/client.api/add", "practicemanager/3.1/client.api/add"),
        ("/practicemanager/3.1/staff.api/list", "practicemanager/3.1/staff.api/list"),
    ],
)
def test_paths_syncd_calls_have_their_templates(path: str, template: str) -> None:
    """Each endpoint syncd's Xero modules call, with and without ids."""
    assert endpoint_of(path) == template


@pytest.mark.parametrize(
    "path",
    [
        "/connections",
        "/connect/token",
        "/",
        "",
        f"/projects.xro/2.0/{UUID}",  # an id where a collection name belongs
        "/projects.xro/two/Projects",
        "/practicemanager/3.1/not-an-api/get",
    ],
)
def test_unknown_shapes_are_other(path: str) -> None:
    """Nothing outside the known shapes becomes a label of its own."""
    assert endpoint_of(path) == OTHER


ids = st.text(min_size=1, max_size=40).map(lambda raw: quote(raw, safe=""))


@given(first=ids, second=ids)
def test_any_id_is_replaced(first: str, second: str) -> None:
    """Whatever the ids are (quoted as the API modules quote them), the template is the same."""
    assert endpoint_of(f"/projects.xro/2.0/Projects/{first}/Tasks/{second}") == (
        "projects.xro/2.0/Projects/{id}/Tasks/{id}"
    )
    assert endpoint_of(f"/api.xro/2.0/Contacts/{first}") == "api.xro/2.0/Contacts/{id}"
    assert endpoint_of(f"/practicemanager/3.1/job.api/get/{first}") == (
        "practicemanager/3.1/job.api/get/{number}"
    )
    assert endpoint_of(f"/practicemanager/3.1/client.api/get/{second}") == (
        "practicemanager/3.1/client.api/get/{id}"
    )
