"""The vault: first key encrypts, every key decrypts, rotation moves secrets to the first key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from syncd.vault import Vault, VaultError, generate_key


def test_round_trip_and_ciphertext_hides_the_plaintext() -> None:
    """Encrypting then decrypting gives the value back; the ciphertext does not contain it."""
    vault = Vault([generate_key()])
    secret = "refresh-token-abcdef-123456"
    ciphertext = vault.encrypt(secret)
    assert secret not in ciphertext
    assert vault.decrypt(ciphertext) == secret


def test_old_keys_still_decrypt_and_only_the_first_encrypts() -> None:
    """After adding a new first key, old ciphertexts still open; new ones use the new key."""
    old, new = generate_key(), generate_key()
    before = Vault([old]).encrypt("token-1")
    vault = Vault([new, old])
    assert vault.decrypt(before) == "token-1"
    assert not vault.is_current(before)
    fresh = vault.encrypt("token-2")
    assert vault.is_current(fresh)
    assert Fernet(new.encode()).decrypt(fresh.encode()) == b"token-2"


def test_rotate_moves_a_secret_under_the_first_key() -> None:
    """rotate() re-encrypts so that the old key alone can no longer open it."""
    old, new = generate_key(), generate_key()
    before = Vault([old]).encrypt("token-3")
    rotated = Vault([new, old]).rotate(before)
    assert Vault([new]).decrypt(rotated) == "token-3"
    with pytest.raises(VaultError):
        Vault([old]).decrypt(rotated)


def test_unknown_key_is_a_clear_error() -> None:
    """A ciphertext no configured key opens raises VaultError naming the setting."""
    ciphertext = Vault([generate_key()]).encrypt("x")
    with pytest.raises(VaultError, match="SYNCD_ENCRYPTION_KEYS"):
        Vault([generate_key()]).decrypt(ciphertext)


def test_no_keys_is_refused() -> None:
    """A vault without keys cannot exist."""
    with pytest.raises(VaultError):
        Vault([])
