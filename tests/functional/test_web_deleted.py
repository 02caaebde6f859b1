"""Deleted releases on the project page (docs/reliability.md WEB-10..WEB-12): a deleted
release keeps a row marked "deleted" with when and by whom, on the primary and on a
replica, until the version is uploaded again; a project delete marks every version it
had; the simple API and the PyPI JSON stay as they were; an older server's marks are
derived from its changelog by migration 0016, as the appliers make them; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import posixpath
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command

from lockgate import migrations
from tests.functional.test_changelog_replay import _digest, _source_url
from tests.functional.test_search import no_server_errors, upload
from tests.support.server import LockgateServer, start_replica
from tests.unit.test_web_negotiation import CHROMIUM as BROWSER_ACCEPT

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
BROWSER = {"Accept": BROWSER_ACCEPT}
SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
ROW = re.compile(r"<tr(?: class=\"(?P<cls>[^\"]*)\")?>(?P<body>.*?)</tr>", re.S)
WHEN = re.compile(r'<time datetime="(\d{4}-\d\d-\d\dT[^"]+)">')


def _rows(server: LockgateServer, path: str) -> list[tuple[str, str]]:
    """(class, text) of each version row of a project page, top to bottom."""
    page = server.get(path, headers=BROWSER)
    assert page.status_code == 200, page.text
    table = page.text.split('<table class="versions">', 1)[1].split("</table>", 1)[0]
    return [(m["cls"] or "", m["body"]) for m in ROW.finditer(table.split("<tbody>", 1)[1])]


def _versions(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(version, "deleted" | "yanked" | "") per row."""
    found = []
    for cls, body in rows:
        version = re.search(r">(\d[^<]*)</(?:a|span)>", body)
        assert version, body
        found.append((version.group(1), cls))
    return found


def _deleted_row(rows: list[tuple[str, str]], version: str) -> str:
    (body,) = [b for cls, b in rows if cls == "deleted" and f">{version}<" in b]
    return body


def _caught_up(replica: LockgateServer, primary: LockgateServer) -> None:
    deadline = time.monotonic() + 60
    while replica.serial() != primary.serial() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert replica.serial() == primary.serial()


