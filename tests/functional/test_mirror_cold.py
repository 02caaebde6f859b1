"""The mirror's cold path (docs/reliability.md MC-1..MC-7): an upstream without
PEP 658 metadata (an internal mirror, a static tree), wheels lockgate has not
cached yet, real uv and pip, and the exact requests lockgate sends upstream."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from sqlalchemy import select

from lockgate.changelog.codec import SYSTEM
from lockgate.changelog.writer import record_alone, utcnow_iso
from lockgate.mirror.entries import MirrorMetadata
from lockgate.mirror.models import MirrorCachedFile
from tests.support.dists import make_wheel, wheel_metadata
from tests.support.fake_upstream import FakeUpstream, UpstreamFile
from tests.support.inprocess import bootstrap
from tests.support.server import Clients, LockgateServer, server_events, tmp_entries

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
FAST_MIRROR = {"mirror_timeout": 5, "mirror_offline_retry": 1, "mirror_cache_expiry": 3600}
BIG = 300 * 1024  # beyond the 64 KiB tail: METADATA is read by two range requests
WAIT = 60.0


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(tmp_path / "upstream")
    fake.metadata = False  # no PEP 658 anywhere, as on an internal mirror
    fake.add_wheel("app", "1.0", requires_dist=["libbig>=1", "libsmall"])
    fake.add_wheel("libbig", "1.0", payload_size=BIG)
    fake.add_wheel("libsmall", "2.0")
    fake.add_sdist("libsmall", "2.0")
    fake.start()
    yield fake
    fake.close()


@pytest.fixture
def mirror(make_server: Callable[..., LockgateServer], upstream: FakeUpstream) -> LockgateServer:
    server = make_server(upstream=upstream.url)
    response = server.request("PATCH", "/root/pypi", auth=server.root_auth(), json=FAST_MIRROR)
    assert response.status_code == 200, response.text
    return server


def _assert_clean_log(server: LockgateServer) -> None:
    """No 5xx, no error-level event and no traceback in the server's log (INV-5)."""
    problems = [
        event
        for event in server_events(server)
        if event.get("level") in ("error", "critical") or int(event.get("status", 0)) >= 500
    ]
    assert not problems, f"server errors: {problems}"
    assert "Traceback" not in server.log()
    assert "unhandled error" not in server.log()


def _file(upstream: FakeUpstream, project: str, filename: str) -> UpstreamFile:
    return next(f for f in upstream.files(project) if f.filename == filename)


def _page(server: LockgateServer, project: str) -> dict[str, dict[str, Any]]:
    answer = server.get(f"/root/pypi/+simple/{project}/", headers=JSON)
    assert answer.status_code == 200, answer.text
    return {f["filename"]: f for f in answer.json()["files"]}


def _file_url(server: LockgateServer, project: str, filename: str) -> str:
    entry = _page(server, project)[filename]
    return f"{server.url}/root/pypi/+simple/{project}/{entry['url']}"


def _wait_advertised(server: LockgateServer, project: str, filename: str, metadata: bytes) -> None:
    """Until the page advertises `.metadata` by this hash: clients get the bytes as soon
    as they are durable, and the entry that advertises them commits right after."""
    expected = {"sha256": hashlib.sha256(metadata).hexdigest()}
    deadline = time.monotonic() + WAIT
    while (core := _page(server, project)[filename]["core-metadata"]) != expected:
        assert time.monotonic() < deadline, f"advertised {core}, not {expected}"
        time.sleep(0.2)


