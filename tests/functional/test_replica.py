"""Replication end to end: a replica follows its primary's changelog and blobs,
serves the same read API (pip and uv install from it), refuses writes naming the
primary, asks the primary (never the upstream) on a mirror miss, and keeps
serving when the primary is down; its state equals the primary's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.functional.test_changelog_replay import _digest, _source_url
from tests.support.databases import PostgresDatabases
from tests.support.dists import make_sdist, make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import (
    LOCKGATE,
    Clients,
    LockgateServer,
    replicate_token,
    start_replica,
    upload_form,
)

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _wait_caught_up(primary: LockgateServer, replica: LockgateServer, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if replica.serial() == primary.serial():
            return
        time.sleep(0.1)
    raise AssertionError(f"replica at {replica.serial()}, primary at {primary.serial()}")


def test_replica_follows_serves_and_survives_its_primary(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    upstream = FakeUpstream(tmp_path / "upstream")
    upstream.add_wheel("alpha", "1.0")
    upstream.start()
    try:
        primary = make_server("primary", upstream=upstream.url)
        replica = start_replica(primary, tmp_path / "replica", make_db_url())
        try:
            primary.create_user("rita", "rita-pw")
            primary.create_index("rita/dev", ("rita", "rita-pw"), bases=["root/pypi"])
            dist = tmp_path / "dist"
            dist.mkdir()
            files = [make_wheel(dist, "replicated", "1.0"), make_sdist(dist, "replicated", "1.0")]
            upload = clients.twine_upload(f"{primary.url}/rita/dev/", files, "rita", "rita-pw")
            assert upload.returncode == 0, upload.stdout + upload.stderr
            _wait_caught_up(primary, replica)

            status = replica.get("/+status").json()
            assert status["role"] == "replica" and status["replication"]["lag"] == 0

            # Writes go to the primary.
            refused = replica.request("PUT", "/rita/other", auth=("rita", "rita-pw"), json={})
            assert refused.status_code == 403 and primary.url in refused.text

            # A mirror miss on the replica is asked of the primary, which caches it.
            upstream.clear_requests()
            via_replica = clients.pip_install(
                replica.simple_url("rita/dev"), "replicated", "alpha", target=tmp_path / "a"
            )
            assert via_replica.returncode == 0, via_replica.stdout + via_replica.stderr
            assert upstream.requests_for("alpha"), "the primary fetched alpha upstream"
            _wait_caught_up(primary, replica)
            assert asyncio.run(_digest(_source_url(replica))) == asyncio.run(
                _digest(_source_url(primary))
            )
        finally:
            upstream.stop()
        # Primary and upstream gone: the replica keeps serving everything it has.
        primary.stop()
        offline = clients.uv_install(
            replica.simple_url("rita/dev"), "replicated", "alpha", target=tmp_path / "b"
        )
        assert offline.returncode == 0, offline.stdout + offline.stderr
        status = replica.get("/+status").json()["replication"]
        assert status["last_error"] is None or "unreachable" in status["last_error"]
        replica.stop()
    finally:
        upstream.close()


def _on_port(server: LockgateServer, port: int) -> LockgateServer:
    server.port = port
    server.url = f"http://127.0.0.1:{port}"
    return server


def test_chains_read_your_writes_promotion_and_divergence(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    primary = make_server("primary")
    token = replicate_token(primary)  # tokens replicate: the site accepts it for the sub too
    site = LockgateServer(
        tmp_path / "site", make_db_url(), primary=primary.url, primary_token=token
    ).start()
    sub_db = make_db_url()
    sub = LockgateServer(tmp_path / "sub", sub_db, primary=site.url, primary_token=token).start()
    servers = [site, sub]
    try:
        primary.create_user("cy", "cy-pw")
        primary.create_index("cy/dev", ("cy", "cy-pw"))
        wheel = make_wheel(tmp_path, "chained", "1.0")
        with wheel.open("rb") as handle:
            answer = primary.request(
                "POST",
                "/cy/dev/",
                auth=("cy", "cy-pw"),
                data=upload_form("chained", "1.0", wheel),
                files={"content": (wheel.name, handle, "application/octet-stream")},
            )
        assert answer.status_code == 200, answer.text
        written = answer.headers["X-Lockgate-Serial"]
        # Read-your-writes on the sub-site replica (DMZ -> site -> sub-site).
        page = sub.get(
            "/cy/dev/+simple/chained/", headers={**JSON, "X-Lockgate-Min-Serial": written}
        )
        assert page.status_code == 200, page.text
        assert [f["filename"] for f in page.json()["files"]] == [wheel.name]

        # The primary is lost: promote the site replica; the chain goes on from it.
        primary.stop()
        site_port, site_dir, site_db = site.port, site.serverdir, site.db_url
        before = site.serial()
        site.stop()
        promoted = subprocess_lockgate("promote", "--serverdir", str(site_dir))
        assert promoted.returncode == 0, promoted.stderr
        restore_backup = _backup(site_dir, site_db)  # what an operator might restore later
        new_primary = _on_port(LockgateServer(site_dir, site_db), site_port).start()
        servers.append(new_primary)
        newer = make_wheel(tmp_path, "chained", "2.0")
        upload = clients.twine_upload(f"{new_primary.url}/cy/dev/", [newer], "cy", "cy-pw")
        assert upload.returncode == 0, upload.stdout + upload.stderr
        assert new_primary.serial() == before + 1, "serials continue on the promoted node"
        _wait_caught_up(new_primary, sub)

        # The primary is restored from the older backup and takes other writes: the
        # sub-site's token is still valid there, but the history diverged: refused.
        new_primary.stop()
        restore_backup()
        restored = _on_port(LockgateServer(site_dir, site_db), site_port).start()
        servers.append(restored)
        restored.create_user("zed", "zed-pw")
        restored.create_user("zoe", "zoe-pw")
        deadline = time.monotonic() + 20
        status: dict[str, object] = {}
        while time.monotonic() < deadline:
            status = sub.get("/+status").json()["replication"]
            if status["diverged"]:
                break
            time.sleep(0.2)
        assert status["diverged"], status
        assert sub.get("/cy/dev/+simple/chained/", headers=JSON).status_code == 200
        assert sub.get("/zed").status_code == 404, "nothing of the other history mixed in"
    finally:
        for server in servers:
            server.stop()


def _backup(serverdir: Path, db_url: str | None) -> Callable[[], None]:
    """Back up a stopped server's database; returns what restores it."""
    if db_url is None:
        saved = {p.name: p.read_bytes() for p in serverdir.glob("lockgate.sqlite*")}

        def restore_sqlite() -> None:
            for path in serverdir.glob("lockgate.sqlite*"):
                path.unlink()
            for name, data in saved.items():
                (serverdir / name).write_bytes(data)

        return restore_sqlite
    name = db_url.rsplit("/", 1)[1]
    admin = PostgresDatabases()
    with admin._admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}_backup" TEMPLATE "{name}"')

    def restore_postgres() -> None:
        with admin._admin() as conn:
            conn.execute(f'DROP DATABASE "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{name}_backup"')
            conn.execute(f'DROP DATABASE "{name}_backup"')

    return restore_postgres


