"""Documentation end to end (README "Documentation"): zips posted as devpi-client posts
them (`:action=doc_upload`), served out of the zip under `+doc/` with a sandboxing
Content-Security-Policy, `latest`, 404s and redirects, conditional requests, private
indexes, the docs origin (`docs_url`), every bad archive refused with a clear 400 and
nothing stored, and docs carried by replicas, export/import and replay.
SQLite and PostgreSQL, real servers, no mocks."""

from __future__ import annotations

import asyncio
import io
import stat
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser

from lockgate import migrations
from tests.functional.test_changelog_replay import _digest, _replay, _source_url
from tests.functional.test_replica import _wait_caught_up
from tests.functional.test_transfer import _lockgate, _state
from tests.support.browser import page_context
from tests.support.dists import make_wheel
from tests.support.server import (
    LockgateServer,
    server_events,
    start_replica,
    tmp_entries,
    upload_form,
)

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
# The exact policy (docs/reliability.md DOC-7): scripts may run, but never with the
# viewer's origin (no allow-same-origin), so no cookie, storage or session of lockgate.
SANDBOX_CSP = "sandbox allow-scripts allow-popups allow-forms"

INDEX_HTML = (
    "<!doctype html><html><head><title>Acme Docs</title>"
    "<script>var secret = document.cookie;</script>"
    '<link rel="stylesheet" href="_static/style.css"></head>'
    "<body><h1>Welcome to acme</h1><p>The quick brown fox jumps.</p></body></html>"
)


def doc_zip(members: dict[str, bytes | str] | None = None, **extra: bytes | str) -> bytes:
    """A documentation zip as sphinx-build output zipped by devpi-client."""
    files: dict[str, bytes | str] = (
        {
            "index.html": INDEX_HTML,
            "_static/style.css": "body { color: black }",
            "api/index.html": "<html><body><p>Reference of frobnicate</p></body></html>",
            "api/frob.html": "<html><body>frob details</body></html>",
            "_sources/index.rst.txt": "Welcome to acme",
        }
        if members is None
        else dict(members)
    )
    files.update(extra)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def post_docs(
    server: LockgateServer,
    index: str,
    name: str,
    version: str | None,
    content: bytes | None,
    auth: Any = ALICE,
    filename: str | None = None,
) -> requests.Response:
    """Exactly what devpi-client's `Uploader.post("doc_upload", …)` sends: the form
    `name`, `version`, `:action`, `protocol_version` and the zip as `content`, to the
    index URL (devpi upload --with-docs / --only-docs)."""
    data: dict[str, str] = {"name": name, ":action": "doc_upload", "protocol_version": "1"}
    if version is not None:
        data["version"] = version
    files = None
    if content is not None:
        files = {"content": (filename or f"{name}-{version}.doc.zip", io.BytesIO(content))}
    return requests.post(f"{server.url}/{index}/", data=data, files=files, auth=auth, timeout=60)


def upload_wheel(
    server: LockgateServer, index: str, tmp_path: Path, name: str, version: str
) -> None:
    wheel = make_wheel(tmp_path / f"dist-{name}-{version}", name, version)
    with wheel.open("rb") as handle:
        response = requests.post(
            f"{server.url}/{index}/",
            data=upload_form(name, version, wheel),
            files={"content": (wheel.name, handle)},
            auth=ALICE,
            timeout=60,
        )
    assert response.status_code == 200, response.text


def sandboxed(response: requests.Response) -> None:
    assert response.headers.get("Content-Security-Policy") == SANDBOX_CSP, response.headers
    assert response.headers.get("X-Content-Type-Options") == "nosniff", response.headers


def get(server: LockgateServer, path: str, **kw: Any) -> requests.Response:
    response = server.get(path, allow_redirects=False, **kw)
    sandboxed(response)
    return response


def no_server_errors(*servers: LockgateServer) -> None:
    """INV-5: no 5xx and no unhandled error in any server's log."""
    for server in servers:
        bad = [
            event
            for event in server_events(server)
            if event.get("level") in ("error", "critical") or int(event.get("status", 0)) >= 500
        ]
        assert not bad, bad


def blobs(server: LockgateServer) -> set[str]:
    return {p.name for p in (server.serverdir / "blobs").rglob("*") if p.is_file()}


