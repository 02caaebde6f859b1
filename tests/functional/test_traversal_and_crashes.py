"""Path traversal through URLs and names (docs/reliability.md PT-2..PT-5) and the upload crash
matrix (F-X, approximated with kill -9 at moments visible from outside), on SQLite and
PostgreSQL, against a real `lockgate serve` process.

Traversal: canary files holding a secret sit in the server directory, in `blobs/`, in
`lockgate.toml` and beside the server directory. Request targets go through a raw socket
so that no client normalises `..`, `%2f`, `\\` or `;`. Every probe must answer 400/404,
the secret (and /etc/passwd) never appears in any byte of any answer, nothing changes on
disk or in the changelog, and the upstream is never asked for any of it.

Crashes: (a) kill -9 while an upload body is being streamed into `tmp/`; (b) kill -9 right
after an upload was answered; (x) kill -9 at a sweep of moments after the whole body has
been received (validation, blob commit, DB commit, response). After each restart the NS
oracle (§0) or the stored file holds, `lockgate fsck` exits 0, a retry stores exactly one
entry, and in the end replaying the changelog into an empty database equals the live state
(INV-1, INV-2, INV-3).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import posixpath
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from lockgate import migrations
from tests.functional.test_changelog_replay import _digest, _replay, _source_url
from tests.support.dists import make_sdist, make_wheel, wheel_metadata
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import LOCKGATE, LockgateServer, server_events, tmp_entries
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

JSON_V1 = {"Accept": "application/vnd.pypi.simple.v1+json"}
ALICE = ("alice", "alice-pw")
ACME = ("acme", "acme-pw")
BOUNDARY = "lockgate-crash-boundary-5e2a"
SECRET = "LOCKGATE-CANARY-7f3b9c1e-do-not-serve"
# Any line of /etc/passwd starts with a user name and ':x:' or similar; root's is universal.
PASSWD_MARK = b"root:x:0:0"
# Fine polling for the crash moments: the kill -9 delays below are milliseconds apart.
POLL = 0.002


# ----------------------------------------------------------------------------------------------
# Raw HTTP: the request target goes out byte for byte
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    target: str
    method: str
    status: int
    data: bytes  # the whole answer: status line, headers and body

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]

    def __str__(self) -> str:
        return f"{self.method} {self.target!r} -> {self.data[:300]!r}"


def basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def raw_http(
    server: LockgateServer,
    target: str,
    method: str = "GET",
    *,
    auth: tuple[str, str] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> Raw:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if auth is not None:
        lines.append(f"Authorization: {basic(auth)}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", received)
    assert match, f"no HTTP answer to {method} {target!r}: {received[:200]!r}"
    return Raw(target, method, int(match.group(1)), received)


# ----------------------------------------------------------------------------------------------
# Uploads as twine sends them, and multipart bodies for the raw socket
# ----------------------------------------------------------------------------------------------


def twine_fields(content: bytes, name: str, version: str, filetype: str) -> dict[str, str]:
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": filetype,
        "pyversion": "py3" if filetype == "bdist_wheel" else "source",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
        "summary": "test package",
    }


def upload(
    server: LockgateServer, path: Path, name: str, index: str, auth: tuple[str, str]
) -> requests.Response:
    content = path.read_bytes()
    filetype = "bdist_wheel" if path.name.endswith(".whl") else "sdist"
    return server.request(
        "POST",
        f"/{index}/",
        auth=auth,
        data=twine_fields(content, name, "1.0", filetype),
        files={"content": (path.name, content, "application/octet-stream")},
    )


def multipart_body(content: bytes, filename: str, name: str) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in twine_fields(content, name, "1.0", "bdist_wheel").items()
    ]
    parts.append(
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
        f'name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def upload_head(index: str, length: int, auth: tuple[str, str]) -> bytes:
    return (
        f"POST /{index}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: {basic(auth)}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode("latin-1")


# ----------------------------------------------------------------------------------------------
# What the server has stored, seen from outside
# ----------------------------------------------------------------------------------------------


def listed_projects(server: LockgateServer, index: str) -> set[str]:
    response = server.get(f"/{index}/+simple/", headers=JSON_V1)
    assert response.status_code == 200, response.text
    return {project["name"] for project in response.json()["projects"]}


def file_urls(server: LockgateServer, index: str, project: str) -> dict[str, tuple[str, str]]:
    """filename -> (absolute URL path, sha256) from the project's JSON simple page."""
    page_path = f"/{index}/+simple/{project}/"
    response = server.get(page_path, headers=JSON_V1)
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, response.text
    return {
        file["filename"]: (
            posixpath.normpath(page_path + file["url"].split("#")[0]),
            file["hashes"]["sha256"],
        )
        for file in response.json()["files"]
    }


