"""Session cookies and the redirect after login, without a server
(docs/reliability.md WM-1, WM-2)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lockgate.accounts.forms import safe_next, words
from lockgate.accounts.sessions import SESSION_TTL, SessionKeys, ensure_session_key


def test_a_cookie_holds_only_under_its_key_and_until_it_expires() -> None:
    keys = SessionKeys(b"a" * 32)
    cookie, expires = keys.issue("alice", "scrypt$hash")
    assert abs(expires - (time.time() + SESSION_TTL)) < 5
    claims = keys.claims(cookie)
    assert claims is not None and claims["u"] == "alice"
    assert claims["p"] == keys.password_fingerprint("scrypt$hash")
    assert keys.password_fingerprint("scrypt$other") != claims["p"]
    assert SessionKeys(b"b" * 32).claims(cookie) is None
    version, body, mac = cookie.split(".")
    assert keys.claims(f"{version}.{body[:-1]}.{mac}") is None
    assert keys.claims(f"v0.{body}.{mac}") is None
    for junk in ("", "v1", "v1..", "v1.e30.", "v1.!!!.x"):
        assert keys.claims(junk) is None
    old, _ = keys.issue("alice", "scrypt$hash", now=time.time() - SESSION_TTL - 1)
    assert keys.claims(old) is None
    # Tokens are bound to their purpose and value.
    assert keys.csrf_token("s1") != keys.csrf_token("s2")
    assert keys.csrf_token("s1") != keys.login_token("s1")


def test_the_key_is_made_once_and_shared(tmp_path: Path) -> None:
    first = ensure_session_key(tmp_path)
    assert ensure_session_key(tmp_path) == first and len(first) == 32
    assert (tmp_path / "session.key").stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["session.key"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/alice/+manage", "/alice/+manage"),
        ("/alice/dev/?x=1", "/alice/dev/?x=1"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/\nSet-Cookie: x", "/"),
    ],
)
def test_next_stays_on_this_server(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_lists_typed_into_a_field() -> None:
    assert words(" root/pypi, alice/dev\nbob/x ") == ["root/pypi", "alice/dev", "bob/x"]
    assert words("") == []
