"""Slow salted password hashing (scrypt from the standard library).

Hashing takes tens of milliseconds on purpose; the server runs it in a thread
and remembers successful checks so repeated requests from pip stay fast.

Hashes imported from devpi-server (`lockgate import --from-devpi`) are verified
too, so those users keep their passwords: passlib's argon2 strings
(`$argon2id$...`, devpi 5 and later) and devpi's older salted sha256
(`devpi-sha256$<salt>$<hex>`, lockgate's spelling of devpi's "pwsalt" and
"pwhash"). `needs_rehash` says a hash is not lockgate's own; the login that
proves the password replaces it with scrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
# devpi-server before passlib: sha256(salt + password), the salt kept beside the hash.
DEVPI_SHA256 = "devpi-sha256"
_ARGON2 = PasswordHasher()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(derived)}"


def devpi_legacy_hash(salt: str, hexdigest: str) -> str:
    """The stored form of a devpi user's "pwsalt" and "pwhash" (salted sha256)."""
    return f"{DEVPI_SHA256}${salt}${hexdigest}"


def is_verifiable(stored: str) -> bool:
    """Whether `verify_password` knows this hash's scheme (one imported from devpi
    in a shape lockgate cannot check is not carried over)."""
    if stored.startswith("$argon2"):
        try:
            _ARGON2.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return False
        return True
    parts = stored.split("$")
    if parts[0] == DEVPI_SHA256:
        return len(parts) == 3 and len(parts[2]) == 64 and _is_hex(parts[2])
    return parts[0] == "scrypt" and len(parts) == 6


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def needs_rehash(stored: str) -> bool:
    """True for hashes brought from devpi: the next successful login rehashes."""
    return not stored.startswith("scrypt$")


def _verify_argon2(password: str, stored: str) -> bool:
    try:
        return _ARGON2.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
        return False


def _verify_devpi_sha256(password: str, stored: str) -> bool:
    try:
        _, salt, expected = stored.split("$")
        digest = hashlib.sha256(salt.encode("ascii") + password.encode("utf-8")).hexdigest()
    except (ValueError, UnicodeError):
        return False
    return hmac.compare_digest(digest, expected.lower())


def verify_password(password: str, stored: str) -> bool:
    if stored.startswith("$argon2"):
        return _verify_argon2(password, stored)
    if stored.startswith(DEVPI_SHA256 + "$"):
        return _verify_devpi_sha256(password, stored)
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
        derived = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, expected)


def generate_password() -> str:
    return secrets.token_urlsafe(18)