def set_up(server: LockgateServer, tmp_path: Path, *versions: str, volatile: bool = True) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE, volatile=volatile)
    for version in versions:
        upload_wheel(server, "alice/dev", tmp_path, "acme-utils", version)


def off_loop(function: Callable[..., Any], *args: Any) -> Any:
    """Run `function` in a thread of its own: once the worker's headless Chromium is up
    (Playwright's sync API), this thread has a running event loop, and asyncio.run —
    which the digest, replay and state helpers use — refuses to start another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def digest(url: str) -> dict[str, Any]:
    return off_loop(lambda: asyncio.run(_digest(url)))  # type: ignore[no-any-return]


def docs_rows(server: LockgateServer) -> list[Any]:
    return list(digest(_source_url(server))["release_docs"])


def test_upload_serve_latest_and_not_found(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """docs/reliability.md DOC-1 (devpi's form stores docs), DOC-7 (sandbox on every doc
    answer), DOC-8 (members, directories, redirects, latest, 404, conditional requests)."""
    server = make_server()
    set_up(server, tmp_path, "1.0", "2.0", "3.0")
    base = "/alice/dev/acme-utils"

    stored = post_docs(server, "alice/dev", "acme-utils", "1.0", doc_zip())
    assert stored.status_code == 200, stored.text
    newer = doc_zip(**{"index.html": "<html><body>Version two docs</body></html>"})
    assert post_docs(server, "alice/dev", "Acme_Utils", "2.0", newer).status_code == 200

    # The JSON API points at them (PyPI's `info.docs_url`), only where there are docs.
    info = server.get("/alice/dev/pypi/acme-utils/1.0/json").json()["info"]
    assert info["docs_url"] == f"{server.url}{base}/1.0/+doc/"
    assert server.get("/alice/dev/pypi/acme-utils/3.0/json").json()["info"]["docs_url"] is None

    page = get(server, f"{base}/1.0/+doc/index.html")
    assert page.status_code == 200 and page.text == INDEX_HTML
    assert page.headers["Content-Type"].startswith("text/html")
    etag, modified = page.headers["ETag"], page.headers["Last-Modified"]
    assert get(server, f"{base}/1.0/+doc/").text == INDEX_HTML
    css = get(server, f"{base}/1.0/+doc/_static/style.css")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert get(server, f"{base}/1.0/+doc/api/").text.endswith("frobnicate</p></body></html>")

    # `+doc` and a directory without its slash redirect (relative links need it).
    bare = get(server, f"{base}/1.0/+doc")
    assert bare.status_code == 302 and bare.headers["Location"] == f"{base}/1.0/+doc/"
    directory = get(server, f"{base}/1.0/+doc/api")
    assert directory.status_code == 302 and directory.headers["Location"] == f"{base}/1.0/+doc/api/"

    # Conditional requests: the ETag, then the date.
    assert (
        get(server, f"{base}/1.0/+doc/index.html", headers={"If-None-Match": etag}).status_code
        == 304
    )
    assert (
        get(
            server, f"{base}/1.0/+doc/index.html", headers={"If-Modified-Since": modified}
        ).status_code
        == 304
    )
    assert (
        get(server, f"{base}/1.0/+doc/index.html", headers={"If-None-Match": '"other"'}).status_code
        == 200
    )

    # HEAD says the size and sends nothing.
    head = server.request("HEAD", f"{base}/1.0/+doc/index.html")
    sandboxed(head)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(INDEX_HTML)

    # latest = the newest non-yanked release with docs (3.0 has none yet).
    assert (
        get(server, f"{base}/latest/+doc/index.html").text
        == "<html><body>Version two docs</body></html>"
    )
    assert post_docs(server, "alice/dev", "acme-utils", "3.0", doc_zip()).status_code == 200
    assert get(server, f"{base}/latest/+doc/index.html").text == INDEX_HTML
    yank = server.request("PATCH", f"{base}/3.0", auth=ALICE, json={"yanked": True})
    assert yank.status_code == 200, yank.text
    assert "Version two" in get(server, f"{base}/latest/+doc/index.html").text

    # 404s, each saying what is missing, sandboxed too.
    missing = get(server, f"{base}/1.0/+doc/nope.html")
    assert missing.status_code == 404 and "nope.html" in missing.text
    assert get(server, f"{base}/9.9/+doc/index.html").status_code == 404
    assert get(server, "/alice/dev/other/1.0/+doc/index.html").status_code == 404
    assert get(server, "/alice/nope/acme-utils/1.0/+doc/index.html").status_code == 404
    assert get(server, "/root/pypi/acme-utils/1.0/+doc/index.html").status_code == 404
    # Names in the zip are looked up, never joined to a file system path.
    assert get(server, f"{base}/1.0/+doc/..%2F..%2Flockgate.toml").status_code in (400, 404)

    # An empty version means the project's newest release (devpi's rule): 3.0.
    again = post_docs(server, "alice/dev", "acme-utils", "", doc_zip(**{"index.html": "three"}))
    assert again.status_code == 200, again.text
    assert get(server, f"{base}/3.0/+doc/").text == "three"

    # The pages' text is kept for search: titles and words, no script, no sources.
    rows = {row[2]: row for row in docs_rows(server)}
    text = rows["1.0"][9]
    assert "Acme Docs: Welcome to acme The quick brown fox jumps." in text
    assert "frobnicate" in text and "document.cookie" not in text and "color" not in text

    # Deleting the release removes its docs (the zip stays until gc).
    assert server.request("DELETE", f"{base}/1.0", auth=ALICE).status_code == 200
    assert get(server, f"{base}/1.0/+doc/index.html").status_code == 404
    assert "1.0" not in {row[2] for row in docs_rows(server)}
    no_server_errors(server)


def test_non_volatile_index_keeps_its_docs(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """docs/reliability.md DOC-1: on a non-volatile index the same zip again is a no-op
    (200), a different one 409 with nothing stored; a volatile index replaces them."""
    server = make_server()
    set_up(server, tmp_path, "1.0", volatile=False)
    first = doc_zip()
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", first).status_code == 200
    serial, before = server.serial(), blobs(server)
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", first).status_code == 200
    assert server.serial() == serial
    refused = post_docs(server, "alice/dev", "acme-utils", "1.0", doc_zip(**{"index.html": "x"}))
    assert refused.status_code == 409 and "not volatile" in refused.text
    assert server.serial() == serial and blobs(server) == before and tmp_entries(server) == []
    assert get(server, "/alice/dev/acme-utils/1.0/+doc/").text == INDEX_HTML

    server.create_index("alice/scratch", ALICE)
    upload_wheel(server, "alice/scratch", tmp_path, "acme-utils", "1.0")
    assert post_docs(server, "alice/scratch", "acme-utils", "1.0", first).status_code == 200
    replaced = post_docs(
        server, "alice/scratch", "acme-utils", "1.0", doc_zip(**{"index.html": "x"})
    )
    assert replaced.status_code == 200
    assert get(server, "/alice/scratch/acme-utils/1.0/+doc/").text == "x"
    no_server_errors(server)


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", "ok")
        link = zipfile.ZipInfo("passwd.html")
        link.create_system = 3  # Unix, so the mode bits count
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def _raw_zip(*names: str) -> bytes:
    """A zip whose member names are written as given (zipfile would not refuse them
    either, but this keeps them byte for byte)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", "ok")
        for name in names:
            archive.writestr(zipfile.ZipInfo(name), "x")
    return buffer.getvalue()


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.html", "ok")
        archive.writestr("zeros.html", b"\0" * (3 * 1024 * 1024))
    return buffer.getvalue()


