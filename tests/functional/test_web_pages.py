"""The read-only web pages (docs/reliability.md WEB-1..WEB-9): headless Chromium walks
front page → index → project → release → download and checks the file's sha256, on
SQLite and PostgreSQL; a malicious README renders inert; a private index sends an
anonymous browser to the login page; pages follow the browser's dark mode; installers
and scripts keep their answers on the same URLs; download counts reach the JSON API
and the pages after a flush and survive a crash, but for at most one batch.

`LOCKGATE_SCREENSHOTS=1` rewrites docs/screenshots/*.png from the walk (SQLite run).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page

from tests.support.browser import page_context
from tests.support.dists import make_sdist, make_wheel, sha256_file
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import Clients, LockgateServer, upload_form
from tests.support.waiting import wait_until
from tests.unit.test_web_negotiation import CHROMIUM as BROWSER_ACCEPT

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
BROWSER = {"Accept": BROWSER_ACCEPT}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
README = """# Foo.Bar

A **small** library that does *one* thing well.

```python
import foo_bar
foo_bar.run()
```

| option | default |
| ------ | ------- |
| speed  | fast    |
"""
# Downloads are flushed every 5 s; a loaded machine gets generous waits.
FLUSH_WAIT = 60.0


def _screenshot(page: Page, name: str) -> None:
    """docs/screenshots/<name>.png, only when asked (the default run writes nothing)."""
    if os.environ.get("LOCKGATE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _upload(
    server: LockgateServer,
    index: str,
    path: Path,
    name: str,
    version: str,
    auth: tuple[str, str] = ALICE,
    **fields: Any,
) -> requests.Response:
    """A legacy upload with chosen form fields (what twine sends, metadata included)."""
    data: dict[str, Any] = upload_form(name, version, path, **fields)
    if path.name.endswith(".tar.gz"):
        data.update(filetype="sdist", pyversion="source")
    return server.http.post(
        f"{server.url}/{index}/",
        data=data,
        files={"content": (path.name, path.read_bytes())},
        auth=auth,
        timeout=60,
    )


def _walk_world(server: LockgateServer, clients: Clients, tmp_path: Path) -> dict[str, Path]:
    """alice/base holds acme-utils; alice/dev inherits it and holds Foo.Bar 1.0 (sdist and
    wheel, uploaded with twine), 1.1 (with a README and a test result) and 2.0 (yanked)."""
    server.create_user(*ALICE)
    server.create_index("alice/base", ALICE)
    server.create_index("alice/dev", ALICE, bases=["alice/base"], push_requires=["py311"])
    dist = tmp_path / "dist"
    base = make_wheel(dist, "acme-utils", "3.2")
    assert _upload(server, "alice/base", base, "acme-utils", "3.2").status_code == 200
    files = {
        "sdist": make_sdist(dist, "Foo.Bar", "1.0"),
        "wheel": make_wheel(dist, "Foo.Bar", "1.0", requires_python=">=3.9"),
    }
    upload = clients.twine_upload(f"{server.url}/alice/dev/", list(files.values()), *ALICE)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    requires = ["requests>=2", "rich; extra == 'cli'"]
    newer = make_wheel(dist, "Foo.Bar", "1.1", requires_dist=requires, requires_python=">=3.10")
    answer = _upload(
        server,
        "alice/dev",
        newer,
        "Foo.Bar",
        "1.1",
        summary="Does one thing well",
        description=README,
        description_content_type="text/markdown; charset=UTF-8; variant=GFM",
        license="MIT",
        requires_python=">=3.10",
        requires_dist=requires,
        provides_extra="cli",
        classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved"],
        project_urls=["Source, https://git.example.org/foo-bar"],
    )
    assert answer.status_code == 200, answer.text
    files["newer"] = newer
    digest = sha256_file(newer)
    result = {"environment": "py311", "outcome": "passed", "python": "3.11.7", "log": "ok\n"}
    posted = server.request(
        "POST", f"/alice/dev/+f/{digest[:16]}/{newer.name}", auth=ALICE, json=result
    )
    assert posted.status_code in (200, 201), posted.text
    yanked = make_wheel(dist, "Foo.Bar", "2.0")
    assert _upload(server, "alice/dev", yanked, "Foo.Bar", "2.0").status_code == 200
    body = {"yanked": True, "reason": "broken build"}
    assert server.request("PATCH", "/alice/dev/foo-bar/2.0", auth=ALICE, json=body).ok
    return files


def test_chromium_walks_index_project_release_and_downloads(
    make_server: Callable[..., LockgateServer],
    backend: str,
    browser: Browser,
    clients: Clients,
    tmp_path: Path,
) -> None:
    """WEB-1, WEB-2, WEB-5: the walk, with every hop a link a person would click."""
    server = make_server()
    files = _walk_world(server, clients, tmp_path)
    downloads = tmp_path / "downloads"
    with page_context(browser, server.url) as (context, _outside):
        page = context.new_page()
        assert page.goto("/") is not None
        page.get_by_role("link", name="alice/dev").first.click()
        page.wait_for_url(re.compile(r"/alice/dev$"))
        assert page.get_by_role("heading", level=1).inner_text().startswith("alice/dev")
        settings = page.locator("dl.facts").inner_text()
        assert "alice/base" in settings and "py311" in settings
        rows = page.locator("table.projects tbody tr")
        assert rows.count() == 2
        inherited = page.locator("tr", has_text="acme-utils").inner_text()
        assert "inherited from alice/base" in inherited
        assert "own" in page.locator("tr", has_text="Foo.Bar").inner_text()
        if backend == "sqlite":
            _screenshot(page, "index")

        # Filter: a substring of the name, normalized.
        page.get_by_label("Filter projects by name").fill("acme")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url(re.compile(r"q=acme"))
        assert page.locator("table.projects tbody tr").count() == 1

        page.goto("/alice/dev")
        page.get_by_role("link", name="Foo.Bar").click()
        page.wait_for_url(re.compile(r"/alice/dev/foo-bar$"))
        assert page.locator("main > h1").inner_text() == "Foo.Bar 1.1"
        versions = page.locator("table.versions tbody tr td:first-child a")
        assert versions.all_inner_texts() == ["2.0", "1.1", "1.0"]
        assert "yanked" in page.locator("table.versions tbody tr").first.inner_text()
        assert "uploaded to alice/dev by alice" in page.locator("table.versions").inner_text()
        readme = page.locator(".readme")
        assert readme.locator("h1").inner_text() == "Foo.Bar"
        assert readme.locator("table").count() == 1
        assert page.locator("figure.chart svg rect.bar").count() == 30

        page.get_by_role("link", name="1.1", exact=True).click()
        page.wait_for_url(re.compile(r"/alice/dev/foo-bar/1\.1$"))
        text = page.locator("main").inner_text()
        for expected in (
            "requests>=2",
            "cli",
            "Programming Language :: Python :: 3",
            "MIT",
            ">=3.10",
            "py3-none-any",
            "py311",
            "passed",
        ):
            assert expected in text, expected
        source = page.get_by_role("link", name="Source")
        assert source.get_attribute("href") == "https://git.example.org/foo-bar"
        if backend == "sqlite":
            _screenshot(page, "release")

        page.goto("/alice/dev/foo-bar/1.0")
        shown = {
            row.locator("a[download]").inner_text(): row.locator("code.sha256").inner_text()
            for row in page.locator("table.files tbody tr").all()
        }
        assert shown == {f.name: sha256_file(f) for f in (files["sdist"], files["wheel"])}
        with page.expect_download() as info:
            page.get_by_role("link", name=files["wheel"].name).click()
        saved = downloads / files["wheel"].name
        info.value.save_as(saved)
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == shown[files["wheel"].name]

        # The browser's download is counted: the chart shows it after the next flush.
        def chart_caption() -> str:
            page.goto("/alice/dev/foo-bar")
            return page.locator("figure.chart figcaption").inner_text()

        wait_until(
            lambda: chart_caption().startswith("1 download "),
            "the browser's download on the chart",
            timeout=FLUSH_WAIT,
            interval=1.0,
        )
        if backend == "sqlite":
            _screenshot(page, "project")

        # The yanked release says so, with its reason.
        page.goto("/alice/dev/foo-bar/2.0")
        assert "This release is yanked: broken build" in page.locator("main").inner_text()

        page.goto("/alice")
        assert page.get_by_role("link", name="alice/dev").count() == 1
        if backend == "sqlite":
            _screenshot(page, "user")
        page.goto("/+status")
        assert page.get_by_role("heading", level=1).inner_text() == "Server status"
        assert "primary" in page.locator("dl.facts").first.inner_text()
        if backend == "sqlite":
            _screenshot(page, "status")


def test_malicious_readme_renders_inert(
    server: LockgateServer, browser: Browser, tmp_path: Path
) -> None:
    """WEB-3: script tags, javascript: links, event attributes and a javascript: project
    URL never run, in Markdown, reStructuredText and raw HTML alike."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    evil_markdown = (
        "# Evil\n\n<script>window.pwned = 1; alert('md')</script>\n\n"
        "[click](javascript:window.pwned=2)\n\n"
        '<img src="x" onerror="window.pwned=3">\n\n'
        '<a href="javascript:window.pwned=4" onclick="window.pwned=5">raw</a>\n\n'
        '<svg onload="window.pwned=6"><circle r="5"/></svg>\n\n'
        '<iframe src="javascript:window.pwned=7"></iframe>\n'
        '<div style="background:url(javascript:window.pwned=8)">styled</div>\n'
    )
    evil_rst = (
        "Evil\n====\n\n`click <javascript:window.pwned=9>`_\n\n"
        ".. raw:: html\n\n   <script>window.pwned = 10</script>\n"
    )
    dist = tmp_path / "dist"
    for version, description, content_type in (
        ("1.0", evil_markdown, "text/markdown"),
        ("2.0", evil_rst, "text/x-rst"),
        ("3.0", "<script>window.pwned=11</script>", "text/plain"),
    ):
        wheel = make_wheel(dist, "evil", version)
        answer = _upload(
            server,
            "alice/dev",
            wheel,
            "evil",
            version,
            description=description,
            description_content_type=content_type,
            project_urls=["Home, javascript:window.pwned=12"],
            home_page="javascript:window.pwned=13",
        )
        assert answer.status_code == 200, answer.text
    dialogs: list[str] = []
    with page_context(browser, server.url) as (context, _outside):
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        for path in (
            "/alice/dev/evil",
            "/alice/dev/evil/1.0",
            "/alice/dev/evil/2.0",
            "/alice/dev/evil/3.0",
        ):
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            assert "script-src" not in response.headers["content-security-policy"]
            for link in page.locator(".readme a, .readme area").all():
                link.click(timeout=5000, no_wait_after=True) if link.is_visible() else None
            page.wait_for_timeout(200)
            assert page.evaluate("window.pwned") is None, path
            main = page.locator("main")
            assert main.locator("script, iframe, [onerror], [onload], [onclick]").count() == 0
            hrefs = [a.get_attribute("href") or "" for a in main.locator("a").all()]
            assert not [h for h in hrefs if h.strip().lower().startswith("javascript")], path
            assert main.locator("[style]").count() == 0, path
        # The javascript: project URL and home page are shown as text, never as links.
        assert "javascript:window.pwned=12" in page.locator("main").inner_text()
    assert dialogs == []


