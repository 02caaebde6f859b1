"""The PyPI caching mirror end to end: a real lockgate process in front of a real
(fake) upstream on loopback, driven with real pip and uv (issue 3's tests)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.dists import make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import LOCKGATE, Clients, LockgateServer

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
FAST_MIRROR = {"mirror_timeout": 2, "mirror_offline_retry": 1, "mirror_cache_expiry": 3600}


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(tmp_path / "upstream")
    fake.add_wheel("alpha", "1.0")
    fake.add_wheel("alpha", "1.1", requires_python=">=3.8")
    fake.add_sdist("alpha", "1.1")
    fake.add_wheel("beta", "2.0", requires_dist=["alpha>=1.0"], with_metadata=False)
    fake.add_wheel("gamma", "0.1")
    fake.start()
    yield fake
    fake.close()


@pytest.fixture
def mirror(make_server: Callable[..., LockgateServer], upstream: FakeUpstream) -> LockgateServer:
    server = make_server(upstream=upstream.url)
    response = server.request("PATCH", "/root/pypi", auth=server.root_auth(), json=FAST_MIRROR)
    assert response.status_code == 200, response.text
    return server


def _file_requests(upstream: FakeUpstream) -> list[tuple[str, str]]:
    return [r for r in upstream.requests if r[1].startswith("/files/")]


def _page_requests(upstream: FakeUpstream) -> list[tuple[str, str]]:
    return [r for r in upstream.requests if r[1].startswith("/simple/")]


def test_install_caches_then_works_offline_then_recovers(
    mirror: LockgateServer, upstream: FakeUpstream, clients: Clients, tmp_path: Path
) -> None:
    index = mirror.simple_url("root/pypi")
    first = clients.pip_install(index, "beta", target=tmp_path / "t1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "t1" / "alpha").is_dir() and (tmp_path / "t1" / "beta").is_dir()
    assert _file_requests(upstream), "the first install must fetch files upstream"

    # A second client is served from the cache: no file and no page requests upstream.
    upstream.clear_requests()
    second = clients.uv_install(index, "beta", target=tmp_path / "t2")
    assert second.returncode == 0, second.stdout + second.stderr
    assert _file_requests(upstream) == []
    assert _page_requests(upstream) == []

    for mode in ("stopped", "hang", "error"):
        if mode == "stopped":
            upstream.stop()
        else:
            upstream.start() if not upstream.running else None
            upstream.mode = mode
        # Pages must be asked for again to exercise the fault: expire them.
        expire = {"mirror_cache_expiry": 0}
        assert mirror.request("PATCH", "/root/pypi", auth=mirror.root_auth(), json=expire).ok
        cached = clients.pip_install(index, "beta", target=tmp_path / f"p-{mode}")
        assert cached.returncode == 0, f"{mode}: {cached.stdout}{cached.stderr}"
        cached_uv = clients.uv_install(index, "beta", target=tmp_path / f"u-{mode}")
        assert cached_uv.returncode == 0, f"{mode}: {cached_uv.stdout}{cached_uv.stderr}"
        started = time.monotonic()
        page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON)
        assert page.status_code == 200
        assert page.headers.get("X-Lockgate-Stale"), f"{mode}: stale pages must say so"
        never = mirror.get("/root/pypi/+simple/gamma/", headers=JSON)
        assert never.status_code == 404, f"{mode}: {never.status_code} {never.text}"
        assert "upstream" in never.text and "gamma" in never.text
        assert time.monotonic() - started < 12, f"{mode}: answers must come within seconds"
        failed = clients.pip_install(index, "gamma", target=tmp_path / f"g-{mode}")
        assert failed.returncode != 0
        upstream.mode = "ok"
    assert "serving stale mirror page" in mirror.log()
    assert mirror.get("/+status").json()["upstreams"]["root/pypi"]["reachable"] is False

    # Upstream back: a never-cached project installs without a restart.
    time.sleep(1.2)  # the offline retry interval set in FAST_MIRROR
    back = clients.uv_install(index, "gamma", target=tmp_path / "g-back")
    assert back.returncode == 0, back.stdout + back.stderr
    assert mirror.get("/+status").json()["upstreams"]["root/pypi"]["reachable"] is True


def test_pages_pass_on_everything_and_point_at_lockgate(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    upstream.set_yanked("alpha", "alpha-1.0-py3-none-any.whl", "broken")
    page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()
    files = {f["filename"]: f for f in page["files"]}
    assert set(files) == {f.filename for f in upstream.files("alpha")}
    for file in upstream.files("alpha"):
        served = files[file.filename]
        assert served["hashes"] == {"sha256": file.sha256}
        assert served["size"] == file.size
        assert served["upload-time"] == file.upload_time
        assert served["requires-python"] == file.requires_python
        assert not served["url"].startswith("http"), "file URLs must point at lockgate"
    assert files["alpha-1.0-py3-none-any.whl"]["yanked"] == "broken"
    wheel = files["alpha-1.1-py3-none-any.whl"]
    assert wheel["core-metadata"] == {
        "sha256": hashlib.sha256(
            next(f for f in upstream.files("alpha") if f.filename == wheel["filename"]).metadata
            or b""
        ).hexdigest()
    }
    html = mirror.get("/root/pypi/+simple/alpha/", headers={"Accept": "text/html"}).text
    assert 'data-yanked="broken"' in html and "&gt;=3.8" in html
    # Upstream offering only HTML is mirrored too.
    upstream.formats = {"html"}
    page = mirror.get("/root/pypi/+simple/gamma/", headers=JSON).json()
    assert [f["filename"] for f in page["files"]] == ["gamma-0.1-py3-none-any.whl"]


def _beta_core(mirror: LockgateServer) -> object:
    return mirror.get("/root/pypi/+simple/beta/", headers=JSON).json()["files"][0]["core-metadata"]


def test_metadata_is_extracted_from_the_wheel_when_upstream_has_none(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    page = mirror.get("/root/pypi/+simple/beta/", headers=JSON).json()
    (wheel,) = page["files"]
    # Advertised before it is made, without a hash (docs/reliability.md MC-5).
    assert wheel["core-metadata"] is True
    url = "/root/pypi/+simple/beta/" + wheel["url"]
    body = mirror.get(url, allow_redirects=True).content
    assert hashlib.sha256(body).hexdigest() == wheel["hashes"]["sha256"]
    # The last byte goes out once the file is verified and durable; the entry
    # advertising the extracted metadata commits right after.
    deadline = time.monotonic() + 30
    while not isinstance(core := _beta_core(mirror), dict):
        assert time.monotonic() < deadline, core
        time.sleep(0.2)
    metadata = mirror.get(url + ".metadata", allow_redirects=True)
    assert metadata.status_code == 200
    assert hashlib.sha256(metadata.content).hexdigest() == core["sha256"]
    assert b"Name: beta" in metadata.content


def test_twenty_clients_one_upstream_download(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    big = upstream.add_wheel("bigpkg", "1.0", payload_size=30 * 1024 * 1024)
    page = mirror.get("/root/pypi/+simple/bigpkg/", headers=JSON).json()
    url = mirror.url + "/root/pypi/+simple/bigpkg/" + page["files"][0]["url"]
    upstream.clear_requests()

    def fetch(_: int) -> str:
        with requests.get(url, stream=True, timeout=120) as response:
            assert response.status_code == 200
            digest = hashlib.sha256()
            for chunk in response.iter_content(1024 * 1024):
                digest.update(chunk)
            return digest.hexdigest()

    with ThreadPoolExecutor(20) as pool:
        digests = list(pool.map(fetch, range(20)))
    assert digests == [big.sha256] * 20
    assert len([r for r in _file_requests(upstream) if r[0] == "GET"]) == 1


def test_wrong_upstream_hash_is_refused_and_nothing_kept(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    bad = upstream.add_wheel("evil", "1.0", wrong_hash=True)
    page = mirror.get("/root/pypi/+simple/evil/", headers=JSON).json()
    url = mirror.url + "/root/pypi/+simple/evil/" + page["files"][0]["url"]
    serial = mirror.serial()
    for _ in range(2):
        try:
            response = requests.get(url, timeout=30)
        except requests.exceptions.ChunkedEncodingError:
            continue  # an aborted transfer is the other acceptable refusal
        assert response.status_code == 502, response.status_code
        assert "sha256" in response.text
        assert hashlib.sha256(response.content).hexdigest() != bad.sha256
    assert mirror.serial() == serial
    assert len(_file_requests(upstream)) == 2, "nothing cached: each try goes upstream"
    assert list((mirror.serverdir / "tmp").iterdir()) == []


def test_killed_mid_download_never_serves_a_partial_blob(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    big = upstream.add_wheel("slowpkg", "1.0", payload_size=8 * 1024 * 1024)
    page = mirror.get("/root/pypi/+simple/slowpkg/", headers=JSON).json()
    path = "/root/pypi/+simple/slowpkg/" + page["files"][0]["url"]
    upstream.slow_bytes_per_second = 2 * 1024 * 1024
    with requests.get(mirror.url + path, stream=True, timeout=60) as response:
        assert response.status_code == 200
        next(response.iter_content(64 * 1024))
        mirror.stop(sig=9)
    assert [p for p in (mirror.serverdir / "blobs").rglob("*") if p.name == big.sha256] == []
    upstream.slow_bytes_per_second = None
    mirror.start()
    assert list((mirror.serverdir / "tmp").iterdir()) == []
    body = requests.get(mirror.url + path, timeout=60, allow_redirects=True).content
    assert hashlib.sha256(body).hexdigest() == big.sha256
    checked = _lockgate("fsck", "--serverdir", str(mirror.serverdir), env={})
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_private_names_never_reach_the_upstream(
    mirror: LockgateServer, upstream: FakeUpstream, clients: Clients, tmp_path: Path
) -> None:
    upstream.add_wheel("acme-utils", "99.0")
    mirror.create_user("acme", "acme-pw")
    mirror.create_index("acme/prod", ("acme", "acme-pw"), bases=["root/pypi"])
    private = make_wheel(tmp_path, "acme-utils", "1.0")
    upload = clients.twine_upload(f"{mirror.url}/acme/prod/", [private], "acme", "acme-pw")
    assert upload.returncode == 0, upload.stdout + upload.stderr
    upstream.clear_requests()
    page = mirror.get("/acme/prod/+simple/acme-utils/", headers=JSON).json()
    assert [f["filename"] for f in page["files"]] == ["acme_utils-1.0-py3-none-any.whl"]
    installed = clients.pip_install(
        mirror.simple_url("acme/prod"), "acme-utils", target=tmp_path / "t"
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "acme_utils-1.0" in " ".join(p.name for p in (tmp_path / "t").iterdir())
    assert upstream.requests_for("acme") == []
    # Public names still flow through the stage.
    assert mirror.get("/acme/prod/+simple/alpha/", headers=JSON).status_code == 200


def test_recalls_reach_the_mirror(mirror: LockgateServer, upstream: FakeUpstream) -> None:
    expire = {"mirror_cache_expiry": 0}
    assert mirror.request("PATCH", "/root/pypi", auth=mirror.root_auth(), json=expire).ok
    page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()
    sdist = next(f for f in page["files"] if f["filename"].endswith(".tar.gz"))
    sdist_url = "/root/pypi/+simple/alpha/" + sdist["url"]
    assert mirror.get(sdist_url, allow_redirects=True).status_code == 200  # cached now
    serial = mirror.serial()
    upstream.set_yanked("alpha", "alpha-1.1-py3-none-any.whl", "security")
    upstream.remove_file("alpha", sdist["filename"])
    page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()
    files = {f["filename"]: f for f in page["files"]}
    assert files["alpha-1.1-py3-none-any.whl"]["yanked"] == "security"
    assert sdist["filename"] not in files
    assert mirror.get(sdist_url, allow_redirects=True).status_code == 404
    assert mirror.serial() > serial, "recalls are changelog entries"
    upstream.set_status("alpha", "quarantined", "malware")
    page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()
    assert page["files"] == []
    assert page["project-status"] == {"status": "quarantined", "reason": "malware"}
    assert page["meta"]["api-version"] == "1.4"
    # Unchanged upstream pages make no new entries.
    serial = mirror.serial()
    mirror.get("/root/pypi/+simple/alpha/", headers=JSON)
    assert mirror.serial() == serial

    # The removed file's blob was kept for audit; gc removes it and nothing else.
    def blob_names() -> set[str]:
        return {p.name for p in (mirror.serverdir / "blobs").rglob("*") if p.is_file()}

    assert sdist["hashes"]["sha256"] in blob_names()
    before = blob_names()
    dry = _lockgate(
        "gc", "--serverdir", str(mirror.serverdir), "--min-age", "0", "--dry-run", env={}
    )
    assert dry.returncode == 0, dry.stderr
    assert "would remove 1 blob" in dry.stdout and blob_names() == before
    done = _lockgate("gc", "--serverdir", str(mirror.serverdir), "--min-age", "0", env={})
    assert done.returncode == 0, done.stderr
    assert blob_names() == before - {sdist["hashes"]["sha256"]}


def test_project_list_is_the_upstreams(mirror: LockgateServer, upstream: FakeUpstream) -> None:
    listing = mirror.get("/root/pypi/+simple/", headers=JSON).json()
    names = {p["name"] for p in listing["projects"]}
    assert {"alpha", "beta", "gamma"} <= names
    off = {"mirror_no_project_list": True}
    assert mirror.request("PATCH", "/root/pypi", auth=mirror.root_auth(), json=off).ok
    mirror.get("/root/pypi/+simple/alpha/")
    listing = mirror.get("/root/pypi/+simple/", headers=JSON).json()
    assert {p["name"] for p in listing["projects"]} == {"alpha"}


def test_upstream_credentials_are_never_shown(
    make_server: Callable[..., LockgateServer], upstream: FakeUpstream
) -> None:
    secret_url = upstream.url.replace("http://", "http://mirroruser:s3cr3t-token@")
    server = make_server("cred", upstream=secret_url)
    assert server.get("/root/pypi/+simple/alpha/", headers=JSON).status_code == 200
    for path in ("/", "/root", "/root/pypi"):
        assert "s3cr3t-token" not in server.get(path, headers={"Accept": "application/json"}).text
    upstream.stop()
    server.get("/root/pypi/+simple/gamma/")
    assert "s3cr3t-token" not in server.log()


def _lockgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKGATE_", "PIP_"))}
    return subprocess.run(
        [LOCKGATE, *args], capture_output=True, text=True, timeout=300, env={**base, **env}
    )


def test_refresh_command_shows_upstream_changes_at_once(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    env = {"LOCKGATE_URL": mirror.url, "LOCKGATE_PASSWORD": mirror.root_auth()[1]}
    assert mirror.get("/root/pypi/+simple/alpha/", headers=JSON).status_code == 200
    upstream.set_yanked("alpha", "alpha-1.0-py3-none-any.whl", "recalled")
    page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()
    assert all(f["yanked"] is False for f in page["files"]), "still fresh in the cache"
    result = _lockgate("mirror", "refresh", "alpha", "nosuch", env=env)
    assert result.returncode == 0, result.stderr
    assert "alpha: refreshed" in result.stdout
    assert "nosuch: not found on the upstream" in result.stdout
    page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()
    yanked = {f["filename"]: f["yanked"] for f in page["files"]}
    assert yanked["alpha-1.0-py3-none-any.whl"] == "recalled"
    denied = _lockgate("mirror", "refresh", "alpha", env={**env, "LOCKGATE_PASSWORD": "x"})
    assert denied.returncode != 0


def test_prefetch_fills_the_cache_for_target_platforms(
    mirror: LockgateServer, upstream: FakeUpstream, clients: Clients, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("beta\n")
    result = _lockgate(
        "mirror",
        "prefetch",
        "-r",
        str(requirements),
        "--python-version",
        "3.12",
        "--platform",
        "manylinux_2_28_x86_64",
        env={"LOCKGATE_URL": mirror.url},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    upstream.stop()
    offline = clients.pip_install(mirror.simple_url("root/pypi"), "beta", target=tmp_path / "t")
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert (tmp_path / "t" / "alpha").is_dir()


def test_a_client_leaving_mid_download_does_not_stop_the_caching(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    big = upstream.add_wheel("leaver", "1.0", payload_size=6 * 1024 * 1024)
    page = mirror.get("/root/pypi/+simple/leaver/", headers=JSON).json()
    url = mirror.url + "/root/pypi/+simple/leaver/" + page["files"][0]["url"]
    upstream.slow_bytes_per_second = 8 * 1024 * 1024
    with requests.get(url, stream=True, timeout=60) as response:
        next(response.iter_content(64 * 1024))
    upstream.slow_bytes_per_second = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.name == big.sha256 for p in (mirror.serverdir / "blobs").rglob("*")):
            break
        time.sleep(0.2)
    upstream.clear_requests()
    body = requests.get(url, timeout=60).content
    assert hashlib.sha256(body).hexdigest() == big.sha256
    assert _file_requests(upstream) == [], "the abandoned download still filled the cache"


def test_implausible_upstream_pages_never_replace_the_cache(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    expire = {"mirror_cache_expiry": 0}
    assert mirror.request("PATCH", "/root/pypi", auth=mirror.root_auth(), json=expire).ok
    good = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()
    serial = mirror.serial()
    # A captive portal answering every URL with its own page (CP-3).
    for file in upstream.files("alpha"):
        upstream.remove_file("alpha", file.filename)
    portal = upstream.add_wheel("wifi-login", "1.0")
    upstream.add_project("alpha", [portal])
    for _ in range(2):
        page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON)
        assert page.status_code == 200
        assert page.headers.get("X-Lockgate-Stale")
        assert page.json()["files"] == good["files"]
    # An empty page for a cached project, with no status marker, is refused too.
    upstream.remove_file("alpha", portal.filename)
    page = mirror.get("/root/pypi/+simple/alpha/", headers=JSON)
    assert page.json()["files"] == good["files"] and page.headers.get("X-Lockgate-Stale")
    assert mirror.serial() == serial
    assert "refusing implausible upstream page" in mirror.log()


def test_a_cached_file_keeps_its_identity_when_upstream_changes_it(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    first = upstream.add_wheel("shifty", "1.0", payload_size=1000)
    page = mirror.get("/root/pypi/+simple/shifty/", headers=JSON).json()
    url = mirror.url + "/root/pypi/+simple/shifty/" + page["files"][0]["url"]
    assert hashlib.sha256(requests.get(url, timeout=30).content).hexdigest() == first.sha256
    # Same filename, other bytes upstream (CP-5).
    upstream.remove_file("shifty", first.filename)
    second = upstream.add_wheel("shifty", "1.0", payload_size=1000)
    assert second.sha256 != first.sha256
    refresh = {"projects": ["shifty"]}
    assert mirror.request(
        "POST", "/root/pypi/+mirror/refresh", auth=mirror.root_auth(), json=refresh
    ).ok
    page = mirror.get("/root/pypi/+simple/shifty/", headers=JSON).json()
    assert page["files"][0]["hashes"]["sha256"] == first.sha256
    body = requests.get(
        mirror.url + "/root/pypi/+simple/shifty/" + page["files"][0]["url"], timeout=30
    )
    assert hashlib.sha256(body.content).hexdigest() == first.sha256
    alarms = mirror.get("/+status").json()["integrity_alarms"]
    assert any(first.filename in alarm for alarm in alarms)


def test_head_on_an_uncached_file_does_not_fill_the_cache(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    file = next(f for f in upstream.files("gamma"))
    page = mirror.get("/root/pypi/+simple/gamma/", headers=JSON).json()
    url = mirror.url + "/root/pypi/+simple/gamma/" + page["files"][0]["url"]
    upstream.clear_requests()
    serial = mirror.serial()
    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert head.headers.get("Content-Length") == str(file.size)
    assert _file_requests(upstream) == [] and mirror.serial() == serial


def test_an_older_upstream_view_does_not_roll_the_cache_back(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    refresh = {"projects": ["alpha"]}
    upstream.last_serial = 100
    assert mirror.get("/root/pypi/+simple/alpha/", headers=JSON).ok
    upstream.set_yanked("alpha", "alpha-1.0-py3-none-any.whl", "recalled")
    upstream.last_serial = 90  # a lagging node answers (CP-4)
    mirror.request("POST", "/root/pypi/+mirror/refresh", auth=mirror.root_auth(), json=refresh)
    files = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()["files"]
    assert all(f["yanked"] is False for f in files)
    upstream.last_serial = 101
    mirror.request("POST", "/root/pypi/+mirror/refresh", auth=mirror.root_auth(), json=refresh)
    files = mirror.get("/root/pypi/+simple/alpha/", headers=JSON).json()["files"]
    yanked = {f["filename"]: f["yanked"] for f in files}
    assert yanked["alpha-1.0-py3-none-any.whl"] == "recalled"


def test_a_broken_upstream_root_does_not_wipe_the_cache(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    for project in ("alpha", "beta", "gamma"):
        assert mirror.get(f"/root/pypi/+simple/{project}/", headers=JSON).ok
    serial = mirror.serial()
    # A wrong path (or a proxy answering 404 for everything): every project "missing".
    wrong = {"mirror_url": upstream.origin + "/wrong/simple/", "mirror_cache_expiry": 0}
    assert mirror.request("PATCH", "/root/pypi", auth=mirror.root_auth(), json=wrong).ok
    serial = mirror.serial()
    for project in ("alpha", "beta", "gamma"):
        page = mirror.get(f"/root/pypi/+simple/{project}/", headers=JSON)
        assert page.status_code == 200, page.text
        assert page.headers.get("X-Lockgate-Stale")
    assert mirror.serial() == serial, "no mirror.gone entries"
    # A real removal on a healthy upstream still reaches the mirror.
    right = {"mirror_url": upstream.url}
    assert mirror.request("PATCH", "/root/pypi", auth=mirror.root_auth(), json=right).ok
    upstream.remove_project("gamma")
    assert mirror.get("/root/pypi/+simple/gamma/", headers=JSON).status_code == 404
    assert mirror.get("/root/pypi/+simple/alpha/", headers=JSON).status_code == 200
