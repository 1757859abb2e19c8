"""Token encryption at rest: MultiFernet over SYNCD_ENCRYPTION_KEYS (first encrypts, all decrypt).

Imports nothing from syncd but settings' Secret.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from syncd.settings import Secret


class VaultError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


class Vault:
    def __init__(self, keys: Sequence[Secret | str]) -> None:
        if not keys:
            raise VaultError("no encryption keys configured (SYNCD_ENCRYPTION_KEYS)")
        self._fernet = MultiFernet(
            [Fernet(k.reveal() if isinstance(k, Secret) else k) for k in keys]
        )
        self._primary = Fernet(keys[0].reveal() if isinstance(keys[0], Secret) else keys[0])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise VaultError(
                "a stored secret matches none of SYNCD_ENCRYPTION_KEYS (was a key removed?)"
            ) from None

    def is_current(self, ciphertext: str) -> bool:
        """True when `ciphertext` is already encrypted under the first (current) key."""
        try:
            self._primary.decrypt(ciphertext.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise VaultError(
                "a stored secret matches none of SYNCD_ENCRYPTION_KEYS (was a key removed?)"
            ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")
