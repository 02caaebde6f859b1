"""Full-text search (`/+search`, lockgate/search): an upload is found the moment it
returns, on SQLite (FTS5) and PostgreSQL (tsvector + GIN, pg_trgm); ranking is exact
name, then name prefix, then summary, then the rest; private indexes stay hidden; a
replica and an imported server find the same without re-indexing; mirror names are
found from cached pages and the upstream's project list; `lockgate reindex` repairs an
emptied table; odd queries get a 400 or results, never a 500 (docs/reliability.md
SR-1..SR-9)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser

from tests.support.browser import page_context
from tests.support.dists import make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import LOCKGATE, LockgateServer, start_replica, upload_form
from tests.unit.test_web_negotiation import CHROMIUM as BROWSER_ACCEPT

ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
JSON = {"Accept": "application/json"}
SCREENSHOTS = os.environ.get("LOCKGATE_SCREENSHOTS") == "1"
REPO = Path(__file__).resolve().parents[2]


def upload(
    server: LockgateServer,
    tmp_path: Path,
    index: str,
    auth: tuple[str, str],
    name: str,
    version: str,
    *,
    summary: str = "",
    description: str = "",
    keywords: str = "",
    classifiers: tuple[str, ...] = (),
) -> None:
    """Upload a wheel with the metadata fields twine sends; asserts it was stored."""
    wheel = make_wheel(tmp_path, name, version, summary=summary or "test package")
    fields: list[tuple[str, str]] = list(
        upload_form(
            name,
            version,
            wheel,
            summary=summary,
            description=description,
            description_content_type="text/markdown",
            keywords=keywords,
        ).items()
    )
    fields += [("classifiers", c) for c in classifiers]
    with wheel.open("rb") as handle:
        response = server.http.post(
            f"{server.url}/{index}/",
            data=fields,
            files={"content": (wheel.name, handle)},
            auth=auth,
            timeout=60,
        )
    assert response.status_code == 200, response.text


def find(
    server: LockgateServer, q: str, auth: tuple[str, str] | None = None, **params: str
) -> dict[str, Any]:
    response = server.get("/+search", params={"q": q, **params}, headers=JSON, auth=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


def names(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(hit["index"], hit["name"]) for hit in result["results"]]


def no_server_errors(server: LockgateServer) -> None:
    # (aiohttp logs a traceback itself when it refuses an over-long request line: a 400.)
    assert '"status": 500' not in server.log()


def _populate_ranking(server: LockgateServer, tmp_path: Path) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    upload(server, tmp_path, "alice/dev", ALICE, "zephyr-tools", "1.0",
           description="Helpers that read zephyr configuration files.")  # fmt: skip
    upload(server, tmp_path, "alice/dev", ALICE, "windmill", "2.0",
           summary="A zephyr wind simulator")  # fmt: skip
    upload(server, tmp_path, "alice/dev", ALICE, "zephyr", "0.9", summary="The exact one")
    upload(server, tmp_path, "alice/dev", ALICE, "zephyr", "1.1", summary="The exact one")
    upload(server, tmp_path, "alice/dev", ALICE, "sailcloth", "3.0",
           description="Weaves cloth.", keywords="zephyr, breeze")  # fmt: skip


def test_upload_is_searchable_at_once_and_ranked(
    server: LockgateServer, tmp_path: Path, backend: str
) -> None:
    """SR-1: found when the upload returns (no wait); SR-2: the issue's ranking."""
    _populate_ranking(server, tmp_path)
    result = find(server, "zephyr")
    assert names(result) == [
        ("alice/dev", "zephyr"),  # exact name
        ("alice/dev", "zephyr-tools"),  # name prefix
        ("alice/dev", "windmill"),  # summary
        ("alice/dev", "sailcloth"),  # keywords: the rest
    ], result
    exact = result["results"][0]
    assert exact["version"] == "1.1" and exact["project"] == "zephyr"
    assert exact["url"].endswith("/alice/dev/zephyr") and exact["source"] == "stage"
    assert result["total"] == 4
    # A README word: highlighted in the snippet, everything else escaped.
    tools = find(server, "configuration")["results"]
    assert [h["name"] for h in tools] == ["zephyr-tools"]
    assert "<mark>configuration</mark>" in tools[0]["snippet"]
    # A prefix of a word, case-insensitive; several words must all match.
    assert [h["name"] for h in find(server, "SIMUL")["results"]] == ["windmill"]
    assert find(server, "zephyr weaves")["total"] == 1
    # Version strings are searchable, yanking a release changes the latest shown.
    yank = server.request("PATCH", "/alice/dev/zephyr/1.1", auth=ALICE, json={"yanked": True})
    assert yank.status_code == 200, yank.text
    assert find(server, "zephyr")["results"][0]["version"] == "0.9"
    # Deleting the project removes it from search in the same transaction.
    gone = server.request("DELETE", "/alice/dev/windmill", auth=ALICE)
    assert gone.status_code == 200, gone.text
    assert ("alice/dev", "windmill") not in names(find(server, "zephyr"))
    no_server_errors(server)