def test_replica_token_follows_only_and_revoking_it_stops_the_replica(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    primary = make_server("primary")
    token = replicate_token(primary)
    # The root password is no longer accepted for following, and says what to do instead.
    refused = subprocess.run(
        [LOCKGATE, "serve", "--serverdir", str(tmp_path / "old"), "--primary", primary.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_clean_env(), "LOCKGATE_PRIMARY_PASSWORD": "root-pw"},
    )
    assert refused.returncode != 0 and "--primary-token" in refused.stderr
    assert not (tmp_path / "old").exists()
    missing = subprocess_lockgate(
        "serve", "--serverdir", str(tmp_path / "none"), "--primary", primary.url
    )
    assert missing.returncode != 0 and "needs a token" in missing.stderr

    replica = LockgateServer(
        tmp_path / "replica", make_db_url(), primary=primary.url, primary_token=token
    ).start()
    try:
        primary.create_user("val", "val-pw")
        primary.create_index("val/dev", ("val", "val-pw"))
        _wait_caught_up(primary, replica)
        # The replicate token follows; it can do nothing else on the primary.
        wheel = make_wheel(tmp_path, "sneaky", "1.0")
        upload = clients.twine_upload(f"{primary.url}/val/dev/", [wheel], "__token__", token)
        assert (
            upload.returncode != 0 and "lacks the 'upload' scope" in upload.stdout + upload.stderr
        )
        admin = primary.request("PUT", "/root/other", auth=("__token__", token), json={})
        assert admin.status_code == 403
        # Revoked: the replica stops following, says why, and keeps serving what it has.
        token_id = primary.request("GET", "/root/+tokens", auth=primary.root_auth()).json()[
            "result"
        ][0]["id"]
        assert primary.request("DELETE", f"/root/+tokens/{token_id}", auth=primary.root_auth()).ok
        primary.create_user("after", "after-pw")
        deadline = time.monotonic() + 30
        status: dict[str, object] = {}
        while time.monotonic() < deadline:
            status = replica.get("/+status").json()["replication"]
            if status["last_error"] and "refused our token" in str(status["last_error"]):
                break
            time.sleep(0.2)
        assert "refused our token" in str(status["last_error"]), status
        assert replica.get("/after").status_code == 404
        assert replica.get("/val").status_code == 200
    finally:
        replica.stop()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}


def subprocess_lockgate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, timeout=60, env=env)