def test_private_index_pages_send_anonymous_browsers_to_login(
    server: LockgateServer, browser: Browser, tmp_path: Path
) -> None:
    """WEB-4: an anonymous browser is sent to /+login?next=…, a signed-in non-reader
    gets a 403 page, the reader sees the pages; listings hide the index; scripts keep
    their 401."""
    server.create_user(*ALICE)
    server.create_user(*BOB)
    server.create_index("alice/secret", ALICE, acl_read=["alice"])
    server.create_index("alice/open", ALICE)
    wheel = make_wheel(tmp_path / "dist", "hidden-thing", "1.0")
    assert _upload(server, "alice/secret", wheel, "hidden-thing", "1.0").status_code == 200
    for path in ("/alice/secret", "/alice/secret/hidden-thing", "/alice/secret/hidden-thing/1.0"):
        anonymous = server.get(path, headers=BROWSER)
        assert anonymous.status_code == 303, (path, anonymous.status_code)
        assert anonymous.headers["Location"] == f"/+login?next={path}"
        refused = server.get(path, headers=BROWSER, auth=BOB)
        assert refused.status_code == 403
        assert refused.headers["Content-Type"].startswith("text/html")
        assert "may not read index alice/secret" in refused.text
        allowed = server.get(path, headers=BROWSER, auth=ALICE)
        assert allowed.status_code == 200, (path, allowed.text)
        # Scripts: unchanged (401 asking for credentials).
        script = server.get(path, headers={"Accept": "application/json"})
        assert script.status_code in (401, 404), path
    location = server.get("/alice/secret?page=2&q=x", headers=BROWSER).headers["Location"]
    assert parse_qs(urlsplit(location).query) == {"next": ["/alice/secret?page=2&q=x"]}
    for listing in ("/", "/alice"):
        shown = server.get(listing, headers=BROWSER)
        assert "alice/open" in shown.text and "alice/secret" not in shown.text, listing
        assert "alice/secret" in server.get(listing, headers=BROWSER, auth=ALICE).text
    with page_context(browser, server.url) as (context, _outside):
        page = context.new_page()
        page.goto("/alice/secret/hidden-thing")
        assert page.url.endswith("/+login?next=/alice/secret/hidden-thing")
        # Only the path the visitor typed comes back (to return there after login).
        assert "hidden-thing" not in page.content().replace("/alice/secret/hidden-thing", "")


