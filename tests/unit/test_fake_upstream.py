"""Tests for :mod:`tests.support.fake_upstream`: the fake PyPI is good enough for pip and uv.

Real pip and uv install from it in both page formats; the fault knobs (wrong hash,
hang, error, stop/start, trickle) behave as the mirror tests expect; pages carry the
PEP 503/691/658/700/714/792 fields; conditional requests and the request log work.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.dists import normalize_name
from tests.support.fake_upstream import JSON_TYPE, FakeUpstream, negotiate
from tests.support.server import BIN, client_env

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
BOTH = frozenset({"json", "html"})
HTML_ONLY = frozenset({"html"})


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    up = FakeUpstream(tmp_path / "upstream")
    up.start()
    yield up
    up.close()


def populate(up: FakeUpstream) -> None:
    """alpha: 1.0 installable, 2.0 yanked, 3.0 for Python 4 only; alpha needs beta.

    (uv ignores upper bounds of Requires-Python, so 3.0 is excluded by a lower bound.)
    """
    up.add_wheel("alpha", "1.0", requires_dist=["beta>=1"], requires_python=">=3.8,<4")
    up.add_sdist("alpha", "1.0", requires_dist=["beta>=1"], requires_python=">=3.8,<4")
    up.add_wheel("alpha", "2.0", requires_dist=["beta>=1"], yanked="broken build")
    up.add_wheel("alpha", "3.0", requires_python=">=4")
    up.add_wheel("Beta", "1.0")


def run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, env=client_env(tmp), timeout=120, check=False
    )


def pip_download(up: FakeUpstream, tmp: Path, pkg: str) -> subprocess.CompletedProcess[str]:
    dest = tmp / "pip-dest"
    return run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--index-url",
            up.url,
            "--dest",
            str(dest),
            pkg,
        ],
        tmp,
    )


def uv_install(up: FakeUpstream, tmp: Path, pkg: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            str(BIN / "uv"),
            "pip",
            "install",
            "--python",
            sys.executable,
            "--index-url",
            up.url,
            "--target",
            str(tmp / "uv-target"),
            pkg,
        ],
        tmp,
    )


def get(up: FakeUpstream, path: str, **kw: Any) -> requests.Response:
    kw.setdefault("timeout", 5)
    kw.setdefault("allow_redirects", False)
    return requests.get(up.origin + path, **kw)


# --- real clients -----------------------------------------------------------------


@pytest.mark.parametrize("formats", [BOTH, HTML_ONLY], ids=["json+html", "html-only"])
def test_pip_downloads_the_right_file(upstream: FakeUpstream, tmp_path: Path, formats) -> None:
    upstream.formats = set(formats)
    populate(upstream)
    result = pip_download(upstream, tmp_path, "alpha")
    assert result.returncode == 0, result.stdout + result.stderr
    # Not the yanked 2.0, not the Python>=4 3.0, and the wheel over the sdist.
    assert sorted(p.name for p in (tmp_path / "pip-dest").iterdir()) == [
        "alpha-1.0-py3-none-any.whl"
    ]
    assert upstream.requests_for("/simple/alpha/")
    assert upstream.requests_for("alpha-1.0-py3-none-any.whl.metadata")


@pytest.mark.parametrize("formats", [BOTH, HTML_ONLY], ids=["json+html", "html-only"])
def test_uv_installs_with_dependencies(upstream: FakeUpstream, tmp_path: Path, formats) -> None:
    upstream.formats = set(formats)
    populate(upstream)
    result = uv_install(upstream, tmp_path, "alpha")
    assert result.returncode == 0, result.stdout + result.stderr
    target = tmp_path / "uv-target"
    assert (target / "alpha" / "__init__.py").read_text().endswith("__version__ = '1.0'\n")
    assert (target / "beta" / "__init__.py").exists()
    assert upstream.requests_for("/simple/beta/")
    assert upstream.requests_for(".metadata")


@pytest.mark.parametrize("formats", [BOTH, HTML_ONLY], ids=["json+html", "html-only"])
def test_wrong_hash_makes_pip_fail(upstream: FakeUpstream, tmp_path: Path, formats) -> None:
    upstream.formats = set(formats)
    bad = upstream.add_wheel("gamma", "1.0", wrong_hash=True)
    assert bad.advertised_sha256 not in (None, bad.sha256)
    result = pip_download(upstream, tmp_path, "gamma")
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr, result.stderr
    # The file itself was served intact; only the advertised digest is wrong.
    assert upstream.requests_for(bad.url_path)
    assert hashlib.sha256(get(upstream, bad.url_path).content).hexdigest() == bad.sha256


# --- pages ---------------------------------------------------------------------


def test_json_project_page(upstream: FakeUpstream) -> None:
    populate(upstream)
    whl = upstream.add_wheel("alpha", "1.1", yanked=True, upload_time="2024-01-02T03:04:05.000006Z")
    r = get(upstream, "/simple/alpha/", headers={"Accept": PIP_ACCEPT})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == JSON_TYPE
    assert "Accept" in r.headers["Vary"]
    doc = r.json()
    assert doc["meta"] == {"api-version": "1.1"}
    assert doc["name"] == "alpha"
    assert doc["versions"] == ["1.0", "1.1", "2.0", "3.0"]
    assert "project-status" not in doc
    by_name = {f["filename"]: f for f in doc["files"]}
    entry = by_name[whl.filename]
    assert entry["url"] == upstream.origin + whl.url_path
    assert entry["hashes"] == {"sha256": whl.sha256}
    assert entry["size"] == whl.size == whl.path.stat().st_size
    assert entry["upload-time"] == "2024-01-02T03:04:05.000006Z"
    assert entry["yanked"] is True
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(whl.metadata).hexdigest()}
    assert entry["data-dist-info-metadata"] == entry["core-metadata"]
    assert by_name["alpha-2.0-py3-none-any.whl"]["yanked"] == "broken build"
    assert by_name["alpha-3.0-py3-none-any.whl"]["requires-python"] == ">=4"
    sdist = by_name["alpha-1.0.tar.gz"]
    assert sdist["core-metadata"] is False and sdist["yanked"] is False
    # The .metadata file is served and matches the advertised hash.
    meta = get(upstream, whl.url_path + ".metadata")
    assert meta.status_code == 200
    assert hashlib.sha256(meta.content).hexdigest() == entry["core-metadata"]["sha256"]
    sdist_path = sdist["url"].removeprefix(upstream.origin)
    assert get(upstream, sdist_path).status_code == 200
    assert get(upstream, sdist_path + ".metadata").status_code == 404

    index = get(upstream, "/simple/", headers={"Accept": UV_ACCEPT})
    assert index.headers["Content-Type"] == JSON_TYPE
    assert index.json() == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "alpha"}, {"name": "Beta"}],
    }


def test_html_project_page(upstream: FakeUpstream) -> None:
    populate(upstream)
    upstream.set_yanked("alpha", "alpha-1.0.tar.gz", True)
    for accept in (None, "text/html", PIP_ACCEPT):
        upstream.formats = {"html"} if accept == PIP_ACCEPT else {"json", "html"}
        r = get(upstream, "/simple/alpha/", headers={"Accept": accept} if accept else {})
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
    page = r.text
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta name="pypi:repository-version" content="1.1">' in page
    whl = next(f for f in upstream.files("alpha") if f.filename == "alpha-1.0-py3-none-any.whl")
    assert f'href="../../files/{whl.sha256[:16]}/{whl.filename}#sha256={whl.sha256}"' in page
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in page  # escaped exactly once
    assert 'data-requires-python="&gt;=4"' in page
    assert 'data-yanked="broken build"' in page
    assert 'data-yanked=""' in page  # yanked without a reason, never a bare attribute
    meta = f'"sha256={hashlib.sha256(whl.metadata).hexdigest()}"'
    assert f"data-core-metadata={meta}" in page and f"data-dist-info-metadata={meta}" in page
    assert page.count("<a ") == 4
    index = get(upstream, "/simple/").text
    assert '<a href="/simple/beta/">Beta</a>' in index


def test_negotiation() -> None:
    assert negotiate(PIP_ACCEPT, BOTH) == JSON_TYPE
    assert negotiate(UV_ACCEPT, BOTH) == JSON_TYPE
    assert negotiate("application/vnd.pypi.simple.v1+json, */*;q=0.1", BOTH) == JSON_TYPE
    assert negotiate(None, BOTH) == "text/html"
    assert negotiate("*/*", BOTH) == "text/html"
    assert negotiate("application/json", BOTH) == "text/html"
    assert negotiate("application/vnd.pypi.simple.v1+html", BOTH).endswith("v1+html")
    assert negotiate(PIP_ACCEPT, HTML_ONLY) == "text/html"


def test_status_markers_and_quarantine(upstream: FakeUpstream) -> None:
    populate(upstream)
    upstream.set_status("alpha", "archived", "moved to alpha2")
    doc = get(upstream, "/simple/alpha/", headers={"Accept": JSON_TYPE}).json()
    assert doc["meta"]["api-version"] == "1.4"
    assert doc["project-status"] == {"status": "archived", "reason": "moved to alpha2"}
    page = get(upstream, "/simple/alpha/").text
    assert '<meta name="pypi:repository-version" content="1.4">' in page
    assert '<meta name="pypi:project-status" content="archived">' in page
    assert '<meta name="pypi:project-status-reason" content="moved to alpha2">' in page

    url_path = upstream.files("alpha")[0].url_path
    upstream.set_status("alpha", "quarantined")
    doc = get(upstream, "/simple/alpha/", headers={"Accept": JSON_TYPE}).json()
    assert doc["files"] == [] and doc["versions"] == ["1.0", "2.0", "3.0"]
    assert "<a " not in get(upstream, "/simple/alpha/").text
    assert get(upstream, url_path).status_code == 404
    assert "alpha" not in get(upstream, "/simple/").text

    upstream.set_status("alpha", None)
    doc = get(upstream, "/simple/alpha/", headers={"Accept": JSON_TYPE}).json()
    assert "project-status" not in doc
    assert get(upstream, url_path).status_code == 200


def test_redirects_404_and_removal(upstream: FakeUpstream) -> None:
    populate(upstream)
    for path, location in [
        ("/simple/Alpha/", "/simple/alpha/"),
        ("/simple/be_ta/", "/simple/be-ta/"),
        ("/simple/alpha", "/simple/alpha/"),
        ("/simple", "/simple/"),
    ]:
        r = get(upstream, path)
        assert (r.status_code, r.headers["Location"]) == (301, location), path
    assert get(upstream, "/simple/nope/").status_code == 404
    assert get(upstream, "/files/0000/nope.whl").status_code == 404

    whl = upstream.files("beta")[0]
    assert get(upstream, whl.url_path).status_code == 200
    upstream.remove_file("beta", whl.filename)
    assert get(upstream, whl.url_path).status_code == 404
    assert whl.filename not in get(upstream, "/simple/beta/").text


def test_file_headers_and_ranges(upstream: FakeUpstream) -> None:
    whl = upstream.add_wheel("big", "1.0", payload_size=200_000)
    r = get(upstream, whl.url_path)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == whl.size == len(r.content)
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in r.headers
    assert r.headers["ETag"] == f'"{whl.sha256}"' and "Last-Modified" in r.headers
    head = requests.head(upstream.origin + whl.url_path, timeout=5)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == whl.size
    part = get(upstream, whl.url_path, headers={"Range": "bytes=-100"})
    assert part.status_code == 206 and part.content == r.content[-100:]
    assert part.headers["Content-Range"] == f"bytes {whl.size - 100}-{whl.size - 1}/{whl.size}"


# --- conditional requests and the log -----------------------------------------------


def test_etag_and_304(upstream: FakeUpstream) -> None:
    populate(upstream)
    for accept in (JSON_TYPE, "text/html"):
        first = get(upstream, "/simple/alpha/", headers={"Accept": accept})
        etag = first.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert "Last-Modified" in first.headers
        again = get(upstream, "/simple/alpha/", headers={"Accept": accept, "If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["ETag"] == etag
    # The two representations have different tags.
    json_tag = get(upstream, "/simple/alpha/", headers={"Accept": JSON_TYPE}).headers["ETag"]
    assert json_tag != etag
    # A change upstream changes the tag, so the old one no longer matches.
    upstream.set_yanked("alpha", "alpha-1.0.tar.gz", "oops")
    changed = get(
        upstream, "/simple/alpha/", headers={"Accept": JSON_TYPE, "If-None-Match": json_tag}
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != json_tag
    # Files too.
    whl = upstream.files("beta")[0]
    tag = get(upstream, whl.url_path).headers["ETag"]
    assert get(upstream, whl.url_path, headers={"If-None-Match": tag}).status_code == 304


def test_request_log(upstream: FakeUpstream) -> None:
    populate(upstream)
    get(upstream, "/simple/")
    get(upstream, "/simple/alpha/")
    requests.head(upstream.origin + "/simple/beta/", timeout=5)
    get(upstream, "/simple/missing/")
    assert upstream.requests == [
        ("GET", "/simple/"),
        ("GET", "/simple/alpha/"),
        ("HEAD", "/simple/beta/"),
        ("GET", "/simple/missing/"),
    ]
    assert upstream.requests_for("alpha") == [("GET", "/simple/alpha/")]
    upstream.clear_requests()
    assert upstream.requests == []


# --- faults ---------------------------------------------------------------------


def test_error_mode(upstream: FakeUpstream) -> None:
    populate(upstream)
    upstream.mode = "error"
    for path in ("/simple/", "/simple/alpha/", upstream.files("beta")[0].url_path):
        r = get(upstream, path)
        assert r.status_code == 500 and "internal server error" in r.text
    upstream.mode = "ok"
    assert get(upstream, "/simple/alpha/").status_code == 200
    with pytest.raises(ValueError):
        upstream.mode = "sideways"


def test_hang_mode_times_out_and_stop_is_prompt(upstream: FakeUpstream) -> None:
    populate(upstream)
    upstream.mode = "hang"
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        get(upstream, "/simple/alpha/", timeout=1)
    assert time.monotonic() - started < 3
    assert upstream.requests_for("/simple/alpha/")

    # A client still waiting when the server stops sees the connection end.
    outcome: list[object] = []

    def waiter() -> None:
        try:
            outcome.append(get(upstream, "/simple/", timeout=10).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 5
    while not upstream.requests_for("/simple/") or upstream.requests[-1][1] != "/simple/":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    upstream.stop()
    assert time.monotonic() - started < 2
    thread.join(5)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)


def test_hang_ends_when_mode_changes(upstream: FakeUpstream) -> None:
    populate(upstream)
    upstream.mode = "hang"
    timer = threading.Timer(0.3, lambda: setattr(upstream, "mode", "ok"))
    timer.start()
    started = time.monotonic()
    r = get(upstream, "/simple/alpha/", timeout=5)
    timer.join()
    assert r.status_code == 200
    assert 0.25 < time.monotonic() - started < 3


def test_stop_refuses_and_start_reuses_the_port(upstream: FakeUpstream) -> None:
    populate(upstream)
    port, url = upstream.port, upstream.url
    # Leave a keep-alive connection open across the restart.
    session = requests.Session()
    assert session.get(url, timeout=5).status_code == 200
    upstream.stop()
    upstream.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    assert upstream.start() is upstream
    assert (upstream.port, upstream.url) == (port, url)
    assert requests.get(url + "alpha/", timeout=5).status_code == 200
    assert session.get(url, timeout=5).status_code == 200
    session.close()


def test_slow_download_and_stop_mid_body(upstream: FakeUpstream) -> None:
    whl = upstream.add_wheel("slow", "1.0", payload_size=30_000)
    upstream.slow_bytes_per_second = 60_000
    started = time.monotonic()
    body = get(upstream, whl.url_path).content
    elapsed = time.monotonic() - started
    assert hashlib.sha256(body).hexdigest() == whl.sha256
    assert 0.3 < elapsed < 3, elapsed

    # Kill mid-download: the client holds a partial body, stop() is still prompt.
    upstream.slow_bytes_per_second = 2_000
    r = get(upstream, whl.url_path, stream=True)
    assert int(r.headers["Content-Length"]) == whl.size
    first = next(r.iter_content(100))
    assert first
    started = time.monotonic()
    upstream.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.RequestException):
        b"".join(r.iter_content(4096))
    r.close()


def test_names_in_urls_are_normalized(upstream: FakeUpstream) -> None:
    upstream.add_wheel("Zope.Interface_X", "1.0")
    assert upstream.project_url("Zope.Interface_X") == upstream.url + "zope-interface-x/"
    doc = get(upstream, "/simple/zope-interface-x/", headers={"Accept": JSON_TYPE}).json()
    assert doc["name"] == normalize_name("Zope.Interface_X")
