"""The audit trail: every changelog entry records who caused it (a user, the token
it used, or `system` for what the server does by itself), the actor is covered by
the hash chain, travels to replicas and through export bundles, and `lockgate log`
lists it; the JSON API names each file's uploader. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy

from tests.functional.test_transfer import _lockgate
from tests.support.dists import make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import LOCKGATE, Clients, LockgateServer

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _log(server: LockgateServer, *args: str) -> list[list[str]]:
    result = _lockgate("log", "--serverdir", str(server.serverdir), *args)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_every_entry_names_who_caused_it(
    make_server: Callable[..., LockgateServer],
    clients: Clients,
    tmp_path: Path,
) -> None:
    upstream = FakeUpstream(tmp_path / "upstream")
    upstream.add_wheel("alpha", "1.0")
    upstream.start()
    try:
        server = make_server(upstream=upstream.url)
        server.create_user(*ALICE)
        server.create_index("alice/dev", ALICE, bases=["root/pypi"])
        created = server.request(
            "POST", "/alice/+tokens", auth=ALICE, json={"name": "ci", "scopes": ["upload"]}
        ).json()["result"]
        first, second = (
            make_wheel(tmp_path, "audited", "1.0"),
            make_wheel(tmp_path, "audited", "2.0"),
        )
        for files, auth in (([first], ALICE), ([second], ("__token__", created["token"]))):
            result = clients.twine_upload(f"{server.url}/alice/dev/", files, *auth)
            assert result.returncode == 0, result.stdout + result.stderr
        assert server.get("/root/pypi/+simple/alpha/", headers=JSON).ok  # a mirror fill
    finally:
        upstream.close()

    rows = _log(server)
    actors = {(row[3], row[4]): row[2] for row in rows}
    assert actors[("user.put", "root")] == "system"  # made by `lockgate init`
    assert actors[("user.put", "alice")] == "root"
    assert actors[("index.put", "alice/dev")] == "alice"
    assert actors[("file.add", f"alice/dev audited 1.0 {first.name}")] == "alice"
    assert actors[("file.add", f"alice/dev audited 2.0 {second.name}")] == (
        f"alice (token {created['id']})"
    )
    assert actors[("mirror.page", "root/pypi alpha")] == "system"
    only = _log(server, "--index", "alice/dev", "--project", "Audited")
    assert [row[3] for row in only] == ["file.add", "file.add"]
    since = int(only[0][0])
    assert [row[0] for row in _log(server, "--since", str(since))][0] == str(since + 1)

    # The JSON API names the uploader of each file.
    data = server.get("/alice/dev/pypi/audited/json").json()
    assert {f["uploader"] for f in data["urls"]} == {"alice"}
    # /+changelog carries the actor to replicas.
    lines = server.get("/+changelog?since=0", auth=server.root_auth()).text.splitlines()
    assert any(json.loads(line).get("actor_token") == created["id"] for line in lines)

    # An export bundle carries actors; the importing server keeps them.
    bundle = tmp_path / "all.tar"
    server.stop()
    assert _lockgate("export", "--serverdir", str(server.serverdir), str(bundle)).returncode == 0
    target = make_server("target")
    target.stop()
    imported = _lockgate("import", "--serverdir", str(target.serverdir), str(bundle))
    assert imported.returncode == 0, imported.stderr
    uploads = [row for row in _log(target, "--index", "alice/dev") if row[3] == "file.add"]
    assert [row[2] for row in uploads] == ["alice", f"alice (token {created['id']})"]

    # The actor is covered by the hash chain: rewriting it is caught by fsck.
    url = server.db_url or f"sqlite:///{server.serverdir / 'lockgate.sqlite'}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.text("UPDATE changelog SET actor = 'mallory' WHERE actor = 'alice'")
            )
    finally:
        engine.dispose()
    checked = subprocess.run(
        [LOCKGATE, "fsck", "--serverdir", str(server.serverdir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 1 and "hash does not match" in checked.stdout
