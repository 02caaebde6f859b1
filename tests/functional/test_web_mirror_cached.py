"""What a mirror has cached, seen from the pages of a stage index that inherits it and
from a replica (docs/reliability.md WEB-8): the counts follow the cache as it fills,
per version, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.functional.test_search import no_server_errors
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import Clients, LockgateServer, start_replica
from tests.unit.test_web_negotiation import CHROMIUM as BROWSER_ACCEPT

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
BROWSER = {"Accept": BROWSER_ACCEPT}


def _row(server: LockgateServer, path: str, version: str) -> str:
    page = server.get(path, headers=BROWSER)
    assert page.status_code == 200, page.text
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page.text, re.S)
    return next(row for row in rows if f">{version}<" in row)


def test_inherited_mirror_project_pages_show_what_is_cached_also_on_a_replica(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    """WEB-8: alice/dev inherits root/pypi; before any install its page lists alpha's
    versions as mirrored with nothing cached; after pip installed 1.1 through alice/dev,
    the 1.1 row says one of its two files is cached and the release page marks which, on
    the primary and on a replica."""
    upstream = FakeUpstream(tmp_path / "upstream")
    upstream.add_wheel("alpha", "1.0")
    upstream.add_wheel("alpha", "1.1")
    upstream.add_sdist("alpha", "1.1")
    upstream.start()
    try:
        primary = make_server(upstream=upstream.url)
        primary.create_user(*ALICE)
        primary.create_index("alice/dev", ALICE, bases=["root/pypi"])
        replica = start_replica(primary, tmp_path / "replica", make_db_url())
        try:
            before = _row(primary, "/alice/dev/alpha", "1.1")
            assert "mirrored by" in before and "root/pypi" in before and "(0 cached)" in before
            installed = clients.pip_install(
                primary.simple_url("alice/dev"), "alpha==1.1", "--no-deps", target=tmp_path / "t"
            )
            assert installed.returncode == 0, installed.stdout + installed.stderr
            deadline = time.monotonic() + 60
            while replica.serial() != primary.serial() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert replica.serial() == primary.serial()
            for server in (primary, replica):
                newest = _row(server, "/alice/dev/alpha", "1.1")
                assert '>2 <span class="muted">(1 cached)</span>' in newest
                assert "(0 cached)" in _row(server, "/alice/dev/alpha", "1.0")
                release = server.get("/alice/dev/alpha/1.1", headers=BROWSER).text
                assert release.count('<span class="badge">cached</span>') == 1
                assert release.count('<span class="badge">not cached</span>') == 1
            no_server_errors(primary)
            no_server_errors(replica)
        finally:
            replica.stop()
    finally:
        upstream.close()
