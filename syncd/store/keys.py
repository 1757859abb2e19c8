"""Re-encrypt every stored secret under the vault's first key, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from syncd.store.connections import GrantRepository
from syncd.store.db import Database
from syncd.store.oauth_states import OAuthStateRepository
from syncd.vault import Vault


@dataclass(frozen=True, slots=True)
class RotationReport:
    grants: int
    states: int
    secrets: int
    were_old: int

    @property
    def rows(self) -> int:
        return self.grants + self.states


async def rotate_all(db: Database, vault: Vault) -> RotationReport:
    """All or nothing: a secret no key can open aborts the whole rotation."""
    secrets = were_old = 0

    def rotate(ciphertext: str) -> str:
        nonlocal secrets, were_old
        secrets += 1
        if not vault.is_current(ciphertext):
            were_old += 1
        return vault.rotate(ciphertext)

    async with db.transaction() as session:
        grants = await GrantRepository(session).all_across_companies()
        for grant in grants:
            grant.access_token_enc = rotate(grant.access_token_enc)
            grant.refresh_token_enc = rotate(grant.refresh_token_enc)
            if grant.previous_refresh_token_enc is not None:
                grant.previous_refresh_token_enc = rotate(grant.previous_refresh_token_enc)
        states = await OAuthStateRepository(session).all_across_companies()
        for state in states:
            state.code_verifier_enc = rotate(state.code_verifier_enc)
    return RotationReport(
        grants=len(grants), states=len(states), secrets=secrets, were_old=were_old
    )