def _wait_cached(server: LockgateServer, sha256: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if any(p.name == sha256 for p in (server.serverdir / "blobs").rglob("*")):
            return
        time.sleep(0.2)
    raise AssertionError(f"{sha256} was never cached")


def test_uv_cold_install_reads_synthesized_metadata(
    mirror: LockgateServer, upstream: FakeUpstream, clients: Clients, tmp_path: Path
) -> None:
    """MC-1, MC-5: every wheel is advertised with metadata although the upstream has
    none; uv installs through a cold mirror with no 500 and no error in the log, each
    wheel crosses from the upstream at most once in full, and `.metadata` is exactly
    the wheel's METADATA, advertised by its hash once made."""
    wheels = {
        "app": "app-1.0-py3-none-any.whl",
        "libbig": "libbig-1.0-py3-none-any.whl",
        "libsmall": "libsmall-2.0-py3-none-any.whl",
    }
    # Before anything is cached: `true` (no hash known yet) for wheels, nothing for sdists.
    small = _page(mirror, "libsmall")
    assert small[wheels["libsmall"]]["core-metadata"] is True
    assert small["libsmall-2.0.tar.gz"]["core-metadata"] is False
    html = mirror.get("/root/pypi/+simple/libsmall/").text
    assert 'data-core-metadata="true"' in html and 'data-dist-info-metadata="true"' in html

    result = clients.uv_install(mirror.simple_url("root/pypi"), "app", target=tmp_path / "t")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "t" / "libbig").is_dir() and (tmp_path / "t" / "libsmall").is_dir()
    _assert_clean_log(mirror)

    for project, filename in wheels.items():
        assert len(upstream.full_file_requests(filename)) <= 1, upstream.ranged_requests
        assert upstream.requests_for(filename + ".metadata") == [], "the upstream has none"
        expected = wheel_metadata(_file(upstream, project, filename).path)
        url = _file_url(mirror, project, filename)
        metadata = requests.get(url + ".metadata", timeout=WAIT)
        assert metadata.status_code == 200, metadata.text
        assert metadata.content == expected
        _wait_advertised(mirror, project, filename, expected)
    # The big wheel's METADATA came from range requests, not from a whole download.
    big_ranges = [r for r in upstream.ranged_requests if r[1].endswith(wheels["libbig"]) and r[2]]
    assert big_ranges, upstream.ranged_requests

    # pip, which checks the advertised hash, installs the same from the warm cache.
    upstream.clear_requests()
    warm = clients.pip_install(mirror.simple_url("root/pypi"), "app", target=tmp_path / "p")
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert [r for r in upstream.requests if r[1].startswith("/files/")] == []
    _assert_clean_log(mirror)


@pytest.mark.parametrize("ranges", [True, False])
def test_pip_cold_install_without_upstream_metadata(
    mirror: LockgateServer, upstream: FakeUpstream, clients: Clients, tmp_path: Path, ranges: bool
) -> None:
    """MC-5 with pip (which verifies a known hash, and takes `true` without one), on an
    upstream with and without range support (MC-3's fallback: the download itself)."""
    upstream.ranges = ranges
    result = clients.pip_install(mirror.simple_url("root/pypi"), "app", target=tmp_path / "t")
    assert result.returncode == 0, result.stdout + result.stderr
    # At most once in full: a wheel smaller than the first range read (64 KiB) arrives
    # whole in that answer and is verified and cached from it.
    assert len(upstream.full_file_requests("libbig-1.0-py3-none-any.whl")) == 1
    assert len(upstream.full_file_requests("libsmall-2.0-py3-none-any.whl")) <= 1
    _assert_clean_log(mirror)


def test_range_on_an_uncached_file(mirror: LockgateServer, upstream: FakeUpstream) -> None:
    """MC-3: a Range request for a file not cached yet gets 206 with the right bytes,
    from the upstream's range support or, without it, from the download."""
    big = _file(upstream, "libbig", "libbig-1.0-py3-none-any.whl")
    data = big.path.read_bytes()
    url = _file_url(mirror, "libbig", big.filename)

    head = requests.head(url, timeout=WAIT)
    assert head.status_code == 200 and head.headers["Accept-Ranges"] == "bytes"
    assert int(head.headers["Content-Length"]) == big.size

    tail = requests.get(url, headers={"Range": "bytes=-16384"}, timeout=WAIT)
    assert tail.status_code == 206, tail.text
    assert tail.content == data[-16384:]
    assert tail.headers["Content-Range"] == f"bytes {big.size - 16384}-{big.size - 1}/{big.size}"
    middle = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=WAIT)
    assert middle.status_code == 206 and middle.content == data[100:200]
    beyond = requests.get(url, headers={"Range": f"bytes={big.size}-"}, timeout=WAIT)
    assert beyond.status_code == 416
    assert upstream.full_file_requests(big.filename) == []

    # Without range support upstream: the answer comes from the one download.
    upstream.ranges = False
    other = upstream.add_wheel("libother", "1.0", payload_size=BIG)
    url = _file_url(mirror, "libother", other.filename)
    data = other.path.read_bytes()
    for header, expected in (("bytes=-1000", data[-1000:]), ("bytes=5-9", data[5:10])):
        answer = requests.get(url, headers={"Range": header}, timeout=WAIT)
        assert answer.status_code == 206, answer.text
        assert answer.content == expected
    _wait_cached(mirror, other.sha256)
    assert len(upstream.full_file_requests(other.filename)) == 1
    whole = requests.get(url, timeout=WAIT)
    assert hashlib.sha256(whole.content).hexdigest() == other.sha256
    assert len(upstream.full_file_requests(other.filename)) == 1
    _assert_clean_log(mirror)