def blob_names(server: LockgateServer) -> set[str]:
    return {p.name for p in (server.serverdir / "blobs").rglob("*") if p.is_file()}


def temp_size(server: LockgateServer) -> int:
    """Bytes in the (one) temp file of an upload in flight; 0 when there is none."""
    for name in tmp_entries(server):
        with contextlib.suppress(FileNotFoundError):
            return (server.serverdir / "tmp" / name).stat().st_size
    return 0


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_sha256(server: LockgateServer, url_path: str) -> str:
    response = server.get(url_path)
    assert response.status_code == 200, (url_path, response.status_code, response.text[:200])
    return hashlib.sha256(response.content).hexdigest()


def lockgate_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, timeout=60, env=env)


def fsck(server: LockgateServer) -> str:
    """`lockgate fsck` must exit 0 (orphans and temp files are listed, not problems)."""
    result = lockgate_cli("fsck", "--serverdir", str(server.serverdir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 problem(s)" in result.stdout, result.stdout
    return result.stdout


def assert_no_server_errors(server: LockgateServer, parser_rejections: int = 0) -> None:
    """INV-5: no 5xx, no error-level event, no traceback. The only tracebacks allowed are
    aiohttp's own for request lines its parser refused with a 400 (it logs those at error
    level before any lockgate code runs); the test says how many it sent."""
    problems = [
        event
        for event in server_events(server)
        if event.get("level") in ("error", "critical") or int(event.get("status", 0)) >= 500
    ]
    assert not problems, f"server errors: {problems}"
    log = server.log()
    refused = re.findall(r"^aiohttp\.http_exceptions\.\w+: 400, message:", log, re.MULTILINE)
    assert log.count("Traceback (most recent call last)") == len(refused), log[-4000:]
    assert len(refused) == parser_rejections, log[-4000:]


# ----------------------------------------------------------------------------------------------
# PT-2, PT-3, PT-4: traversal through request targets and names
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(tmp_path / "upstream")
    fake.add_wheel("alpha", "1.0")
    fake.start()
    yield fake
    fake.close()


def plant_canaries(server: LockgateServer) -> dict[Path, bytes]:
    canary = f"{SECRET}\n".encode()
    places = [
        server.serverdir / "canary.txt",
        server.serverdir.parent / "canary-outside.txt",
        server.serverdir / "blobs" / "canary.txt",
        server.serverdir / "blobs" / "00" / "00" / "canary.txt",
        server.serverdir / "tmp" / "canary.txt",
    ]
    for path in places:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(canary)
    # The server only reads its config at startup; a comment does not change it.
    config = server.serverdir / "lockgate.toml"
    with config.open("a") as handle:
        handle.write(f"# {SECRET}\n")
    return {path: path.read_bytes() for path in [*places, config]}


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    """Every path under root with size and mtime (logs and database files excluded)."""
    ignored = re.compile(r"(-server\.log|lockgate\.sqlite(-wal|-shm|-journal)?)$")
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not ignored.search(p.name) and "upstream" not in p.parts
    }


def traversal_targets(server: LockgateServer, own: str, mirror: str) -> list[str]:
    """Request targets that must all answer 400 or 404. `own` and `mirror` are the URL
    paths of a file uploaded to alice/dev and of a file cached on root/pypi."""
    key, name = own.split("/")[4], own.split("/")[5]
    mkey, mname = mirror.split("/")[4], mirror.split("/")[5]
    origin = f"http://127.0.0.1:{server.port}"
    return [
        # PT-2, as the catalogue lists them
        "/root/pypi/+f/..%2f..%2fetc%2fpasswd",
        "/root/pypi/+f/..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/%2F%2F..%2F..%2Fetc/passwd",
        "/%2f%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/root/pypi/+f/%252e%252e/%252e%252e/canary.txt",
        f"/alice/dev/+f/{key}/%252e%252e%252f%252e%252e%252flockgate.toml",
        "/root/pypi/+f/%252e%252e%252f%252e%252e%252f%252e%252e%252fcanary.txt",
        "/root/pypi/+f/..\\..\\canary.txt",
        f"/alice/dev/+f/{key}/..\\..\\..\\..\\lockgate.toml",
        f"/alice/dev/+f/{key}/..%5c..%5c..%5c..%5ccanary.txt",
        "/..\\..\\canary-outside.txt",
        "/alice\\dev\\+f\\..\\..\\canary.txt",
        "/alice/dev/+f/;x=../../canary.txt",
        f"/alice/dev/+f/{key}/..;/..;/..;/lockgate.toml",
        f"/alice/dev/+f/{key};/../../../lockgate.toml",
        f"/alice/dev/+f/{key}/{name};/../../../../canary.txt",
        f"/alice/dev/+f/{key}/{name};.metadata",
        "/..;/..;/canary.txt",
        "/+f/../../lockgate.toml",
        "/+f/..%2f..%2flockgate.toml",
        f"/alice/dev/+f/{key}/..%2f..%2flockgate.toml",
        f"/alice/dev/+f/{key}/..%2f..%2f..%2f..%2fcanary.txt",
        f"/alice/dev/+f/{key}/..%2f..%2f..%2f..%2f..%2fcanary-outside.txt",
        f"/alice/dev/+f/{key}/..%2f..%2flockgate.toml.metadata",
        f"/alice/dev/+f/{key}/%2e%2e",
        f"/alice/dev/+f/{key}/%2e%2e/%2e%2e/lockgate.toml",
        f"/alice/dev/+f/{key}/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fcanary.txt",
        f"/alice/dev/+f/{key}/..",
        f"/alice/dev/+f/{key}/.",
        # An existing file's URL with '/../' inserted
        f"/alice/dev/+f/../{key}/{name}",
        f"/alice/dev/+f/{key}/../{name}",
        f"/alice/dev/+f/{key}/x/../{name}",
        f"/alice/dev/../dev/+f/{key}/{name}",
        f"/alice/dev/+f/{key}/{name}/../../../../lockgate.toml",
        f"/alice/dev/+f/{key}/{name}/../../../../../canary-outside.txt",
        f"/alice/dev/+f/{key}/{name}%2f..%2f..%2f..%2f..%2fcanary.txt",
        f"/alice/dev/+f/{key}/{name}/.metadata",
        f"/alice/dev/+f/{key}/{name}/",
        # The same on the mirror's file route (cached file, then a never-listed name)
        f"/root/pypi/+f/{mkey}/..%2f..%2f..%2fcanary.txt",
        f"/root/pypi/+f/{mkey}/%2e%2e%2f%2e%2e%2flockgate.toml",
        f"/root/pypi/+f/{mkey}/{mname}/../../../../lockgate.toml",
        f"/root/pypi/+f/{mkey}/../{mname}",
        f"/root/pypi/+f/{mkey}/{mname}%2f..%2f..%2fcanary.txt.metadata",
        # Absolute-form request targets
        f"{origin}/alice/dev/+f/{key}/..%2f..%2flockgate.toml",
        f"{origin}/../canary.txt",
        f"{origin}/alice/dev/+f/../../../canary.txt",
        f"{origin}/%2F%2F..%2F..%2Fetc/passwd",
        f"{origin}/root/pypi/+f/{mkey}/..%2f..%2f..%2fcanary.txt",
        "http://localhost/..%2f..%2fcanary-outside.txt",
        # PT-3: blob ids that are not 64 lowercase hex, and blobs nothing references
        "/+blobs/" + "0" * 64,
        "/+blobs/" + "A" * 64,
        "/+blobs/" + "0" * 63,
        "/+blobs/../canary.txt",
        "/+blobs/..%2f..%2fcanary.txt",
        "/alice/dev/+f/0000000000000000/canary.txt",
        "/alice/dev/+f/" + "0" * 64 + "/canary.txt",
        "/alice/dev/+f/" + "0" * 64 + "/..%2fcanary.txt",
        # More: files of the server directory by name, encodings, other handlers
        "/lockgate.toml",
        "/canary.txt",
        "/lockgate.sqlite",
        "/tmp/canary.txt",
        "//canary.txt",
        "///etc/passwd",
        "/%2e%2e/%2e%2e/canary.txt",
        "/%2e%2e",
        "/alice/%2e%2e",
        "/alice/dev/%2e%2e/%2e%2e/canary.txt",
        f"/alice/%2e%2e/+f/{key}/{name}",
        f"/alice/dev/+f/{key}/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afcanary.txt",
        f"/alice/dev/+f/{key}/%ef%bc%8e%ef%bc%8e%ef%bc%8flockgate.toml",
        f"/alice/dev/+f/{key}/%zz",
        f"/alice/dev/+f/{key}/{name}%00",
        f"/alice/dev/+f/{key}/{name}%00.txt",
        f"/alice/dev/+f/{key}/{name}%00.metadata",
        f"/root/pypi/+f/{mkey}/{mname}%00",
        "/alice/dev/+simple/example%00/",
        "/alice/dev/pypi/example%00/json",
        "/alice/dev/pypi/example/1.0%00/json",
        "/alice/dev/example%00",
        "/alice/dev/example/1.0%00",
        f"/alice/dev/+f/{key}/{name}%0d%0aX-Injected:%201",
        "/alice/dev/+simple/..%2f..%2fcanary.txt/",
        "/alice/dev/+simple/example/../../../../canary.txt",
        "/root/pypi/+simple/..%2f..%2fetc%2fpasswd/",
        "/root/pypi/+simple/%2e%2e/",
        "/alice/dev/pypi/..%2f..%2fcanary.txt/json",
        "/alice/dev/pypi/example/..%2f..%2f..%2flockgate.toml/json",
        "/+status/../canary.txt",
        "/%00/x",
    ]


# Paths shaped like the release route: a GET from a script is a 404 pointing to the JSON
# API (user 'blobs' is never looked up; a browser gets the release page, which looks the
# index up and finds none), and reads nothing.
RELEASE_SHAPED = ["/blobs/00/00/canary.txt", "/blobs/00/00/" + "0" * 64, "/tmp/x/y/canary.txt"]

# PT-3: blob ids (one path segment) that are not 64 lowercase hex.
BAD_BLOB_IDS = [
    "A" * 64,
    "0" * 63,
    "0" * 65,
    "g" * 64,
    "%2e%2e",
    "..%2f..%2fcanary.txt",
    "..%2f..%2f" + "0" * 54,
    "0" * 63 + "%00",
    "canary.txt",
]

# Request lines aiohttp's parser refuses before lockgate sees them (400, logged by aiohttp).
MALFORMED_TARGETS = ["*", "../../canary.txt", "..%2f..%2fcanary.txt"]

# PT-4: names the user/index patterns can never match; any method gets a 400 naming them.
# ('+status', '+changelog' and '+blobs' are routes of their own, probed above.)
INVALID_NAMES = [
    "..",
    "%2e%2e",
    ".",
    ".hidden",
    "-x",
    "a%2Fb",
    "..%2f..%2fcanary.txt",
    "a:b",
    "~a",
    "a\\b",
    "+simple",
    "+f",
    "+x",
    "a%00b",
    "%C3%A9",
]


def check_refused(answer: Raw, allowed: tuple[int, ...] = (400, 404)) -> None:
    assert answer.status in allowed, str(answer)
    assert SECRET.encode() not in answer.data, str(answer)
    assert PASSWD_MARK not in answer.data, str(answer)


def test_pt2_pt3_pt4_traversal_never_escapes_the_blob_store(
    make_server: Callable[..., LockgateServer], upstream: FakeUpstream, tmp_path: Path
) -> None:
    server = make_server(upstream=upstream.url)
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    wheel = make_wheel(tmp_path / "dists", "example", "1.0")
    assert upload(server, wheel, "example", "alice/dev", ALICE).status_code == 200
    own = file_urls(server, "alice/dev", "example")[wheel.name][0]
    cached = next(iter(file_urls(server, "root/pypi", "alpha").values()))[0]
    answers: list[Raw] = []

    # Positive controls: the same raw client gets the real files (the probes are meaningful).
    for path, expected in [(own, wheel.read_bytes()), (cached, None)]:
        answer = raw_http(server, path)
        answers.append(answer)
        assert answer.status == 200, str(answer)
        assert expected is None or answer.body == expected
    # Absolute form naming another host: served from this server's own store, never proxied.
    foreign = raw_http(server, "http://upstream.invalid" + own)
    answers.append(foreign)
    served_locally = foreign.status == 200 and foreign.body == wheel.read_bytes()
    assert served_locally or foreign.status in (400, 404), str(foreign)

    # The mirror answers a download once the verified bytes are on disk and records the
    # file's entry just after (docs/reliability.md MC-1): let that entry land first.
    serial = server.serial()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if server.serial() == serial:
            break
        serial = server.serial()
    planted = plant_canaries(server)
    before = snapshot(tmp_path)
    upstream.clear_requests()

    for target in traversal_targets(server, own, cached):
        for method in ("GET", "HEAD"):
            # Anonymous (401 where a route needs credentials) and as root, who may read
            # every index and blob: neither gets out of the blob store.
            answer = raw_http(server, target, method)
            answers.append(answer)
            check_refused(answer, (400, 401, 404))
            answer = raw_http(server, target, method, auth=server.root_auth())
            answers.append(answer)
            check_refused(answer)
        # Deleting through a traversal as the owner or root deletes nothing.
        for auth in (ALICE, server.root_auth()):
            answer = raw_http(server, target, "DELETE", auth=auth)
            answers.append(answer)
            # 405: the path names a read-only resource (a simple page, say).
            check_refused(answer, (400, 403, 404, 405))

    for target in RELEASE_SHAPED:
        for method in ("GET", "HEAD"):
            answer = raw_http(server, target, method)
            answers.append(answer)
            check_refused(answer, (404,))

    for target in MALFORMED_TARGETS:
        answer = raw_http(server, target)
        answers.append(answer)
        check_refused(answer, (400,))

    # PT-3: as root, a blob id that is not 64 lowercase hex is a 400, an unknown one a 404.
    for blob_id in BAD_BLOB_IDS:
        answer = raw_http(server, f"/+blobs/{blob_id}", auth=server.root_auth())
        answers.append(answer)
        check_refused(answer, (400,))
    answer = raw_http(server, "/+blobs/" + "0" * 64, auth=server.root_auth())
    answers.append(answer)
    check_refused(answer, (404,))

    # PT-4: every method on a path with an invalid user or index name is a 400 naming it.
    root = server.root_auth()
    for name in INVALID_NAMES:
        for path, kind, auth, body in [
            (f"/{name}", "user", root, b'{"password": "pw"}'),
            (f"/alice/{name}", "index", ALICE, b"{}"),
            (f"/{name}/dev", "user", root, b"{}"),
        ]:
            for method in ("GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"):
                answer = raw_http(
                    server, path, method, auth=auth, body=body, content_type="application/json"
                )
                answers.append(answer)
                if method == "PUT" and path.endswith("/dev"):
                    # Creating an index under a user that cannot exist: the index
                    # handler may answer that the user does not exist instead.
                    check_refused(answer, (400, 404))
                    phrases = [f"invalid {kind} name", "does not exist"]
                else:
                    check_refused(answer, (400,))
                    phrases = [f"invalid {kind} name"]
                if method != "HEAD":
                    assert any(p.encode() in answer.body for p in phrases), str(answer)

    # Nothing anywhere mentions the secret or /etc/passwd, nothing was changed or created.
    leaked = [str(a) for a in answers if SECRET.encode() in a.data or PASSWD_MARK in a.data]
    assert leaked == []
    assert SECRET not in server.log()
    assert {path: path.read_bytes() for path in planted} == planted
    assert snapshot(tmp_path) == before
    assert server.serial() == serial
    assert listed_projects(server, "alice/dev") == {"example"}
    assert set(server.get("/").json()["result"]) == {"root", "alice"}
    # The upstream was never asked for any of it.
    tokens = ("..", "%2e", "%2f", "canary", "passwd", "lockgate.toml", "\\", ";")
    assert [p for _, p in upstream.requests if any(t in p.lower() for t in tokens)] == []
    # The real files are still served, unchanged.
    assert download_sha256(server, own) == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert_no_server_errors(server, parser_rejections=len(MALFORMED_TARGETS))


# ----------------------------------------------------------------------------------------------
# PT-5: deleting a name deletes nothing of a longer name sharing its prefix
# ----------------------------------------------------------------------------------------------


def index_state(server: LockgateServer, index: str) -> dict[str, Any]:
    return {
        "projects": listed_projects(server, index),
        "example": file_urls(server, index, "example"),
    }


def test_pt5_deleting_a_prefix_name_leaves_the_longer_name_intact(
    server: LockgateServer, tmp_path: Path
) -> None:
    server.create_user(*ALICE)
    server.create_user(*ACME)
    server.create_index("alice/dev", ALICE)
    for name in ("prod", "pro"):
        server.create_index(f"acme/{name}", ACME)
    dists = tmp_path / "dists"
    example = [make_wheel(dists, "example", "1.0"), make_sdist(dists, "example", "1.0")]
    examp = make_wheel(dists, "examp", "1.0")
    for index, auth in [("alice/dev", ALICE), ("acme/prod", ACME), ("acme/pro", ACME)]:
        for path in example:
            assert upload(server, path, "example", index, auth).status_code == 200
        if index != "acme/prod":
            assert upload(server, examp, "examp", index, auth).status_code == 200
    kept = {index: index_state(server, index) for index in ("alice/dev", "acme/prod")}
    assert kept["alice/dev"]["projects"] == {"example", "examp"}
    assert kept["acme/prod"]["projects"] == {"example"}
    assert listed_projects(server, "acme/pro") == {"example", "examp"}
    assert set(kept["acme/prod"]["example"]) == {p.name for p in example}
    example_blobs = {sha256 for state in kept.values() for _, sha256 in state["example"].values()}
    examp_blob = hashlib.sha256(examp.read_bytes()).hexdigest()
    assert example_blobs | {examp_blob} <= blob_names(server)
    serial = server.serial()

    response = server.request("DELETE", "/alice/dev/examp", auth=ALICE)
    assert response.status_code == 200, response.text
    response = server.request("DELETE", "/acme/pro", auth=ACME)
    assert response.status_code == 200, response.text
    # Exactly one changelog entry each, nothing else moved.
    assert server.serial() == serial + 2

    def check_example_intact() -> None:
        assert listed_projects(server, "alice/dev") == {"example"}
        assert index_state(server, "alice/dev")["example"] == kept["alice/dev"]["example"]
        assert index_state(server, "acme/prod") == kept["acme/prod"]
        assert server.get("/acme/pro/+simple/").status_code == 404
        assert server.get("/alice/dev/+simple/examp/").status_code == 404
        for state in kept.values():
            for url, sha256 in state["example"].values():
                assert download_sha256(server, url) == sha256

    check_example_intact()
    assert set(server.get("/acme").json()["result"]["indexes"]) == {"prod"}

    # gc removes what only the deleted names referenced, and none of example's blobs.
    server.stop()
    collected = lockgate_cli("gc", "--serverdir", str(server.serverdir), "--min-age", "0")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    server.start()
    assert example_blobs <= blob_names(server)
    assert examp_blob not in blob_names(server)
    check_example_intact()
    assert server.serial() == serial + 2
    fsck(server)
    assert_no_server_errors(server)


# ----------------------------------------------------------------------------------------------
# F-X: kill -9 around an upload
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Before:
    serial: int
    blobs: set[str]
    projects: set[str]


def observe(server: LockgateServer) -> Before:
    return Before(server.serial(), blob_names(server), listed_projects(server, "alice/dev"))


def assert_nothing_stored(server: LockgateServer, before: Before, what: str) -> None:
    """NS after a restart: no entry, no row, no blob, no temp file."""
    after = observe(server)
    assert after.serial == before.serial, f"{what}: serial {before.serial}->{after.serial}"
    assert after.projects == before.projects, f"{what}: {after.projects - before.projects}"
    assert after.blobs == before.blobs, f"{what}: new blobs {after.blobs - before.blobs}"
    assert tmp_entries(server) == [], f"{what}: temp files {tmp_entries(server)}"


def assert_stored_once(
    server: LockgateServer, before: Before, wheel: Path, project: str, what: str
) -> None:
    """The file is listed, served with its bytes, referenced by exactly one new entry."""
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert server.serial() == before.serial + 1, what
    assert listed_projects(server, "alice/dev") == before.projects | {project}, what
    url, listed_sha256 = file_urls(server, "alice/dev", project)[wheel.name]
    assert listed_sha256 == sha256, what
    assert download_sha256(server, url) == sha256, what
    assert tmp_entries(server) == [], what


def test_fx_upload_crash_matrix_kill9_then_state_equals_replay(
    server: LockgateServer, tmp_path: Path, make_db_url: Callable[[], str | None]
) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    dists = tmp_path / "dists"
    seed = make_wheel(dists / "seed", "seed", "1.0")
    assert upload(server, seed, "seed", "alice/dev", ALICE).status_code == 200

    # (a) Killed while the body streams into tmp/: the body arrives slowly, the process dies
    # with a temp file half written.
    big = make_wheel(dists / "big", "big", "1.0", payload_size=4 * 1024 * 1024)
    content = big.read_bytes()
    body = multipart_body(content, big.name, "big")
    before = observe(server)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.sendall(upload_head("alice/dev", len(body), ALICE))
        first = body.index(b'name="content"') + 512 * 1024
        sock.sendall(body[:first])
        wait_until(lambda: tmp_entries(server) != [], "the upload's temp file", interval=POLL)
        temp = server.serverdir / "tmp" / tmp_entries(server)[0]
        wait_until(lambda: temp.stat().st_size > 0, "bytes in the temp file", interval=POLL)
        sock.sendall(body[first : first + 64 * 1024])  # still streaming when it dies
        server.stop(sig=signal.SIGKILL)
    finally:
        sock.close()
    assert temp.exists() and 0 < temp.stat().st_size < len(content)
    # Offline, fsck accepts the leftover temp file and lists it (not a problem).
    assert f"temp file {temp.name}" in fsck(server)
    server.start()
    assert_nothing_stored(server, before, "killed mid-body")
    fsck(server)
    response = upload(server, big, "big", "alice/dev", ALICE)
    assert response.status_code == 200, response.text
    assert_stored_once(server, before, big, "big", "retry after kill mid-body")

    # (b) Killed right after the answer: what was answered 200 survives.
    after_answer = make_wheel(dists / "answered", "answered", "1.0", payload_size=256 * 1024)
    before = observe(server)
    response = upload(server, after_answer, "answered", "alice/dev", ALICE)
    assert response.status_code == 200, response.text
    server.stop(sig=signal.SIGKILL)
    server.start()
    assert_stored_once(server, before, after_answer, "answered", "killed after the answer")
    again = upload(server, after_answer, "answered", "alice/dev", ALICE)
    assert again.status_code == 200, again.text
    assert again.headers["X-Lockgate-Serial"] == str(before.serial + 1)
    assert_stored_once(server, before, after_answer, "answered", "identical retry")
    fsck(server)

    # (x) Killed once the whole body is in: the body minus its closing boundary is sent and
    # written to tmp/, then the rest, then kill -9 after a sweep of delays that lands in
    # validation, blob commit, DB commit or the answer. Either NS (an orphan blob is
    # allowed, fsck lists it) or the file is stored once; a retry leaves exactly one entry.
    outcomes = []
    for step, delay in enumerate((0.0, 0.003, 0.01, 0.015, 0.02, 0.03, 0.1, 0.3)):
        project = f"sweep{step}"
        wheel = make_wheel(dists / project, project, "1.0", payload_size=1024 * 1024)
        content = wheel.read_bytes()
        body = multipart_body(content, wheel.name, project)
        tail = len(f"\r\n--{BOUNDARY}--\r\n")
        before = observe(server)
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        try:
            sock.sendall(upload_head("alice/dev", len(body), ALICE) + body[:-tail])
            nearly_all = len(content) - 256 * 1024  # aiohttp holds back the last chunk
            wait_until(
                lambda: temp_size(server) >= nearly_all,  # noqa: B023
                "the body in tmp/",
                interval=POLL,
            )
            sock.sendall(body[-tail:])
            time.sleep(delay)
            server.stop(sig=signal.SIGKILL)
        finally:
            sock.close()
        server.start()
        stored = project in listed_projects(server, "alice/dev")
        orphans: set[str] = set()
        if stored:
            assert_stored_once(server, before, wheel, project, f"kill after {delay}s")
        else:
            after = observe(server)
            assert after.serial == before.serial and after.projects == before.projects
            assert tmp_entries(server) == []
            # At most the file's blob and its metadata blob are left, unreferenced,
            # and fsck lists them as orphans.
            orphans = after.blobs - before.blobs
            allowed = {hashlib.sha256(content).hexdigest(), sha256_of(wheel_metadata(wheel))}
            assert orphans <= allowed, orphans
        report = fsck(server)
        assert all(f"orphan blob {orphan}" in report for orphan in orphans), report
        outcomes.append((delay, "stored" if stored else f"nothing, {len(orphans)} orphan(s)"))
        response = upload(server, wheel, project, "alice/dev", ALICE)
        assert response.status_code == 200, response.text
        assert_stored_once(server, before, wheel, project, f"retry after kill at {delay}s")
    print("kill sweep outcomes:", outcomes)
    assert_no_server_errors(server)

    # (c) INV-1/INV-3: the changelog replayed into an empty database is the live state.
    live_serial = server.serial()
    server.stop()
    fsck(server)
    target = make_db_url() or f"sqlite:///{tmp_path / 'replayed.sqlite'}"
    migrations.upgrade(target)
    serials = asyncio.run(_replay(_source_url(server), target))
    assert serials == list(range(1, live_serial + 1))
    live, replayed = asyncio.run(_digest(_source_url(server))), asyncio.run(_digest(target))
    assert {row[1] for row in live["files"]} >= {seed.name, big.name, after_answer.name}
    assert replayed == live
