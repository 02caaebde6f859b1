"""INV-1 and INV-3: serials are gapless and hash-chained, and replaying the
changelog into an empty database gives exactly the live state, on both backends."""

from __future__ import annotations

import asyncio
import posixpath
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockgate import migrations
from lockgate.changelog.codec import GENESIS_HASH
from lockgate.changelog.replay import apply_foreign_entry, read_entries, state_digest
from lockgate.db.session import Database
from lockgate.db.state import new_state
from lockgate.domains import build_registry
from tests.support.dists import make_sdist, make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import Clients, LockgateServer


def _source_url(server: LockgateServer) -> str:
    return server.db_url or f"sqlite:///{server.serverdir / 'lockgate.sqlite'}"


async def _digest(url: str) -> dict[str, Any]:
    db = Database(url)
    try:
        async with db.read() as session:
            return await state_digest(session, build_registry())
    finally:
        await db.dispose()


async def _replay(source_url: str, target_url: str) -> list[int]:
    source = Database(source_url)
    try:
        async with source.read() as session:
            entries = await read_entries(session)
    finally:
        await source.dispose()
    target = Database(target_url)
    try:
        async with target.write() as session:
            session.add(new_state(uuid.uuid4().hex, GENESIS_HASH))
        registry = build_registry()
        for entry in entries:
            async with target.write() as session:
                await apply_foreign_entry(session, registry, entry)
    finally:
        await target.dispose()
    return [entry.serial for entry in entries]


def _mutate_everything(server: LockgateServer, clients: Clients, tmp_path: Path) -> None:
    alice, bob = ("alice", "alice-pw"), ("bob", "bob-pw")
    server.create_user(*alice, email="alice@example.org")
    server.create_user(*bob)
    assert server.request("PATCH", "/alice", auth=alice, json={"email": "a@example.org"}).ok
    server.create_index("alice/dev", alice, bases=["root/pypi"])
    server.create_index("alice/prod", alice, volatile=False, bases=["alice/dev"])
    server.create_index("bob/scratch", bob)
    response = server.request(
        "PATCH", "/alice/dev", auth=alice, json={"acl_upload": ["alice", "bob"]}
    )
    assert response.ok, response.text
    dist = tmp_path / "dist"
    dist.mkdir()
    files = [
        make_wheel(dist, "Shared.Lib", "1.0", requires_python=">=3.8"),
        make_sdist(dist, "Shared.Lib", "1.0"),
        make_wheel(dist, "shared-lib", "2.0"),
    ]
    result = clients.twine_upload(f"{server.url}/alice/dev/", files, *bob)
    assert result.returncode == 0, result.stdout + result.stderr
    result = clients.twine_upload(f"{server.url}/alice/prod/", files[:1], *alice)
    assert result.returncode == 0, result.stdout + result.stderr
    for body in (
        {"yanked": True},
        {"yanked": False},
        {"yanked": True, "reason": "broken build"},
    ):
        response = server.request("PATCH", "/alice/dev/shared-lib/2.0", auth=alice, json=body)
        assert response.ok, response.text
    page = server.get(
        "/alice/dev/+simple/shared-lib/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    ).json()
    sdist = next(f for f in page["files"] if f["filename"].endswith(".tar.gz"))
    file_path = "/alice/dev/+simple/shared-lib/" + sdist["url"]
    response = server.request("DELETE", posixpath.normpath(file_path), auth=alice)
    assert response.ok, response.text
    response = server.request("DELETE", "/alice/dev/shared-lib/2.0", auth=alice)
    assert response.ok, response.text
    assert server.request("DELETE", "/bob/scratch", auth=bob).ok
    # Namespaces: reserved, given to another owner (bob owns one: he cannot be deleted
    # until it is), released.
    root = server.root_auth()
    for prefix, owner in (("Shared_", "bob"), ("scratch.", "bob")):
        response = server.request("PUT", f"/+namespaces/{prefix}", auth=root, json={"owner": owner})
        assert response.status_code == 201, response.text
    assert server.request("DELETE", "/bob", auth=root).status_code == 409
    assert server.request("PUT", "/+namespaces/shared-", auth=root, json={"owner": "alice"}).ok
    assert server.request("DELETE", "/+namespaces/scratch", auth=root).ok
    assert server.request("DELETE", "/bob", auth=root).ok


def _fill_mirror_cache(server: LockgateServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Pages, files, extracted metadata, a recall and the project list, all cached."""
    json_accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    expire = {"mirror_cache_expiry": 0}
    assert server.request("PATCH", "/root/pypi", auth=server.root_auth(), json=expire).ok
    for project in ("alpha", "beta"):
        page = server.get(f"/root/pypi/+simple/{project}/", headers=json_accept).json()
        for file in page["files"]:
            url = posixpath.normpath(f"/root/pypi/+simple/{project}/" + file["url"])
            assert server.get(url).status_code == 200
            if file["core-metadata"]:
                assert server.get(url + ".metadata").status_code == 200
    upstream.set_yanked("alpha", "alpha-1.0-py3-none-any.whl", "recalled")
    upstream.remove_file("beta", "beta-2.0.tar.gz")
    for project in ("alpha", "beta"):
        assert server.get(f"/root/pypi/+simple/{project}/", headers=json_accept).ok
    assert server.get("/root/pypi/+simple/", headers=json_accept).ok


def test_state_equals_replay_of_changelog(
    make_server: Callable[..., LockgateServer],
    clients: Clients,
    tmp_path: Path,
    make_db_url: Callable[[], str | None],
) -> None:
    upstream = FakeUpstream(tmp_path / "upstream")
    upstream.add_wheel("alpha", "1.0")
    upstream.add_wheel("beta", "2.0", with_metadata=False)
    upstream.add_sdist("beta", "2.0")
    upstream.start()
    try:
        server = make_server(upstream=upstream.url)
        _mutate_everything(server, clients, tmp_path)
        _fill_mirror_cache(server, upstream, tmp_path)
    finally:
        upstream.close()
    live_serial = server.serial()
    server.stop()
    source = _source_url(server)
    target = make_db_url() or f"sqlite:///{tmp_path / 'replayed.sqlite'}"
    migrations.upgrade(target)
    serials = asyncio.run(_replay(source, target))
    assert serials == list(range(1, live_serial + 1)), "serials must be gapless from 1"
    live, replayed = asyncio.run(_digest(source)), asyncio.run(_digest(target))
    assert live["files"], "the scenario should leave files behind"
    assert live["deleted_releases"], "the scenario deletes a release: its mark replays too"
    assert live["mirror_files"] and live["mirror_links"] and live["mirror_project_lists"]
    assert [n[:3] for n in live["namespaces"]] == [("shared", "shared-", "alice")]
    assert replayed == live