def test_pages_follow_dark_mode(server: LockgateServer, browser: Browser, tmp_path: Path) -> None:
    """WEB-1: every page is readable in light and dark, without anything from outside."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    wheel = make_wheel(tmp_path / "dist", "shade", "1.0")
    assert _upload(server, "alice/dev", wheel, "shade", "1.0", description=README).ok
    paths = ("/alice", "/alice/dev", "/alice/dev/shade", "/alice/dev/shade/1.0", "/+status")
    colours: dict[str, dict[str, str]] = {}
    for scheme in ("light", "dark"):
        with page_context(browser, server.url, color_scheme=scheme) as (context, _outside):
            page = context.new_page()
            for path in paths:
                response = page.goto(path)
                assert response is not None and response.status == 200, path
                colours.setdefault(path, {})[scheme] = page.evaluate(
                    "[getComputedStyle(document.body).backgroundColor,"
                    " getComputedStyle(document.body).color].join()"
                )
                assert page.locator("h1").count() == 1, path
            page.goto("/alice/dev/nope")
            assert page.get_by_role("heading", level=1).inner_text().startswith("Not Found")
    for path, seen in colours.items():
        assert seen["light"] != seen["dark"], path
        assert seen["light"].startswith("rgb(255, 255, 255)"), path


def test_installers_and_scripts_keep_their_answers(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    """WEB-5: the same URLs still answer pip, uv, old pip, devpi-client and scripts."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    wheel = make_wheel(tmp_path / "dist", "plain-pkg", "1.0")
    assert _upload(server, "alice/dev", wheel, "plain-pkg", "1.0").status_code == 200
    for headers in (
        {"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.01"},
        {"Accept": "text/html", "User-Agent": "pip/9.0.3 {}"},
        {"Accept": "text/html,application/xhtml+xml", "User-Agent": "uv/0.5.1"},
        {"Accept": "text/html", "User-Agent": "poetry/2.0.1 (python 3.11)"},
        {},
    ):
        answer = server.get("/alice/dev/plain-pkg/", headers=headers)
        assert answer.status_code == 302, headers
        assert answer.headers["Location"] == "/alice/dev/+simple/plain-pkg/"
    installed = clients.pip_install(f"{server.url}/alice/dev/", "plain-pkg", target=tmp_path / "t")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    json_only = {"Accept": "application/json"}
    assert server.get("/alice/dev", headers=json_only).json()["type"] == "indexconfig"
    assert server.get("/alice", headers=json_only).json()["type"] == "userconfig"
    assert server.get("/+status", headers=json_only).json()["role"] == "primary"
    # devpi-client's project and release JSON (lockgate/devpi) on the same URLs.
    assert server.get("/alice/dev/plain-pkg", headers=json_only).json()["type"] == "projectconfig"
    release = server.get("/alice/dev/plain-pkg/1.0", headers=json_only)
    assert release.json()["type"] == "versiondata"
    # Anyone else (no Accept, */*) gets pointed at the PyPI JSON API.
    release = server.get("/alice/dev/plain-pkg/1.0", headers={"Accept": "*/*"})
    assert release.status_code == 404 and "pypi/plain-pkg/1.0/json" in release.text
    # Errors: a page for a browser, JSON or text for the rest.
    page = server.get("/nobody", headers=BROWSER)
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert "user &#39;nobody&#39; does not exist" in page.text
    assert server.get("/nobody", headers=json_only).json()["status"] == 404
    assert server.get("/nobody").headers["Content-Type"].startswith("text/plain")
    # Bad input on the pages: 400 pages saying what is wrong.
    for bad, message in (
        ("/alice/dev?page=0", "must be a page number"),
        ("/alice/dev?page=abc", "must be a page number"),
        ("/alice/dev?q=" + "x" * 101, "limited to 100 characters"),
    ):
        answer = server.get(bad, headers=BROWSER)
        assert answer.status_code == 400 and message in answer.text, bad
    assert server.get("/alice/dev/plain-pkg/9.9", headers=BROWSER).status_code == 404
    assert server.get("/alice/dev/Plain_Pkg", headers=BROWSER).headers["Location"] == (
        "/alice/dev/plain-pkg"
    )


