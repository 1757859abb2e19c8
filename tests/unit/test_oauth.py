"""OAuth pure parts: PKCE, authorize URL, signed state, token and connection parsing."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.domain.errors import PermanentError
from syncd.xero.oauth import (
    StateError,
    authorize_url,
    parse_connections,
    parse_token_response,
    pkce_pair,
    sign_token,
    unsign_token,
)

KEY = b"k" * 32


def test_pkce_pair_matches_rfc_7636() -> None:
    """The verifier uses the allowed alphabet and length; the challenge is its S256 hash."""
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == expected.decode()


def test_authorize_url_carries_everything_xero_needs() -> None:
    """Code flow, the configured scopes, state and the S256 challenge."""
    url = authorize_url(
        login_url="https://login.example",
        client_id="cid",
        redirect_uri="http://localhost/cb",
        scopes=("openid", "projects"),
        state="s.t.u",
        code_challenge="abc",
    )
    parts = urlsplit(url)
    assert parts.path == "/identity/connect/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": "http://localhost/cb",
        "scope": "openid projects",
        "state": "s.t.u",
        "code_challenge": "abc",
        "code_challenge_method": "S256",
    }


def test_signed_state_round_trips() -> None:
    """What we sign we can read back."""
    assert unsign_token(KEY, sign_token(KEY, "company-1", "nonce"), parts=2) == [
        "company-1",
        "nonce",
    ]


@given(st.integers(min_value=0), st.sampled_from("abcdefXYZ019-_"))
def test_any_change_to_a_state_is_rejected(position: int, replacement: str) -> None:
    """Changing any one character of a signed state breaks it."""
    token = sign_token(KEY, "company-1", "nonce")
    index = position % len(token)
    if token[index] == replacement:
        return
    tampered = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(StateError):
        unsign_token(KEY, tampered, parts=2)


def test_state_from_another_key_or_shape_is_rejected() -> None:
    """A state signed elsewhere, or with the wrong number of parts, is refused."""
    with pytest.raises(StateError):
        unsign_token(b"x" * 32, sign_token(KEY, "a", "b"), parts=2)
    with pytest.raises(StateError):
        unsign_token(KEY, sign_token(KEY, "a", "b", "c"), parts=2)


def test_token_response_parsing_and_auth_event() -> None:
    """The consent id is read from the access token's claims."""
    access = jwt.encode({"authentication_event_id": "ev-1"}, "s" * 32, "HS256")
    tokens = parse_token_response(
        {"access_token": access, "refresh_token": "r", "expires_in": 1800, "scope": "openid"}
    )
    assert tokens.auth_event_id == "ev-1"
    assert tokens.expires_in == 1800
    with pytest.raises(PermanentError, match="offline_access"):
        parse_token_response({"access_token": "a", "expires_in": 1800})


def test_connections_parsing() -> None:
    """Connections keep their ids, tenant and type; incomplete items are skipped."""
    parsed = parse_connections(
        [
            {
                "id": "c1",
                "tenantId": "t1",
                "tenantType": "ORGANISATION",
                "tenantName": "Org",
                "authEventId": "e",
            },
            {"id": "c2", "tenantId": "t2", "tenantType": "PRACTICEMANAGER", "tenantName": None},
            {"tenantId": "t3"},
        ]
    )
    assert [(c.connection_id, c.tenant_id, c.tenant_type) for c in parsed] == [
        ("c1", "t1", "ORGANISATION"),
        ("c2", "t2", "PRACTICEMANAGER"),
    ]