def test_deleted_releases_are_marked_on_primary_and_replica_until_uploaded_again(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    """WEB-10, WEB-11, WEB-12: marked on delete (release, last file, project), the same
    on a replica, cleared by an upload again, derived again by migration 0016."""
    primary = make_server()
    primary.create_user(*ALICE)
    primary.create_user(*BOB)
    primary.create_index("alice/dev", ALICE)
    primary.create_index("alice/prod", ALICE, volatile=False)
    for version in ("1.0", "1.1", "2.0"):
        upload(primary, tmp_path / version, "alice/dev", ALICE, "delta-lib", version)
    upload(primary, tmp_path / "prod", "alice/prod", ALICE, "delta-lib", "1.0")
    yank = primary.request("PATCH", "/alice/dev/delta-lib/1.1", auth=ALICE, json={"yanked": True})
    assert yank.ok, yank.text
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        simple_before = primary.get("/alice/dev/+simple/delta-lib/", headers=SIMPLE_JSON).json()
        # Refused deletes leave no mark: bob may not, a non-volatile index never.
        serial = primary.serial()
        assert primary.request("DELETE", "/alice/dev/delta-lib/2.0", auth=BOB).status_code == 403
        assert primary.request("DELETE", "/alice/prod/delta-lib/1.0", auth=ALICE).status_code == 403
        assert primary.serial() == serial
        assert all(cls != "deleted" for cls, _ in _rows(primary, "/alice/prod/delta-lib"))

        deleted = primary.request("DELETE", "/alice/dev/delta-lib/2.0", auth=ALICE)
        assert deleted.ok, deleted.text
        _caught_up(replica, primary)
        for server in (primary, replica):
            rows = _rows(server, "/alice/dev/delta-lib")
            assert _versions(rows) == [("2.0", "deleted"), ("1.1", "yanked"), ("1.0", "")]
            row = _deleted_row(rows, "2.0")
            assert 'class="badge deleted">deleted<' in row
            assert 'deleted from <a href="/alice/dev">alice/dev</a>' in row
            assert row.rstrip().endswith("by alice</td>")
            assert WHEN.search(row), row
            # The release page of a deleted version says so (404).
            gone = server.get("/alice/dev/delta-lib/2.0", headers=BROWSER)
            assert gone.status_code == 404
            assert "was deleted from index alice/dev" in gone.text and "by alice" in gone.text
            # The simple API and the PyPI JSON are what they were without the release.
            simple = server.get("/alice/dev/+simple/delta-lib/", headers=SIMPLE_JSON).json()
            assert [f["filename"] for f in simple["files"]] == [
                f["filename"] for f in simple_before["files"] if "-2.0-" not in f["filename"]
            ]
            assert "deleted" not in str(simple)
            pypi = server.get("/alice/dev/pypi/delta-lib/json")
            assert pypi.status_code == 200
            assert sorted(pypi.json()["releases"]) == ["1.0", "1.1"]
            assert "deleted" not in pypi.text
        # The same time on both: the mark is state, not the node's clock.
        times = {WHEN.search(_deleted_row(_rows(s, "/alice/dev/delta-lib"), "2.0")).group(1)  # type: ignore[union-attr]
                 for s in (primary, replica)}  # fmt: skip
        assert len(times) == 1

        # Uploaded again (volatile index): the mark goes, on both.
        upload(primary, tmp_path / "again", "alice/dev", ALICE, "delta-lib", "2.0")
        _caught_up(replica, primary)
        for server in (primary, replica):
            assert _versions(_rows(server, "/alice/dev/delta-lib")) == [
                ("2.0", ""),
                ("1.1", "yanked"),
                ("1.0", ""),
            ]

        # The only file of 1.0 deleted: the release goes, marked as deleted by alice.
        simple = primary.get("/alice/dev/+simple/delta-lib/", headers=SIMPLE_JSON).json()
        (only,) = [f for f in simple["files"] if "-1.0-" in f["filename"]]
        file_path = posixpath.normpath("/alice/dev/+simple/delta-lib/" + only["url"])
        assert primary.request("DELETE", file_path, auth=ALICE).ok
        _caught_up(replica, primary)
        for server in (primary, replica):
            rows = _rows(server, "/alice/dev/delta-lib")
            assert _versions(rows) == [("2.0", ""), ("1.1", "yanked"), ("1.0", "deleted")]
            assert _deleted_row(rows, "1.0").rstrip().endswith("by alice</td>")

        # The whole project deleted: every version it had is marked, the page stays.
        removed = primary.request("DELETE", "/alice/dev/delta-lib", auth=ALICE)
        assert removed.ok, removed.text
        _caught_up(replica, primary)
        for server in (primary, replica):
            rows = _rows(server, "/alice/dev/delta-lib")
            assert _versions(rows) == [("2.0", "deleted"), ("1.1", "deleted"), ("1.0", "deleted")]
            page = server.get("/alice/dev/delta-lib", headers=BROWSER).text
            assert "its name released" in page
            assert server.get("/alice/dev/+simple/delta-lib/", headers=SIMPLE_JSON).status_code == (
                404
            )
            assert server.get("/alice/dev/pypi/delta-lib/json").status_code == 404
            assert server.get("/alice/dev/never-was", headers=BROWSER).status_code == 404
        no_server_errors(primary)
        no_server_errors(replica)
    finally:
        replica.stop()

    # An older server (before migration 0016) gets the same marks from its changelog.
    primary.stop()
    url = _source_url(primary)
    live = asyncio.run(_digest(url))
    assert [row[1:4] for row in live["deleted_releases"]] == [
        ("delta-lib", "delta-lib", version) for version in ("1.0", "1.1", "2.0")
    ]
    config = migrations.alembic_config(url)
    command.downgrade(config, "0015")
    command.upgrade(config, "head")
    rebuilt: dict[str, Any] = asyncio.run(_digest(url))
    assert rebuilt == live
