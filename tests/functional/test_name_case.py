"""User names, and index names within a user, are unique regardless of case;
lookups stay exact. A database that already holds look-alikes still migrates,
`lockgate migrate` lists them until they are resolved, and another node applying
that server's changelog gets them too (both backends)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from lockgate import migrations
from lockgate.accounts.entries import UserPut
from lockgate.accounts.passwords import hash_password
from lockgate.changelog.codec import SYSTEM
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.db.engine import make_sync_engine
from lockgate.db.session import Database
from lockgate.indexes.config import parse_config, to_stored
from lockgate.indexes.entries import IndexPut
from tests.functional.test_changelog_replay import _digest, _replay, _source_url
from tests.support.server import LOCKGATE, LockgateServer

# The migration that made names unique regardless of case (re-check after re-chaining).
CASE_REVISION = "0008"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, timeout=120, env=env)


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


async def _write_lookalikes(url: str) -> None:
    """What an older lockgate allowed: `Root` beside `root`, `alice/Dev` beside
    `alice/dev`, written through the changelog like any other change."""
    db = Database(url)
    try:
        async with db.write() as session:
            password_hash = hash_password("Root-pw")
            await record(
                session,
                UserPut(name="Root", password_hash=password_hash, created_at=utcnow_iso()),
                SYSTEM,
            )
            config = to_stored(parse_config("alice", "Dev", {}))
            await record(
                session, IndexPut(user="alice", name="Dev", type="stage", config=config), SYSTEM
            )
    finally:
        await db.dispose()


def _insert_user(url: str, name: str) -> None:
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO users (name, password_hash, created_at) VALUES (:n, 'x', 'y')"),
                {"n": name},
            )
    finally:
        engine.dispose()


def test_migrate_lists_existing_lookalikes_and_enforces_once_resolved(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    server = make_server("legacy")
    alice = ("alice", "alice-pw")
    server.create_user(*alice)
    server.create_index("alice/dev", alice)
    server.stop()
    url = _source_url(server)
    head = migrations.head_revision()
    script = ScriptDirectory.from_config(migrations.alembic_config(url))
    before = script.get_revision(CASE_REVISION).down_revision
    assert isinstance(before, str)
    command.downgrade(migrations.alembic_config(url), before)
    asyncio.run(_write_lookalikes(url))

    migrated = _run("migrate", "--serverdir", str(server.serverdir))
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema {before} -> {head}" in migrated.stdout
    assert "warning: users differing only in case: Root, root." in migrated.stderr
    assert "warning: indexes differing only in case: alice/Dev, alice/dev." in migrated.stderr
    assert "created unique index" not in migrated.stdout

    # Another node applying this changelog gets the same state, look-alikes
    # included: a replay (as a replica applies entries) ...
    target = make_db_url() or f"sqlite:///{tmp_path / 'replay.sqlite'}"
    migrations.upgrade(target)
    asyncio.run(_replay(url, target))
    assert asyncio.run(_digest(target)) == asyncio.run(_digest(url))
    # ... and an import, whose own migrate then lists them too.
    bundle = tmp_path / "legacy.tar"
    exported = _run("export", "--serverdir", str(server.serverdir), str(bundle))
    assert exported.returncode == 0, exported.stderr
    importer = make_server("importer")
    imported = _run("import", "--serverdir", str(importer.serverdir), str(bundle))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert importer.get("/Root").status_code == 200
    assert importer.get("/alice/Dev/+simple/").status_code == 200
    importer.stop()
    listed = _run("migrate", "--serverdir", str(importer.serverdir))
    assert listed.returncode == 0, listed.stderr
    assert "warning: users differing only in case: Root, root." in listed.stderr
    assert "warning: indexes differing only in case: alice/Dev, alice/dev." in listed.stderr

    server.start()
    root = server.root_auth()
    serial = server.serial()
    third = server.request("PUT", "/ROOT", auth=root, json={"password": "x"})
    assert third.status_code == 409 and "regardless of case" in third.text
    assert server.request("PUT", "/alice/DEV", auth=alice, json={}).status_code == 409
    assert server.serial() == serial
    assert server.get("/Root").status_code == 200
    assert server.get("/root").status_code == 200
    assert server.get("/ROOT").status_code == 404
    assert server.get("/alice/Dev/+simple/").status_code == 200
    assert server.request("DELETE", "/Root", auth=root).status_code == 200
    assert server.request("DELETE", "/alice/Dev", auth=alice).status_code == 200
    server.stop()

    resolved = _run("migrate", "--serverdir", str(server.serverdir))
    assert resolved.returncode == 0, resolved.stderr
    assert f"schema already at {head}" in resolved.stdout
    assert "warning" not in resolved.stderr
    assert "created unique index uq_users_lower_name" in resolved.stdout
    assert "created unique index uq_indexes_user_name_lower_name" in resolved.stdout
    with pytest.raises(IntegrityError):
        _insert_user(url, "ROOT")
    again = _run("migrate", "--serverdir", str(server.serverdir))
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout and "warning" not in again.stderr
