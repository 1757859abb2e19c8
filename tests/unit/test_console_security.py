"""The console's sign-in and session decisions as plain functions: where a browser came from,
origins, the Secure flag, the signed cookie, what a sign-in link is remembered by, and which
links sign anyone in (no database, no app)."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest

from syncd.web.auth import JwtVerifier, Role, mint_token
from syncd.web.pages.handoff import Came, Link, Refusal, came_from, handoff_id, read_link
from syncd.web.session import decode, digest, encode, origin_of, own_origins, secure_flag
from tests.conftest import make_settings

CRM = "https://crm.example"
OWN = frozenset({"https://syncd.example"})
SETTINGS = make_settings()
VERIFIER = JwtVerifier(SETTINGS)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://CRM.example/settings?x=1", "https://crm.example"),
        ("https://crm.example:443/", "https://crm.example"),
        ("http://crm.example:80", "http://crm.example"),
        ("http://crm.example:8080/a", "http://crm.example:8080"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
        ("null", None),
        ("ftp://crm.example/", None),
        ("https://crm.example:99999/", None),
        ("", None),
    ],
)
def test_origins_are_normalised(url: str, origin: str | None) -> None:
    """`scheme://host[:port]`, lower case, default ports dropped; anything else is None."""
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    ("origin", "referer", "crm", "came"),
    [
        (None, "https://crm.example/practice/1", CRM, Came.CRM),
        ("https://crm.example", None, CRM, Came.CRM),
        ("https://crm.example", "https://evil.example/", CRM, Came.CRM),  # Origin first
        ("https://evil.example", "https://crm.example/", CRM, Came.ELSEWHERE),
        (None, "https://evil.example/", CRM, Came.ELSEWHERE),
        (None, "http://crm.example/", CRM, Came.ELSEWHERE),  # another scheme is another origin
        (None, "https://crm.example.evil.example/", CRM, Came.ELSEWHERE),
        (None, "not a url", CRM, Came.ELSEWHERE),
        (None, None, CRM, Came.UNSAID),
        ("null", None, CRM, Came.UNSAID),  # a privacy-preserving browser says nothing
        (None, "https://syncd.example/admin", CRM, Came.UNSAID),  # our own page
        (None, "https://evil.example/", None, Came.UNSAID),  # no SYNCD_CRM_URL to match
    ],
)
def test_where_a_browser_came_from(
    origin: str | None, referer: str | None, crm: str | None, came: Came
) -> None:
    """Only the CRM's origin signs in at once; a foreign one is refused; silence asks."""
    assert came_from(origin=origin, referer=referer, crm=crm, own=OWN) is came


@pytest.mark.parametrize(
    ("mode", "scheme", "secure"),
    [
        ("auto", "http", False),
        ("auto", "https", True),
        ("always", "http", True),
        ("never", "https", False),
    ],
)
def test_the_secure_flag(mode: str, scheme: str, secure: bool) -> None:
    """SYNCD_COOKIE_SECURE: auto follows the request's scheme; always and never do not."""
    assert secure_flag(mode, scheme) is secure  # type: ignore[arg-type]


def test_behind_a_tls_proxy_the_https_origin_is_our_own() -> None:
    """With SYNCD_COOKIE_SECURE=always, forms posted from https://host are this app's."""
    assert own_origins("http", "syncd.example", "always") == {
        "http://syncd.example",
        "https://syncd.example",
    }
    assert own_origins("http", "syncd.example:8000", "auto") == {"http://syncd.example:8000"}


def test_the_cookie_is_signed() -> None:
    """The cookie names its practice and secret; a changed byte or another key is refused."""
    key, other = b"k" * 32, b"o" * 32
    value = encode(key, "company-a", "secret")
    assert decode(key, value) == ("company-a", "secret")
    assert decode(other, value) is None
    body, _, mac = value.partition(".")
    assert decode(key, f"{body[:-1]}A.{mac}") is None
    assert decode(key, "garbage") is None
    assert decode(key, encode(key, "", "secret")) is None


def test_a_link_is_remembered_by_its_jti_or_its_hash() -> None:
    """Same jti and subject → same id; no jti → the token's hash; never the token itself."""
    assert handoff_id("t1", {"sub": "u", "jti": "j"}) == handoff_id("t2", {"sub": "u", "jti": "j"})
    assert handoff_id("t1", {"sub": "u", "jti": "j"}) != handoff_id("t1", {"sub": "v", "jti": "j"})
    assert handoff_id("t1", {"sub": "u"}) == digest("token\x00t1")
    assert "t1" not in handoff_id("t1", {"sub": "u"})


def token(role: Role, company: str | None, minutes: int = 5) -> str:
    return mint_token(
        SETTINGS, user="u-1", role=role, company=company, ttl=timedelta(minutes=minutes)
    )


def test_minted_links_are_distinct() -> None:
    """Two links minted in the same second differ (their own jti), so each works once."""
    first, second = token(Role.PRACTICE_ADMIN, "c-1"), token(Role.PRACTICE_ADMIN, "c-1")
    claims = jwt.decode(first, options={"verify_signature": False})
    assert first != second and claims["jti"]


def test_a_practice_admins_link_opens_their_practice() -> None:
    """The link resolves to the admin's own practice, remembered until it expires."""
    link = read_link(VERIFIER, token(Role.PRACTICE_ADMIN, "c-1"), "ignored", now=time.time())
    assert isinstance(link, Link)
    assert (link.company, link.principal.user_id) == ("c-1", "u-1")
    assert link.expires_at.timestamp() > time.time() + 4 * 60


@pytest.mark.parametrize(
    ("role", "company", "asked", "minutes", "status"),
    [
        (Role.SUPER_ADMIN, None, None, 5, 400),  # a super admin names the practice
        (Role.ACCOUNTANT, "c-1", None, 5, 403),
        (Role.CLIENT, "c-1", None, 5, 403),
        (Role.PRACTICE_ADMIN, None, None, 5, 403),  # an admin of no practice
        (Role.PRACTICE_ADMIN, "c-1", None, 60, 401),  # not short-lived
        (Role.SUPER_ADMIN, None, "x" * 37, 5, 400),  # not a practice id
    ],
)
def test_links_that_sign_nobody_in(
    role: Role, company: str | None, asked: str | None, minutes: int, status: int
) -> None:
    """Each refusal names its page status."""
    refusal = read_link(VERIFIER, token(role, company, minutes), asked, now=time.time())
    assert isinstance(refusal, Refusal) and refusal.status == status


def test_a_forged_link_signs_nobody_in() -> None:
    """A token not signed with the CRM's key, or not a token at all, is the 401 page."""
    forged = jwt.encode(
        {"sub": "u", "role": "practice_admin", "company_id": "c", "exp": time.time() + 60},
        "not-the-crm-secret-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    for value in (forged, "a.b.c", "nonsense"):
        refusal = read_link(VERIFIER, value, None, now=time.time())
        assert isinstance(refusal, Refusal) and refusal.status == 401
