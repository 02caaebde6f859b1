"""User names, and index names within a user, are unique regardless of case;
lookups stay exact (both backends)."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.server import LockgateServer


def test_user_names_are_unique_regardless_of_case(server: LockgateServer) -> None:
    server.create_user("alice", "alice-pw")
    serial = server.serial()
    for name, existing in (("ALICE", "alice"), ("Alice", "alice"), ("Root", "root")):
        response = server.request(
            "PUT", f"/{name}", auth=server.root_auth(), json={"password": "x"}
        )
        assert response.status_code == 409, response.text
        assert f"user '{existing}' already exists" in response.text
        assert "regardless of case" in response.text
    exact = server.request("PUT", "/alice", auth=server.root_auth(), json={"password": "x"})
    assert exact.status_code == 409 and "user 'alice' already exists" in exact.text
    assert server.serial() == serial
    # Lookups stay exact.
    assert server.get("/alice").status_code == 200
    assert server.get("/ALICE").status_code == 404
    patched = server.request("PATCH", "/ALICE", auth=server.root_auth(), json={})
    assert patched.status_code == 404
    # alice may change alice only, not ALICE.
    assert server.request("PATCH", "/ALICE", auth=("alice", "alice-pw"), json={}).status_code == 403


def test_index_names_are_unique_within_a_user_regardless_of_case(server: LockgateServer) -> None:
    alice, bob = ("alice", "alice-pw"), ("bob", "bob-pw")
    server.create_user(*alice)
    server.create_user(*bob)
    server.create_index("alice/dev", alice)
    serial = server.serial()
    for name in ("Dev", "DEV"):
        response = server.request("PUT", f"/alice/{name}", auth=alice, json={})
        assert response.status_code == 409, response.text
        assert "index alice/dev already exists" in response.text
        assert "regardless of case" in response.text
    # No /root/PyPI one typo away from /root/pypi.
    lookalike = server.request("PUT", "/root/PyPI", auth=server.root_auth(), json={})
    assert lookalike.status_code == 409 and "index root/pypi already exists" in lookalike.text
    assert server.serial() == serial
    # The same name under another user is another index.
    server.create_index("bob/dev", bob)
    server.create_index("bob/Stable", bob)
    assert server.request("PUT", "/bob/stable", auth=bob, json={}).status_code == 409
    # Lookups stay exact.
    assert server.get("/alice/dev/+simple/").status_code == 200
    assert server.get("/alice/Dev/+simple/").status_code == 404
    assert server.get("/alice/Dev").status_code == 404


def test_self_registration_refuses_lookalikes(
    make_server: Callable[..., LockgateServer],
) -> None:
    server = make_server("open", allow_self_registration="")
    created = server.request("PUT", "/eve", json={"password": "pw"})
    assert created.status_code == 201, created.text
    serial = server.serial()
    for name, existing in (("EVE", "eve"), ("ROOT", "root")):
        response = server.request("PUT", f"/{name}", json={"password": "pw"})
        assert response.status_code == 409, response.text
        assert f"user '{existing}' already exists" in response.text
    assert server.serial() == serial
    assert server.request("PATCH", "/eve", auth=("EVE", "pw"), json={}).status_code == 401
