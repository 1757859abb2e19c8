"""Secrets at rest: tokens are encrypted in the database, and `keys rotate` moves them all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from syncd.domain.ids import CompanyId
from syncd.store.connections import ConnectionRepository, GrantRepository
from syncd.store.db import Database
from syncd.store.keys import rotate_all
from syncd.store.models import OAuthGrant, OAuthState, XeroConnection
from syncd.store.oauth_states import OAuthStateRepository
from syncd.vault import Vault, generate_key

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACCESS = "access-plaintext-7f3a9c1e5b"
REFRESH = "refresh-plaintext-2d8e6f4a0c"
PREVIOUS = "previous-plaintext-9b1c3d5e7f"
VERIFIER = "verifier-plaintext-4e6a8c0b2d"


async def store_secrets(db: Database, vault: Vault, company: CompanyId) -> None:
    async with db.transaction() as s:
        grant = await GrantRepository(s).add(
            OAuthGrant(
                access_token_enc=vault.encrypt(ACCESS),
                refresh_token_enc=vault.encrypt(REFRESH),
                previous_refresh_token_enc=vault.encrypt(PREVIOUS),
                access_expires_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await ConnectionRepository(s).save(
            company=company,
            connection=XeroConnection(
                company_id=company,
                grant_id=grant.id,
                tenant_id="t-1",
                connected_at=NOW,
                updated_at=NOW,
            ),
        )
        await OAuthStateRepository(s).add(
            company=company,
            state=OAuthState(
                id="st-1",
                company_id=company,
                user_id="u-1",
                code_verifier_enc=vault.encrypt(VERIFIER),
                created_at=NOW,
                expires_at=NOW + timedelta(minutes=10),
            ),
        )


async def raw_dump(db: Database) -> str:
    """Every value of the secret-bearing tables, read without the ORM or the vault."""
    parts: list[str] = []
    async with db.engine.connect() as connection:
        for table in ("oauth_grants", "oauth_states", "xero_connections"):
            rows = (await connection.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            parts.extend(str(value) for row in rows for value in row)
    return "\n".join(parts)


async def test_no_token_plaintext_in_the_database(db: Database) -> None:
    """Reading raw rows finds ciphertext only; the vault opens it again."""
    vault = Vault([generate_key()])
    await store_secrets(db, vault, CompanyId("c-1"))
    dump = await raw_dump(db)
    for secret in (ACCESS, REFRESH, PREVIOUS, VERIFIER):
        assert secret not in dump
    async with db.transaction() as s:
        grant = await GrantRepository(s).for_company(company=CompanyId("c-1"))
        assert grant is not None
        assert vault.decrypt(grant.refresh_token_enc) == REFRESH


async def test_sqlite_file_bytes_hold_no_plaintext(sqlite_db: Database) -> None:
    """On SQLite, the database file itself (and its WAL) contains no token bytes."""
    db = sqlite_db
    from pathlib import Path

    from sqlalchemy.engine import make_url

    await store_secrets(db, Vault([generate_key()]), CompanyId("c-1"))
    path = Path(str(make_url(db.url).database))
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert len(data) > 0
    for secret in (ACCESS, REFRESH, PREVIOUS, VERIFIER):
        assert secret.encode() not in data


async def test_rotate_re_encrypts_everything_under_the_first_key(db: Database) -> None:
    """After rotation the new key alone opens every secret, and the counts say what moved."""
    old, new = generate_key(), generate_key()
    await store_secrets(db, Vault([old]), CompanyId("c-1"))
    report = await rotate_all(db, Vault([new, old]))
    assert (report.grants, report.states, report.secrets, report.were_old) == (1, 1, 4, 4)
    only_new = Vault([new])
    async with db.transaction() as s:
        grant = await GrantRepository(s).for_company(company=CompanyId("c-1"))
        state = await OAuthStateRepository(s).get(company=CompanyId("c-1"), state_id="st-1")
    assert grant is not None and state is not None
    assert only_new.decrypt(grant.access_token_enc) == ACCESS
    assert only_new.decrypt(grant.refresh_token_enc) == REFRESH
    assert grant.previous_refresh_token_enc is not None
    assert only_new.decrypt(grant.previous_refresh_token_enc) == PREVIOUS
    assert only_new.decrypt(state.code_verifier_enc) == VERIFIER
    again = await rotate_all(db, Vault([new, old]))
    assert again.were_old == 0


async def test_rotation_is_all_or_nothing(db: Database) -> None:
    """If one secret opens with no configured key, nothing is rewritten."""
    import pytest

    from syncd.vault import VaultError

    first, stranger = generate_key(), generate_key()
    await store_secrets(db, Vault([first]), CompanyId("c-1"))
    async with db.transaction() as s:
        state = await OAuthStateRepository(s).get(company=CompanyId("c-1"), state_id="st-1")
        assert state is not None
        state.code_verifier_enc = Vault([stranger]).encrypt(VERIFIER)
    before = await raw_dump(db)
    with pytest.raises(VaultError):
        await rotate_all(db, Vault([generate_key(), first]))
    assert await raw_dump(db) == before
