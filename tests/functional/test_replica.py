"""Replication end to end: a replica follows its primary's changelog and blobs,
serves the same read API (pip and uv install from it), refuses writes naming the
primary, asks the primary (never the upstream) on a mirror miss, and keeps
serving when the primary is down; its state equals the primary's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from tests.functional.test_changelog_replay import _digest, _source_url
from tests.support.dists import make_sdist, make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import ROOT_PASSWORD, Clients, LockgateServer

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
        replica = LockgateServer(
            tmp_path / "replica",
            make_db_url(),
            primary=primary.url,
            primary_password=ROOT_PASSWORD,
        ).start()
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