def test_paging(server: LockgateServer, tmp_path: Path) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    for n in range(23):
        upload(server, tmp_path, "alice/dev", ALICE, f"pager-{n:02d}", "1.0", summary="paged")
    first, second = find(server, "paged"), find(server, "paged", page="2")
    assert first["total"] == 23 and first["pages"] == 2
    assert len(first["results"]) == 20 and len(second["results"]) == 3
    assert not set(names(first)) & set(names(second))


def test_private_indexes_are_hidden(server: LockgateServer, tmp_path: Path) -> None:
    """SR-3: results from an index the caller may not read are never shown."""
    server.create_user(*ALICE)
    server.create_user(*BOB)
    server.create_index("alice/secret", ALICE, acl_read=["alice"])
    server.create_index("bob/open", BOB)
    upload(server, tmp_path, "alice/secret", ALICE, "quasar-internal", "1.0", summary="quasar")
    upload(server, tmp_path, "bob/open", BOB, "quasar-public", "1.0", summary="quasar")
    assert names(find(server, "quasar")) == [("bob/open", "quasar-public")]
    assert names(find(server, "quasar", auth=BOB)) == [("bob/open", "quasar-public")]
    assert len(find(server, "quasar", auth=ALICE)["results"]) == 2
    # Scoped to the private index: a 404 for those who may not read it, as for a missing one.
    for auth in (None, BOB):
        hidden = server.get(
            "/+search", params={"q": "quasar", "index": "alice/secret"}, headers=JSON, auth=auth
        )
        assert hidden.status_code == 404, hidden.text
        assert "does not exist" in hidden.json()["message"]
    assert names(find(server, "quasar", auth=ALICE, index="alice/secret")) == [
        ("alice/secret", "quasar-internal")
    ]
    # The HTML page hides them too.
    page = server.get("/+search", params={"q": "quasar"}, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and "quasar-public" in page.text
    assert "quasar-internal" not in page.text


def test_scope_is_the_index_and_its_bases(server: LockgateServer, tmp_path: Path) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/base", ALICE)
    server.create_index("alice/dev", ALICE, bases=["alice/base"])
    server.create_index("alice/other", ALICE)
    for index in ("alice/base", "alice/dev", "alice/other"):
        upload(server, tmp_path, index, ALICE, f"nimbus-{index.split('/')[1]}", "1.0",
               summary="nimbus")  # fmt: skip
    scoped = {hit["index"] for hit in find(server, "nimbus", index="alice/dev")["results"]}
    assert scoped == {"alice/dev", "alice/base"}
    assert len(find(server, "nimbus")["results"]) == 3
    missing = server.get("/+search", params={"q": "x", "index": "alice/nope"}, headers=JSON)
    assert missing.status_code == 404


ODD_QUERIES = [
    '"',
    '"unterminated',
    "*",
    "zephyr*",
    "NEAR(a b)",
    "a OR b",
    "OR",
    "AND NOT",
    "-zephyr",
    "name:zephyr",
    "summary : x",
    "{summary}: x",
    "'",
    "a & b | !c",
    "x:*",
    "()",
    "ünïcödé",
    "日本語",
    "%",
    "_",
    "\\",
    "a" * 200,
]


def test_odd_queries_get_400_or_results_never_500(server: LockgateServer, tmp_path: Path) -> None:
    """SR-4: FTS syntax is never passed through; bad input is a clear 400."""
    _populate_ranking(server, tmp_path)
    for q in ODD_QUERIES:
        response = server.get("/+search", params={"q": q}, headers=JSON)
        if any(c.isalnum() for c in q):
            assert response.status_code == 200, (q, response.text)
            assert isinstance(response.json()["results"], list)
        else:  # nothing to search for: said so
            assert response.status_code == 400, (q, response.text)
            assert "has no letters or digits" in response.json()["message"]
    # Search syntax is read as words: "zephyr*" and "-zephyr" find what "zephyr" finds.
    for q in ("zephyr*", "-zephyr", '"zephyr', "zephyr)", "(zephyr"):
        assert "zephyr" in [h["name"] for h in find(server, q)["results"]], q
    refused = {
        "": "give something to search for",
        "   ": "give something to search for",
        "!!!": "has no letters or digits",
        "---": "has no letters or digits",
        "a\x00b": "control character",
        "x" * 4_000: "at most 200",
        # 10 KB: the request line is over aiohttp's limit, which answers 400 itself.
        "x" * 10_240: "more than 8190 bytes",
    }
    for q, message in refused.items():
        response = server.get("/+search", params={"q": q}, headers=JSON)
        assert response.status_code == 400, (q, response.text)
        assert message in response.text, (q[:40], response.text[:300])
    for page in ("0", "51", "x", "-1"):
        response = server.get("/+search", params={"q": "zephyr", "page": page}, headers=JSON)
        assert response.status_code == 400 and "page" in response.json()["message"]
    # The browser page says the same on the page itself.
    page = server.get("/+search", params={"q": "!!!"}, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 400 and "has no letters or digits" in page.text
    empty = server.get("/+search", headers={"Accept": BROWSER_ACCEPT})
    assert empty.status_code == 200 and 'name="q"' in empty.text
    # Names in results are escaped; */* and no Accept get JSON.
    for headers in ({"Accept": "*/*"}, {}):
        response = server.get("/+search", params={"q": "zephyr"}, headers=headers)
        assert response.headers["Content-Type"].startswith("application/json")
    no_server_errors(server)


def test_description_markup_is_escaped_in_snippets(server: LockgateServer, tmp_path: Path) -> None:
    """SR-4: a snippet carries <mark> and nothing else an author wrote as markup."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    upload(server, tmp_path, "alice/dev", ALICE, "xsser", "1.0",
           description='<script>alert(1)</script> <b>sparkle</b> \ue000fake\ue001 "q"')  # fmt: skip
    snippet = find(server, "sparkle")["results"][0]["snippet"]
    assert "<script" not in snippet and "<b>" not in snippet and "\ue000" not in snippet
    assert snippet.count("<mark>") == snippet.count("</mark>") == 1
    assert "&lt;b&gt;<mark>sparkle</mark>&lt;/b&gt;" in snippet
    page = server.get("/+search", params={"q": "sparkle"}, headers={"Accept": BROWSER_ACCEPT})
    assert "<script" not in page.text and "<b>" not in page.text
    assert "<mark>sparkle</mark>" in page.text


def _lockgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, timeout=300)


def test_reindex_repairs_an_emptied_table(
    make_server: Callable[..., LockgateServer], tmp_path: Path, backend: str
) -> None:
    """SR-5: `lockgate reindex` rebuilds the table from the state, with counts."""
    server = make_server()
    _populate_ranking(server, tmp_path)
    server.stop()
    _empty_search_table(server)
    server.start()
    assert find(server, "zephyr")["total"] == 0  # damaged on purpose
    server.stop()
    repaired = _lockgate("reindex", "--serverdir", str(server.serverdir))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "4 stage project(s)" in repaired.stdout and "was 0 row(s)" in repaired.stdout
    server.start()
    assert len(find(server, "zephyr")["results"]) == 4
    missing = _lockgate("reindex", "--serverdir", str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "not a lockgate server directory" in missing.stderr


def _empty_search_table(server: LockgateServer) -> None:
    from sqlalchemy import text

    from lockgate.db.engine import make_sync_engine

    url = server.db_url or f"sqlite:///{server.serverdir / 'lockgate.sqlite'}"
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM search_entries"))
    finally:
        engine.dispose()


def test_replica_finds_what_the_primary_got(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    """SR-6: a replica's search is current as soon as it applied the entry."""
    primary = make_server("primary")
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        _populate_ranking(primary, tmp_path)
        deadline = time.monotonic() + 60
        while replica.serial() != primary.serial() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert replica.serial() == primary.serial()
        assert names(find(replica, "zephyr")) == names(find(primary, "zephyr"))
        no_server_errors(replica)
    finally:
        replica.stop()


def test_import_is_searchable_without_reindex(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """SR-6: after `lockgate import` into a fresh server, search works at once."""
    source = make_server("source")
    _populate_ranking(source, tmp_path)
    target = make_server("target")
    bundle = tmp_path / "bundle.tar"
    exported = _lockgate("export", "--serverdir", str(source.serverdir), str(bundle))
    assert exported.returncode == 0, exported.stderr
    imported = _lockgate("import", "--serverdir", str(target.serverdir), str(bundle))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert names(find(target, "zephyr")) == names(find(source, "zephyr"))
    assert "<mark>" in find(target, "configuration")["results"][0]["snippet"]


def test_mirror_names_are_searchable(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """SR-7: cached upstream pages by name and versions, and the upstream's project
    list by name, so people find what can be installed."""
    upstream = FakeUpstream(tmp_path / "upstream")
    upstream.add_wheel("stratus-cached", "1.0")
    upstream.add_wheel("stratus-cached", "2.0")
    upstream.add_wheel("stratus-listed", "1.0")
    upstream.add_wheel("Stratus", "5.0")
    upstream.start()
    try:
        server = make_server(upstream=upstream.url)
        simple = {"Accept": "application/vnd.pypi.simple.v1+json"}
        page = server.get("/root/pypi/+simple/stratus-cached/", headers=simple)
        assert page.status_code == 200
        cached = find(server, "stratus-cached")["results"]
        assert cached[0]["source"] == "mirror" and cached[0]["version"] == "2.0"
        # Before the project list is known, only cached pages are found.
        assert [h["name"] for h in find(server, "stratus")["results"]] == ["stratus-cached"]
        listing = server.get("/root/pypi/+simple/", headers=simple)
        assert listing.status_code == 200
        found = find(server, "stratus")["results"]
        assert [(h["name"], h["source"]) for h in found] == [
            ("stratus", "upstream"),  # exact name, from the list
            ("stratus-cached", "mirror"),  # prefix, cached (first within its tier)
            ("stratus-listed", "upstream"),  # prefix, from the list
        ], found
        assert found[0]["project"] == "Stratus" and found[0]["version"] is None
        assert find(server, "stratus-cached")["total"] == 1  # not twice
        no_server_errors(server)
    finally:
        upstream.close()


@pytest.mark.e2e
def test_chromium_search_box_to_project_page(
    server: LockgateServer, browser: Browser, tmp_path: Path
) -> None:
    """Headless Chromium: the search box on / → results → the project's page → the
    version → the file's download, checked against its sha256."""
    _populate_ranking(server, tmp_path)
    with page_context(browser, server.url) as (context, _outside):
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto("/")
        page.get_by_label("Search packages").fill("configuration")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/+search?q=configuration")
        assert page.get_by_role("heading", level=1).inner_text() == "Search"
        link = page.get_by_role("link", name="zephyr-tools")
        assert link.get_attribute("href") == "/alice/dev/zephyr-tools"
        assert page.locator(".search-snippet mark").first.inner_text() == "configuration"
        page.goto("/+search?q=zephyr")
        assert page.locator(".search-results li").count() == 4
        if SCREENSHOTS:
            (REPO / "docs/screenshots").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "docs/screenshots/search.png"), full_page=True)
        # A word only the README holds → the project → its version → the file, whose
        # bytes are the uploaded wheel's.
        page.goto("/+search?q=configuration")
        page.get_by_role("link", name="zephyr-tools").click()
        page.wait_for_url(re.compile(r"/alice/dev/zephyr-tools$"))
        assert "configuration" in page.locator(".readme").inner_text()
        page.get_by_role("link", name="1.0", exact=True).click()
        page.wait_for_url(re.compile(r"/alice/dev/zephyr-tools/1\.0$"))
        wheel = next(tmp_path.rglob("zephyr_tools-1.0-*.whl"))
        expected = hashlib.sha256(wheel.read_bytes()).hexdigest()
        row = page.locator("table.files tbody tr", has_text=wheel.name)
        assert row.locator("code.sha256").inner_text() == expected
        with page.expect_download() as info:
            page.get_by_role("link", name=wheel.name).click()
        saved = tmp_path / "downloads" / wheel.name
        info.value.save_as(saved)
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == expected


def test_search_is_reached_by_requests_json_too(server: LockgateServer) -> None:
    response = requests.get(f"{server.url}/+search?q=nothing-here", timeout=30)
    assert response.status_code == 200 and response.json()["results"] == []


def _core_metadata_url(server: LockgateServer, project: str, version: str) -> str:
    page = server.get(
        f"/root/pypi/+simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert page.status_code == 200, page.text
    (wheel,) = [f for f in page.json()["files"] if f"-{version}-" in f["filename"]]
    return f"/root/pypi/+simple/{project}/{wheel['url']}"


def _refresh(server: LockgateServer, *projects: str) -> None:
    env = {
        **os.environ,
        "LOCKGATE_URL": server.url,
        "LOCKGATE_PASSWORD": server.root_auth()[1],
    }
    result = subprocess.run(
        [LOCKGATE, "mirror", "refresh", *projects],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _comparable(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(h["index"], h["name"], h["version"], h["snippet"]) for h in result["results"]]


def test_mirror_metadata_text_is_searchable(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    """SR-8: the summary, description, keywords and classifiers of a mirrored version
    become searchable when its `.metadata` or its file is cached (in the entry that
    records it), follow the latest cached version, and reach a replica with the entry."""
    upstream = FakeUpstream(tmp_path / "upstream")
    nebula = {
        "Keywords": "astronomy,dust",
        "Classifier": "Topic :: Scientific/Engineering :: Astronomy",
        "Description": "Tracks interstellar <b>particles</b> across catalogues.",
    }
    upstream.add_wheel("nebula-tools", "1.0", summary="Cosmic dust tracker", extra_metadata=nebula)
    # No PEP 658 upstream: the text comes from the wheel lockgate downloads.
    upstream.add_wheel(
        "quokka",
        "0.5",
        summary="Marsupial helpers",
        extra_metadata={"Description": "Reads wombat burrow surveys."},
        with_metadata=False,
    )
    upstream.start()
    primary = make_server("primary", upstream=upstream.url)
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        url = _core_metadata_url(primary, "nebula-tools", "1.0")
        assert find(primary, "nebula")["results"][0]["summary"] == ""  # a page: names only
        assert find(primary, "interstellar")["total"] == 0
        metadata = primary.get(url + ".metadata", allow_redirects=True)
        assert metadata.status_code == 200, metadata.text
        # Searchable when the `.metadata` answer returned (recorded before it is served).
        for word, field in (("interstellar", "description"), ("astronomy", "keywords"),
                            ("scientific", "classifiers"), ("cosmic", "summary")):  # fmt: skip
            hits = find(primary, word)["results"]
            assert [(h["index"], h["name"], h["source"]) for h in hits] == [
                ("root/pypi", "nebula-tools", "mirror")
            ], (word, field, hits)
        hit = find(primary, "interstellar")["results"][0]
        assert hit["summary"] == "Cosmic dust tracker" and hit["version"] == "1.0"
        assert "<mark>interstellar</mark>" in hit["snippet"] and "<b>" not in hit["snippet"]

        # A whole wheel downloaded (no upstream metadata): its own METADATA is read.
        wheel = primary.get(_core_metadata_url(primary, "quokka", "0.5"), allow_redirects=True)
        assert wheel.status_code == 200
        deadline = time.monotonic() + 30  # the entry commits just after the last byte
        while not find(primary, "wombat")["results"]:
            assert time.monotonic() < deadline, "the downloaded wheel's text never came"
            time.sleep(0.2)
        assert find(primary, "marsupial")["results"][0]["name"] == "quokka"

        # A newer version cached: the row follows it (its words in, the old ones out).
        upstream.add_wheel(
            "nebula-tools",
            "2.0",
            summary="Galactic gas mapper",
            extra_metadata={"Description": "Maps nebular hydrogen."},
        )
        _refresh(primary, "nebula-tools")
        new = primary.get(_core_metadata_url(primary, "nebula-tools", "2.0") + ".metadata",
                          allow_redirects=True)  # fmt: skip
        assert new.status_code == 200
        assert [h["version"] for h in find(primary, "hydrogen")["results"]] == ["2.0"]
        assert find(primary, "interstellar")["total"] == 0

        # The replica applies the same entries and finds the same.
        deadline = time.monotonic() + 60
        while replica.serial() != primary.serial() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert replica.serial() == primary.serial()
        for word in ("hydrogen", "wombat", "galactic", "nebula", "interstellar"):
            assert _comparable(find(replica, word)) == _comparable(find(primary, word)), word
        no_server_errors(primary)
        no_server_errors(replica)
    finally:
        replica.stop()
        upstream.close()