def test_projects_are_paged(server: LockgateServer, tmp_path: Path) -> None:
    """WEB-2: 100 projects a page, with links to the next; the filter keeps its pages."""
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    dist = tmp_path / "dist"
    for number in range(101):
        wheel = make_wheel(dist, f"pkg{number:03d}", "1.0")
        assert _upload(server, "alice/dev", wheel, f"pkg{number:03d}", "1.0").status_code == 200
    first = server.get("/alice/dev", headers=BROWSER).text
    assert first.count('href="/alice/dev/pkg') == 100 and "pkg100" not in first
    assert 'href="/alice/dev?q=&amp;page=2"' in first and "Page 1 of 2" in first
    second = server.get("/alice/dev?page=2", headers=BROWSER).text
    assert second.count('href="/alice/dev/pkg') == 1 and "pkg100" in second
    filtered = server.get("/alice/dev?q=PKG05", headers=BROWSER).text
    assert filtered.count('href="/alice/dev/pkg') == 10 and "Page 1 of" not in filtered
    # Past the last page: the last page.
    assert "pkg100" in server.get("/alice/dev?page=7", headers=BROWSER).text


def _downloads(server: LockgateServer, project: str) -> dict[str, int]:
    answer = server.get(f"/alice/dev/pypi/{project}/json")
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["info"]["downloads"])


