"""The CRM's JWTs and the role rules (no database)."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from syncd.settings import Secret
from syncd.web.auth import JwtVerifier, Principal, Role, company_for, mint_token
from syncd.web.errors import ApiError
from tests.conftest import make_settings

SETTINGS = make_settings()


def test_minted_tokens_verify_with_their_claims() -> None:
    """`syncd token`'s JWT carries sub, role and company_id and verifies with the secret."""
    token = mint_token(
        SETTINGS, user="u-1", role=Role.PRACTICE_ADMIN, company="c-1", ttl=timedelta(minutes=5)
    )
    principal = JwtVerifier(SETTINGS).verify(token)
    assert principal == Principal(user_id="u-1", role=Role.PRACTICE_ADMIN, company_id="c-1")


@pytest.mark.parametrize(
    ("claims", "key", "status"),
    [
        ({"sub": "u", "role": "practice_admin", "exp": 1}, "right", 401),  # expired
        ({"sub": "u", "role": "practice_admin"}, "right", 401),  # no exp
        ({"role": "practice_admin", "exp": 9_999_999_999}, "right", 401),  # no sub
        ({"sub": "u", "role": "practice_admin", "exp": 9_999_999_999}, "wrong", 401),  # bad sig
        ({"sub": "u", "role": "janitor", "exp": 9_999_999_999}, "right", 403),  # unknown role
    ],
)
def test_bad_tokens_are_refused(claims: dict[str, object], key: str, status: int) -> None:
    """Expired, incomplete, mis-signed tokens are 401; an unknown role is 403."""
    secret = SETTINGS.jwt_secret.reveal() if SETTINGS.jwt_secret else ""
    token = jwt.encode(
        claims, secret if key == "right" else "another-secret-0123456789-abcdefghij", "HS256"
    )
    with pytest.raises(ApiError) as caught:
        JwtVerifier(SETTINGS).verify(token)
    assert caught.value.status_code == status


def test_rs256_public_key_is_supported() -> None:
    """A CRM signing with RS256 is verified with SYNCD_JWT_PUBLIC_KEY."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = make_settings(jwt_public_key=public_pem, jwt_secret=None)
    token = jwt.encode(
        {"sub": "u-9", "role": "super_admin", "exp": int(time.time()) + 60}, private, "RS256"
    )
    assert JwtVerifier(settings).verify(token).role is Role.SUPER_ADMIN
    forged = jwt.encode(
        {"sub": "u", "role": "super_admin", "exp": int(time.time()) + 60},
        "guess-the-secret-0123456789abcdefghij",
        "HS256",
    )
    with pytest.raises(ApiError):
        JwtVerifier(settings).verify(forged)


def test_unconfigured_verification_is_503() -> None:
    """Without a secret or key, admin calls say the service is not configured."""
    with pytest.raises(ApiError) as caught:
        JwtVerifier(make_settings(jwt_secret=None)).verify("x.y.z")
    assert caught.value.status_code == 503


SUPER = Principal(user_id="s", role=Role.SUPER_ADMIN, company_id=None)
ADMIN_A = Principal(user_id="a", role=Role.PRACTICE_ADMIN, company_id="A")


@pytest.mark.parametrize(
    ("principal", "requested", "outcome"),
    [
        (SUPER, "B", "B"),
        (SUPER, None, 400),
        (ADMIN_A, None, "A"),
        (ADMIN_A, "A", "A"),
        (ADMIN_A, "B", 403),
        (Principal(user_id="p", role=Role.PRACTICE_ADMIN, company_id=None), None, 403),
        (Principal(user_id="x", role=Role.ACCOUNTANT, company_id="A"), "A", 403),
        (Principal(user_id="y", role=Role.CLIENT, company_id="A"), None, 403),
    ],
)
def test_role_rules(principal: Principal, requested: str | None, outcome: str | int) -> None:
    """Super admin names any practice; practice admin only their own; others nothing."""
    if isinstance(outcome, str):
        assert company_for(principal, requested) == outcome
    else:
        with pytest.raises(ApiError) as caught:
            company_for(principal, requested)
        assert caught.value.status_code == outcome


def test_minting_needs_the_secret() -> None:
    """No secret, no development tokens."""
    with pytest.raises(ValueError, match="SYNCD_JWT_SECRET"):
        mint_token(
            make_settings(jwt_secret=None),
            user="u",
            role=Role.CLIENT,
            company="c",
            ttl=timedelta(minutes=1),
        )


def test_secret_type_is_used() -> None:
    """The settings' secret is a Secret (kept out of reprs)."""
    assert isinstance(SETTINGS.jwt_secret, Secret)
