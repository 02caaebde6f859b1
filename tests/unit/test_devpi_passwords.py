"""Password hashes brought from devpi (docs/reliability.md DX-2): passlib's argon2
and devpi's older salted sha256 verify; anything else is not carried."""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher

from lockgate.accounts.passwords import (
    devpi_legacy_hash,
    hash_password,
    is_verifiable,
    needs_rehash,
    verify_password,
)


def test_passlib_argon2_hash_verifies_and_asks_for_a_rehash() -> None:
    # passlib's argon2 scheme writes the reference "$argon2id$v=19$..." string.
    stored = PasswordHasher(time_cost=1, memory_cost=1024).hash("old-pw")
    assert is_verifiable(stored)
    assert verify_password("old-pw", stored)
    assert not verify_password("other", stored)
    assert needs_rehash(stored)


def test_devpi_salted_sha256_verifies() -> None:
    salt = "c2FsdHNhbHRzYWx0c2FsdA=="
    stored = devpi_legacy_hash(salt, hashlib.sha256((salt + "pässword").encode()).hexdigest())
    assert is_verifiable(stored)
    assert verify_password("pässword", stored)
    assert not verify_password("password", stored)
    assert needs_rehash(stored)


def test_unknown_or_broken_hashes_are_not_carried() -> None:
    for stored in ("{SSHA}abc", "", "$argon2id$broken", "devpi-sha256$salt$nothex"):
        assert not is_verifiable(stored), stored
        assert not verify_password("x", stored)


def test_lockgate_scrypt_stays() -> None:
    stored = hash_password("pw")
    assert is_verifiable(stored) and verify_password("pw", stored)
    assert not needs_rehash(stored)