def test_downloads_counted_flushed_and_survive_crashes(
    make_server: Callable[..., LockgateServer],
    backend: str,
    clients: Clients,
    tmp_path: Path,
) -> None:
    """WEB-6, WEB-7: pip's downloads show in the JSON API and on the pages after the
    flush; a clean stop writes the last batch; kill -9 loses at most the last batch."""
    server = make_server()
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    wheel = make_wheel(tmp_path / "dist", "counted", "1.0")
    assert _upload(server, "alice/dev", wheel, "counted", "1.0").status_code == 200
    assert _downloads(server, "counted") == {"last_day": 0, "last_week": 0, "last_month": 0}
    for attempt in range(2):
        installed = clients.pip_install(
            server.simple_url("alice/dev"), "counted", target=tmp_path / f"t{attempt}"
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    wait_until(
        lambda: _downloads(server, "counted")["last_day"] == 2,
        "pip's two downloads to be flushed",
        timeout=FLUSH_WAIT,
        interval=0.5,
    )
    assert _downloads(server, "counted") == {"last_day": 2, "last_week": 2, "last_month": 2}
    project = server.get("/alice/dev/counted", headers=BROWSER).text
    assert "2 downloads in the last 30 days" in project
    release = server.get("/alice/dev/counted/1.0", headers=BROWSER).text
    assert re.search(r'<td class="optional">2</td>', release)
    # Neither a HEAD, a revalidation (304) nor the .metadata counts as a download.
    url = server.get("/alice/dev/+simple/counted/", headers={"Accept": "text/html"}).text
    href = re.search(r'href="([^"#]+)', url)
    assert href is not None
    file_url = requests.compat.urljoin(server.url + "/alice/dev/+simple/counted/", href.group(1))
    etag = server.http.get(file_url, timeout=30).headers["ETag"]  # the third download
    assert server.http.head(file_url, timeout=30).status_code == 200
    again = server.http.get(file_url, headers={"If-None-Match": etag}, timeout=30)
    assert again.status_code == 304

    # A clean stop writes the counts of its last seconds.
    for _ in range(2):
        assert server.http.get(file_url, timeout=30).status_code == 200
    assert server.stop() == 0
    server.start()
    assert _downloads(server, "counted")["last_day"] == 5

    # kill -9 right after more downloads: the flushed counts stay, the unflushed
    # batch (at most FLUSH_SECONDS of downloads) may be lost, nothing else.
    for _ in range(3):
        assert server.http.get(file_url, timeout=30).status_code == 200
    server.stop(signal.SIGKILL)
    server.start()
    assert 5 <= _downloads(server, "counted")["last_day"] <= 8


def test_mirror_project_page_shows_what_is_cached(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    """WEB-8: a mirrored project's page marks it mirrored and says which files are cached;
    its release page reads the description from the cached METADATA."""
    upstream = FakeUpstream(tmp_path / "upstream")
    upstream.add_wheel("alpha", "1.0")
    upstream.add_wheel("alpha", "1.1", requires_dist=["beta>=2"])
    upstream.add_sdist("alpha", "1.1")
    upstream.start()
    try:
        server = make_server(upstream=upstream.url)
        installed = clients.pip_install(
            server.simple_url("root/pypi"), "alpha==1.1", "--no-deps", target=tmp_path / "t"
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        page = server.get("/root/pypi/alpha", headers=BROWSER)
        assert page.status_code == 200, page.text
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page.text, re.S)
        newest = next(row for row in rows if ">1.1<" in row)
        assert "mirrored by" in newest and "(1 cached)" in newest
        assert "(0 cached)" in next(row for row in rows if ">1.0<" in row)
        release = server.get("/root/pypi/alpha/1.1", headers=BROWSER).text
        assert release.count('<span class="badge">cached</span>') == 1
        assert release.count('<span class="badge">not cached</span>') == 1
        assert "beta&gt;=2" in release  # requires-dist read from the cached METADATA
        index = server.get("/root/pypi", headers=BROWSER).text
        assert "mirror" in index and upstream.url in index and "reachable" in index
    finally:
        upstream.close()


def test_status_page_and_counts_on_a_replica(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    """WEB-6: a replica serves the pages and counts its own downloads (counts are not
    replicated); /+status shows the replica on the primary and the primary on the replica,
    each with the lag."""
    primary = make_server("primary")
    token = primary.request(
        "POST",
        "/root/+tokens",
        auth=primary.root_auth(),
        json={"name": "replica", "scopes": ["replicate"]},
    ).json()["result"]["token"]
    replica = LockgateServer(
        tmp_path / "replica", make_db_url(), primary=primary.url, primary_token=token
    ).start()
    try:
        primary.create_user(*ALICE)
        primary.create_index("alice/dev", ALICE)
        wheel = make_wheel(tmp_path / "dist", "replicated", "1.0")
        assert _upload(primary, "alice/dev", wheel, "replicated", "1.0").status_code == 200
        wait_until(lambda: replica.serial() == primary.serial(), "the replica to catch up", 30)
        page = replica.get("/alice/dev/replicated/1.0", headers=BROWSER)
        assert page.status_code == 200 and wheel.name in page.text
        href = re.search(r'href="(/alice/dev/\+f/[^"]+)" download', page.text)
        assert href is not None
        for _ in range(2):
            assert replica.get(href.group(1)).content == wheel.read_bytes()

        def replica_counts() -> dict[str, int]:
            answer = replica.get("/alice/dev/pypi/replicated/json")
            return dict(answer.json()["info"]["downloads"])

        wait_until(
            lambda: replica_counts()["last_day"] == 2,
            "the replica's downloads to be flushed",
            timeout=FLUSH_WAIT,
            interval=0.5,
        )
        answer = primary.get("/alice/dev/pypi/replicated/json").json()
        assert answer["info"]["downloads"]["last_day"] == 0  # node-local

        def followers() -> list[dict[str, Any]]:
            return list(primary.get("/+status").json()["followers"])

        wait_until(lambda: bool(followers()), "the primary to see its replica", timeout=30)
        wait_until(lambda: followers()[0]["lag"] == 0, "the replica's lag to be 0", timeout=30)
        on_primary = primary.get("/+status", headers=BROWSER).text
        assert "127.0.0.1" in on_primary and "up to date" in on_primary
        on_replica = replica.get("/+status", headers=BROWSER).text
        assert "replica" in on_replica and primary.url in on_replica
        assert replica.get("/+status").json()["replication"]["primary"] == primary.url
    finally:
        replica.stop()