def _corrupt(data: bytes) -> bytes:
    """Flip bytes inside the first member's compressed data (its CRC no longer fits)."""
    body = bytearray(data)
    start = 30 + len("index.html") + 5
    for i in range(start, start + 20):
        body[i] ^= 0xFF
    return bytes(body)


def test_bad_archives_are_refused_and_store_nothing(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """docs/reliability.md DOC-2 (names), DOC-3 (links), DOC-4 (caps and bombs), DOC-5
    (corrupt zips), DOC-6 (upload size), DOC-10 (no such release, bad form, rights): each a
    clear 4xx, the serial, the blobs and tmp/ unchanged."""
    server = make_server(docs_max_unpacked_bytes="4000000", docs_max_upload_bytes="3000000")
    server.stop()
    config = server.serverdir / "lockgate.toml"
    config.write_text(config.read_text() + "docs_max_members = 50\n")
    server.start()
    set_up(server, tmp_path, "1.0")
    server.create_user(*BOB)
    server.create_index("bob/dev", BOB)
    good = doc_zip()
    many = doc_zip({f"page{i}.html": "p" for i in range(60)})
    big = doc_zip({"index.html": "ok", **{f"f{i}.bin": bytes(range(256)) * 4096 for i in range(5)}})
    truncated = good[: len(good) // 2]
    cases: list[tuple[str, bytes | None, dict[str, Any], int, str]] = [
        ("dot-dot", _raw_zip("../evil.html"), {}, 400, "climbs out"),
        ("nested dot-dot", _raw_zip("a/../../evil.html"), {}, 400, "climbs out"),
        ("absolute", _raw_zip("/etc/evil.html"), {}, 400, "absolute path"),
        ("backslash", _raw_zip("..\\evil.html"), {}, 400, "backslash"),
        ("drive letter", _raw_zip("C:/evil.html"), {}, 400, "names a drive"),
        ("symlink", _symlink_zip(), {}, 400, "symbolic link"),
        ("too many members", many, {}, 400, "at most 50"),
        ("unpacks too large", big, {}, 400, "unpacks to more than"),
        ("zip bomb", _bomb(), {}, 400, "zip bomb"),
        ("truncated", truncated, {}, 400, "not a valid zip archive"),
        ("not a zip", b"<html>not a zip</html>", {}, 400, "not a valid zip archive"),
        ("bad CRC", _corrupt(good), {}, 400, "cannot be read"),
        ("empty zip", doc_zip({}), {}, 400, "holds no files"),
        ("over the upload cap", b"PK" + b"\1" * 3_100_000, {}, 413, "Documentation too large"),
        ("no such release", good, {"version": "9.9"}, 400, "does not exist"),
        ("no such project", good, {"name": "other", "version": ""}, 400, "no releases"),
        ("invalid version", good, {"version": "not a version"}, 400, "not a valid version"),
        ("no name", good, {"name": ""}, 400, "name: This field is required"),
        ("no content", None, {}, 400, "content"),
        ("anonymous", good, {"auth": None}, 401, "authentication"),
        ("not an uploader", good, {"auth": BOB}, 403, "isn't allowed to upload"),
        ("a mirror", good, {"index": "root/pypi"}, 403, "mirror"),
    ]
    for what, content, override, status, phrase in cases:
        serial, before = server.serial(), blobs(server)
        response = post_docs(
            server,
            override.get("index", "alice/dev"),
            override.get("name", "acme-utils"),
            override.get("version", "1.0"),
            content,
            auth=override.get("auth", ALICE),
        )
        assert response.status_code == status, (what, response.status_code, response.text)
        assert phrase in response.text, (what, response.text)
        assert server.serial() == serial, what
        assert blobs(server) == before, what
        assert tmp_entries(server) == [], what
        assert docs_rows(server) == [], what
    # The same server takes a good zip: the caps, not the server, refused the others.
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", good).status_code == 200
    no_server_errors(server)


def test_private_index_docs_need_read_rights(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """docs/reliability.md DOC-9: docs follow the index's acl_read, like its files."""
    server = make_server()
    set_up(server, tmp_path, "1.0")
    server.create_user(*BOB)
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", doc_zip()).status_code == 200
    private = server.request("PATCH", "/alice/dev", auth=ALICE, json={"acl_read": ["alice"]})
    assert private.status_code == 200, private.text
    path = "/alice/dev/acme-utils/1.0/+doc/index.html"
    assert get(server, path).status_code == 401
    assert get(server, path, auth=BOB).status_code == 403
    assert get(server, "/alice/dev/acme-utils/latest/+doc/", auth=BOB).status_code == 403
    assert get(server, path, auth=ALICE).text == INDEX_HTML
    no_server_errors(server)


def test_docs_url_sends_doc_requests_to_the_docs_origin(
    make_db_url: Callable[[], str | None], tmp_path: Path
) -> None:
    """docs/reliability.md DOC-7: with docs_url, doc pages are only served on that origin
    (here `localhost` beside `127.0.0.1`: two origins, one server)."""
    server = LockgateServer(tmp_path / "server", make_db_url())
    server.flags["docs_url"] = f"http://localhost:{server.port}"
    server.start()
    try:
        set_up(server, tmp_path, "1.0")
        assert post_docs(server, "alice/dev", "acme-utils", "1.0", doc_zip()).status_code == 200
        moved = get(server, "/alice/dev/acme-utils/1.0/+doc/index.html?x=1")
        assert moved.status_code == 302
        assert moved.headers["Location"] == (
            f"http://localhost:{server.port}/alice/dev/acme-utils/1.0/+doc/index.html?x=1"
        )
        there = requests.get(moved.headers["Location"], timeout=30)
        sandboxed(there)
        assert there.status_code == 200 and there.text == INDEX_HTML
        # Everything else stays where it is; the JSON API links to the docs origin.
        assert server.get("/alice/dev/+simple/acme-utils/").status_code == 200
        info = server.get("/alice/dev/pypi/acme-utils/1.0/json").json()["info"]
        assert info["docs_url"] == f"http://localhost:{server.port}/alice/dev/acme-utils/1.0/+doc/"
    finally:
        server.stop()
    no_server_errors(server)


def test_docs_replicate_replay_and_survive_export_import(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    """docs/reliability.md DOC-11 (and INV-3 for docs.put): a replica serves the docs it
    fetched, an export/import carries them, fsck checks their zip, replay gives the same."""
    primary = make_server("primary")
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        set_up(primary, tmp_path, "1.0")
        assert post_docs(primary, "alice/dev", "acme-utils", "1.0", doc_zip()).status_code == 200
        _wait_caught_up(primary, replica)
        served = get(replica, "/alice/dev/acme-utils/latest/+doc/index.html")
        assert served.status_code == 200 and served.text == INDEX_HTML
        assert docs_rows(replica) == docs_rows(primary)
        refused = post_docs(replica, "alice/dev", "acme-utils", "1.0", doc_zip())
        assert refused.status_code == 403 and primary.url in refused.text
    finally:
        replica.stop()
    no_server_errors(primary, replica)

    bundle = tmp_path / "full.tar"
    exported = _lockgate("export", "--serverdir", str(primary.serverdir), str(bundle))
    assert exported.returncode == 0, exported.stderr
    target = make_server("target")
    imported = _lockgate("import", "--serverdir", str(target.serverdir), str(bundle))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert off_loop(_state, target) == off_loop(_state, primary)
    assert off_loop(_state, target)["release_docs"]
    checked = _lockgate("fsck", "--serverdir", str(target.serverdir))
    assert checked.returncode == 0, checked.stdout
    assert get(target, "/alice/dev/acme-utils/1.0/+doc/api/frob.html").text == (
        "<html><body>frob details</body></html>"
    )
    no_server_errors(target)

    # gc keeps the zip while the docs reference it.
    target.stop()
    collected = _lockgate("gc", "--min-age", "0", "--serverdir", str(target.serverdir))
    assert collected.returncode == 0, collected.stdout + collected.stderr
    target.start()
    assert get(target, "/alice/dev/acme-utils/1.0/+doc/").text == INDEX_HTML

    primary.stop()
    replayed = make_db_url() or f"sqlite:///{tmp_path / 'replayed.sqlite'}"
    off_loop(migrations.upgrade, replayed)
    off_loop(lambda: asyncio.run(_replay(_source_url(primary), replayed)))
    assert digest(replayed) == digest(_source_url(primary))


PROBE_HTML = """<!doctype html><html><head><title>probe</title></head><body>
<p id="out">the script did not run</p>
<script>
(async () => {
  const out = [];
  try { out.push("cookie=" + document.cookie); }
  catch (e) { out.push("cookie blocked: " + e.name); }
  try { localStorage.setItem("k", "v"); out.push("storage=ok"); }
  catch (e) { out.push("storage blocked: " + e.name); }
  out.push("origin=" + self.origin);
  try {
    const answer = await fetch("/alice/+manage", {credentials: "include"});
    out.push("fetch read: " + answer.status);
  } catch (e) { out.push("fetch blocked: " + e.name); }
  document.getElementById("out").textContent = out.join("; ");
  document.body.dataset.done = "1";
})();
</script></body></html>"""


def test_a_script_in_docs_cannot_read_lockgates_cookie(
    server: LockgateServer, browser: Browser, tmp_path: Path
) -> None:
    """docs/reliability.md DOC-7 (and WM-9's doc case) in a real browser: alice is signed
    in (lockgate's session cookie), and lockgate's origin also holds a cookie its own
    scripts can read; a script in uploaded docs runs, but in an opaque origin, and reads
    neither cookie nor storage, nor alice's management page with her session."""
    set_up(server, tmp_path, "1.0")
    probe = doc_zip(**{"probe.html": PROBE_HTML})
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", probe).status_code == 200
    with page_context(browser, server.url) as (context, _outside):
        own = context.new_page()
        own.goto("/+login")
        own.get_by_label("User name").fill("alice")
        own.get_by_label("Password").fill("alice-pw")
        own.get_by_role("button", name="Log in").click()
        own.wait_for_url(server.url + "/")
        assert "lockgate_session" in {c["name"] for c in context.cookies()}
        context.add_cookies([{"name": "probe", "value": "s3cret-cookie", "url": server.url}])
        # The control: lockgate's own origin can read that cookie.
        assert "s3cret-cookie" in own.evaluate("document.cookie")
        page = context.new_page()
        response = page.goto("/alice/dev/acme-utils/1.0/+doc/probe.html")
        assert response is not None and response.status == 200
        assert response.headers["content-security-policy"] == SANDBOX_CSP
        page.wait_for_selector("body[data-done]", state="attached", timeout=30_000)
        result = page.inner_text("#out")
    assert "cookie blocked: SecurityError" in result, result
    assert "storage blocked: SecurityError" in result, result
    assert "origin=null" in result, result
    assert "fetch blocked" in result, result
    assert "s3cret-cookie" not in result and "fetch read" not in result, result
    no_server_errors(server)


def test_a_pushed_release_takes_its_docs(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """docs/reliability.md DOC-1: a push (devpi's JSON POST) copies the release's docs to
    the target, as devpi's push does; the zip is the same blob."""
    server = make_server()
    set_up(server, tmp_path, "1.0")
    server.create_index("alice/prod", ALICE, volatile=False)
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", doc_zip()).status_code == 200
    before = blobs(server)
    pushed = server.request(
        "POST",
        "/alice/dev",
        auth=ALICE,
        json={"name": "acme-utils", "version": "1.0", "targetindex": "alice/prod"},
    )
    assert pushed.status_code == 200, pushed.text
    assert get(server, "/alice/prod/acme-utils/latest/+doc/").text == INDEX_HTML
    rows = {row[0]: row for row in docs_rows(server)}
    assert rows["alice/prod"][3:] == rows["alice/dev"][3:]
    assert blobs(server) == before
    no_server_errors(server)


def test_release_pages_link_to_their_docs(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """The release page (browser) links the docs of the release, also when seen through
    an index that inherits it (under that index's path, DOC-12); a release without docs
    says so."""
    server = make_server()
    set_up(server, tmp_path, "1.0", "2.0")
    server.create_index("alice/child", ALICE, bases=["alice/dev"])
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", doc_zip()).status_code == 200
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for index in ("alice/dev", "alice/child"):
        page = server.get(f"/{index}/acme-utils/1.0", headers=browser)
        assert page.status_code == 200, page.text
        assert f'href="/{index}/acme-utils/1.0/+doc/"' in page.text, index
        without = server.get(f"/{index}/acme-utils/2.0", headers=browser)
        assert "+doc/" not in without.text and "none uploaded" in without.text


def test_documentation_text_is_searchable_at_once(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """Search (lockgate/search) indexes the latest release's documentation text in the
    same transaction as the upload: a word only the docs contain finds the project."""
    server = make_server()
    set_up(server, tmp_path, "1.0")
    manual = doc_zip(**{"index.html": "<html><body>Parses HL7 quokkaphrase messages</body></html>"})
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", manual).status_code == 200
    found = server.get(
        "/+search", params={"q": "quokkaphrase"}, headers={"Accept": "application/json"}
    )
    assert found.status_code == 200, found.text
    assert [hit["project"] for hit in found.json()["results"]] == ["acme-utils"], found.json()


def test_docs_are_inherited_through_bases_for_those_who_may_read_the_base(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    """docs/reliability.md DOC-12: a release alice/child sees through its base alice/dev
    has its docs served under alice/child (versions and `latest`, the same sandbox), its
    project and release pages link them there; the nearest index holding docs of a
    version wins; a private base's docs are read through the derived index only by those
    who may read the base (a token limited to the derived index ⇒ 403 naming the base),
    while the derived index's own docs stay readable; nothing is served for a version
    without docs."""
    server = make_server()
    set_up(server, tmp_path, "1.0", "2.0", "3.0")
    server.create_user(*BOB)
    server.create_index("alice/child", ALICE, bases=["alice/dev"])
    assert post_docs(server, "alice/dev", "acme-utils", "1.0", doc_zip()).status_code == 200
    two = doc_zip(**{"index.html": "<html><body>Version two docs</body></html>"})
    assert post_docs(server, "alice/dev", "acme-utils", "2.0", two).status_code == 200
    child = "/alice/child/acme-utils"

    page = get(server, f"{child}/1.0/+doc/index.html")  # checks the sandbox headers exactly
    assert page.status_code == 200 and page.text == INDEX_HTML
    assert get(server, f"{child}/1.0/+doc/api/").text.endswith("frobnicate</p></body></html>")
    assert get(server, f"{child}/latest/+doc/").text == "<html><body>Version two docs</body></html>"
    bare = get(server, f"{child}/2.0/+doc")
    assert bare.status_code == 302 and bare.headers["Location"] == f"{child}/2.0/+doc/"
    missing = get(server, f"{child}/3.0/+doc/")
    assert missing.status_code == 404 and "no documentation for acme-utils 3.0" in missing.text
    assert get(server, f"{child}/9.9/+doc/").status_code == 404
    assert get(server, f"{child}/1.0/+doc/nope.html").status_code == 404

    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    project_page = server.get(child, headers=browser)
    assert project_page.status_code == 200
    assert f'href="{child}/1.0/+doc/"' in project_page.text
    assert f'href="{child}/2.0/+doc/"' in project_page.text
    assert f'href="{child}/3.0/+doc/"' not in project_page.text
    release_page = server.get(f"{child}/2.0", headers=browser)
    assert f'href="{child}/2.0/+doc/"' in release_page.text

    # The nearest index's docs win: alice/child uploads 2.0 and its own docs.
    upload_wheel(server, "alice/child", tmp_path / "child", "acme-utils", "2.0")
    own = doc_zip(**{"index.html": "<html><body>Child docs</body></html>"})
    assert post_docs(server, "alice/child", "acme-utils", "2.0", own).status_code == 200
    assert get(server, f"{child}/2.0/+doc/").text == "<html><body>Child docs</body></html>"
    assert get(server, f"{child}/latest/+doc/").text == "<html><body>Child docs</body></html>"
    base_two = get(server, "/alice/dev/acme-utils/2.0/+doc/").text
    assert base_two == "<html><body>Version two docs</body></html>"

    # A private base (its derived index may be no more readable, the index rule): the
    # docs it holds are read through the child only by those who may read the base; a
    # token limited to alice/child reads the child's own docs, not the base's.
    for index in ("alice/child", "alice/dev"):
        private = server.request("PATCH", f"/{index}", auth=ALICE, json={"acl_read": ["alice"]})
        assert private.status_code == 200, private.text
    assert get(server, f"{child}/1.0/+doc/index.html").status_code == 401
    assert get(server, f"{child}/1.0/+doc/index.html", auth=BOB).status_code == 403
    assert get(server, f"{child}/1.0/+doc/index.html", auth=ALICE).text == INDEX_HTML
    token = server.request(
        "POST", "/alice/+tokens", auth=ALICE,
        json={"name": "child-only", "scopes": ["read"], "indexes": ["alice/child"]},
    )  # fmt: skip
    assert token.status_code == 201, token.text
    limited = ("alice", token.json()["result"]["token"])
    own_docs = get(server, f"{child}/2.0/+doc/", auth=limited)
    assert own_docs.text == "<html><body>Child docs</body></html>"
    refused = get(server, f"{child}/1.0/+doc/index.html", auth=limited)
    assert refused.status_code == 403 and "alice/dev" in refused.text
    no_server_errors(server)