def test_a_client_hanging_up_is_no_error_and_the_cache_fills(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    """MC-2: uv reads what it needs and hangs up; lockgate logs that as ordinary,
    answers no 500, and the download still leaves a complete, verified file."""
    leaver = upstream.add_wheel("leaver", "1.0", payload_size=4 * 1024 * 1024)
    url = _file_url(mirror, "leaver", leaver.filename)
    upstream.slow_bytes_per_second = 2 * 1024 * 1024
    path = urllib3.util.parse_url(url).path  # without the page's `../..`
    host, port = mirror.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        received = 0
        while received < 256 * 1024:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection first"
            received += len(chunk)
        # A reset, as a client that drops the connection sends.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    upstream.slow_bytes_per_second = None
    _wait_cached(mirror, leaver.sha256)
    upstream.clear_requests()
    body = requests.get(url, timeout=WAIT).content
    assert hashlib.sha256(body).hexdigest() == leaver.sha256
    assert upstream.requests_for("/files/") == []
    deadline = time.monotonic() + WAIT
    while "client disconnected" not in mirror.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "client disconnected" in mirror.log()
    _assert_clean_log(mirror)
    assert tmp_entries(mirror) == []


def test_a_dead_upstream_mid_range_gives_a_clear_502(
    mirror: LockgateServer, upstream: FakeUpstream
) -> None:
    """MC-4: an upstream that drops the connection mid-answer gives a 502 saying so,
    for a Range request and for `.metadata`; nothing half-written stays behind."""
    big = _file(upstream, "libbig", "libbig-1.0-py3-none-any.whl")
    url = _file_url(mirror, "libbig", big.filename)
    upstream.truncate_files_at = 1000
    answer = requests.get(url, headers={"Range": "bytes=0-99999"}, timeout=WAIT)
    assert answer.status_code == 502, answer.text
    assert "upstream" in answer.text and big.filename in answer.text
    time.sleep(1.5)  # the circuit breaker's retry delay (FAST_MIRROR)
    metadata = requests.get(url + ".metadata", timeout=WAIT)
    assert metadata.status_code in (502, 504), metadata.text
    assert big.filename in metadata.text
    assert tmp_entries(mirror) == []
    blobs = {p.name for p in (mirror.serverdir / "blobs").rglob("*") if p.is_file()}
    assert big.sha256 not in blobs
    page = _page(mirror, "libbig")[big.filename]
    assert page["core-metadata"] is True, "a failed attempt is not a missing METADATA"

    # The upstream recovers: the same requests succeed.
    upstream.truncate_files_at = None
    time.sleep(1.5)
    metadata = requests.get(url + ".metadata", timeout=WAIT)
    assert metadata.status_code == 200, metadata.text
    assert metadata.content == wheel_metadata(big.path)


def _rewrite_wheel(path: Path, keep: Callable[[str], bool], extra: dict[str, bytes]) -> None:
    """Rewrite a wheel keeping only the members `keep` accepts, plus `extra` ones."""
    with zipfile.ZipFile(path) as source:
        members = [(i, source.read(i)) for i in source.infolist() if keep(i.filename)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            target.writestr(info, data)
        for name, data in extra.items():
            target.writestr(name, data)


def test_a_wheel_without_readable_metadata_is_not_advertised(
    mirror: LockgateServer, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """MC-6: a wheel with no METADATA, or two, gets a clear 404 for `.metadata`, and its
    page then advertises none (so resolvers fall back to the wheel); replays agree."""
    broken = tmp_path / "broken"
    none = make_wheel(broken, "nometa", "1.0")
    _rewrite_wheel(none, lambda name: not name.endswith("/METADATA"), {})
    two = make_wheel(broken, "twometa", "1.0")
    _rewrite_wheel(two, lambda name: True, {"other-1.0.dist-info/METADATA": b"Name: other\n"})
    for name, path in (("nometa", none), ("twometa", two)):
        upstream.add_project(name, [UpstreamFile.from_path(path)])
        url = _file_url(mirror, name, path.name)
        assert _page(mirror, name)[path.name]["core-metadata"] is True
        answer = requests.get(url + ".metadata", timeout=WAIT)
        assert answer.status_code == 404, answer.text
        assert "no readable METADATA" in answer.text
        assert _page(mirror, name)[path.name]["core-metadata"] is False
        html = mirror.get(f"/root/pypi/+simple/{name}/").text
        assert "data-core-metadata" not in html
        again = requests.get(url + ".metadata", timeout=WAIT)
        assert again.status_code == 404
    _assert_clean_log(mirror)


def test_synthesized_metadata_has_one_hash_on_primary_and_replica(
    make_server: Callable[..., LockgateServer], upstream: FakeUpstream
) -> None:
    """MC-7: the replica advertises and serves the very `.metadata` the primary made."""
    primary = make_server("primary", upstream=upstream.url)
    assert primary.request("PATCH", "/root/pypi", auth=primary.root_auth(), json=FAST_MIRROR).ok
    token = primary.request(
        "POST",
        "/root/+tokens",
        auth=primary.root_auth(),
        json={"name": "replica", "scopes": ["replicate"]},
    ).json()["result"]["token"]
    replica = make_server("replica", primary=primary.url, primary_token=token)
    deadline = time.monotonic() + WAIT
    while replica.serial() < primary.serial():
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.3)
    big = _file(upstream, "libbig", "libbig-1.0-py3-none-any.whl")
    entry = _page(replica, "libbig")[big.filename]
    assert entry["core-metadata"] is True
    url = f"{replica.url}/root/pypi/+simple/libbig/{entry['url']}.metadata"
    answer = requests.get(url, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    assert answer.content == wheel_metadata(big.path)
    _wait_advertised(primary, "libbig", big.filename, answer.content)
    _wait_advertised(replica, "libbig", big.filename, answer.content)
    assert len(upstream.full_file_requests(big.filename)) == 0
    _assert_clean_log(primary)
    _assert_clean_log(replica)


def test_group_commit_shares_commits_and_isolates_a_failing_entry(
    make_db_url: Callable[[], str | None], tmp_path: Path
) -> None:
    """MC-8: `record_alone()` entries queued while a write commits share the next
    transaction (fewer commits than entries), keep gapless serials in call order, and
    an entry that fails fails alone; on SQLite and PostgreSQL."""
    url = make_db_url() or f"sqlite:///{tmp_path / 'group.sqlite'}"

    async def scenario() -> None:
        db = await bootstrap(url)
        commits = 0
        original = db.write

        @contextlib.asynccontextmanager
        async def counting_write() -> AsyncIterator[Any]:
            nonlocal commits
            async with original() as session:
                yield session
            commits += 1

        db.write = counting_write  # type: ignore[method-assign]
        start = db.serial

        def entry(index: str, number: int) -> MirrorMetadata:
            user, name = index.split("/")
            return MirrorMetadata(
                user=user,
                index=name,
                filename=f"pkg{number}-1.0-py3-none-any.whl",
                sha256=f"{number:064x}",
                cached_at=utcnow_iso(),
            )

        together = await asyncio.gather(
            *(record_alone(db, entry("root/pypi", n), SYSTEM) for n in range(20))
        )
        assert together == list(range(start + 1, start + 21))
        assert commits < 20, f"{commits} commits for 20 entries"

        payloads = [entry("root/pypi", n) for n in range(20, 30)]
        payloads[7] = entry("nobody/missing", 27)  # its index does not exist
        outcomes = await asyncio.gather(
            *(record_alone(db, payload, SYSTEM) for payload in payloads), return_exceptions=True
        )
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(failed) == 1 and outcomes[7] is failed[0]
        assert [o for o in outcomes if isinstance(o, int)] == list(range(start + 21, start + 30))
        async with db.read() as session:
            rows = (await session.execute(select(MirrorCachedFile.filename))).scalars().all()
        assert len(rows) == 29 and "pkg27-1.0-py3-none-any.whl" not in rows
        await db.dispose()

    asyncio.run(scenario())
