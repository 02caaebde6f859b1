"""Every bad upload gets a clear 4xx and leaves nothing behind (docs/reliability.md §0 "NS").

End to end against a real `lockgate serve` process, on SQLite and PostgreSQL. Each refusal
is checked twice:

* the answer: the status, and a key phrase of the message both in the body and in the HTTP
  reason phrase (docs/standards.md R4.4: twine and poetry show either);
* nothing stored: the serial is unchanged, no file appeared under `blobs/`, `tmp/` is empty
  once the request has ended, and the index's simple page lists no new project.

Bodies are built the way twine sends them (`requests` with `data=` and `files=`); malformed
multipart, cut-off bodies and verbatim URL paths go through a raw socket. At the end of
every test the server log must hold no 5xx and no unhandled error (INV-5).
"""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import struct
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.dists import make_sdist, make_wheel
from tests.support.server import Clients, LockgateServer, server_events, tmp_entries
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
BOUNDARY = "lockgate-test-boundary-7d1c"

# Messages (key phrases) the tests hold the server to.
NON_PRINTABLE = "Cannot upload a file with non-printable characters (ordinals 0-31)"
SLASH = "Cannot upload a file with '/' or '\\' in the name."
BAD_AUTH = "Invalid or non-existent authentication information"
INVALID_DIST = "Invalid distribution file."


# ----------------------------------------------------------------------------------------------
# What the server stores, and the "nothing stored" oracle
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    serial: int
    blobs: frozenset[str]
    projects: frozenset[str]


def blob_files(server: LockgateServer) -> frozenset[str]:
    root = server.serverdir / "blobs"
    return frozenset(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def listed_projects(server: LockgateServer, index: str) -> frozenset[str]:
    response = server.get(f"/{index}/+simple/", headers={"Accept": JSON_V1})
    assert response.status_code == 200, response.text
    return frozenset(project["name"] for project in response.json()["projects"])


def stored(server: LockgateServer, index: str = "alice/dev") -> Stored:
    return Stored(server.serial(), blob_files(server), listed_projects(server, index))


def assert_nothing_stored(
    server: LockgateServer, before: Stored, index: str = "alice/dev", what: str = ""
) -> None:
    after = stored(server, index)
    assert after.serial == before.serial, f"{what}: serial moved {before.serial}->{after.serial}"
    assert after.blobs == before.blobs, f"{what}: new blobs {sorted(after.blobs - before.blobs)}"
    assert tmp_entries(server) == [], f"{what}: temp files left: {tmp_entries(server)}"
    assert after.projects == before.projects, (
        f"{what}: projects listed {sorted(after.projects - before.projects)}"
    )


def assert_refused(
    status: int, reason: str, body: str, expected: int, phrase: str, what: str = ""
) -> None:
    shown = f"{what}: got {status} {reason!r} {body[:300]!r}"
    assert status == expected, shown
    assert phrase in body, shown
    assert phrase in reason, shown


def check_refused(response: requests.Response, expected: int, phrase: str, what: str = "") -> None:
    assert_refused(response.status_code, response.reason, response.text, expected, phrase, what)


def finished_posts(server: LockgateServer) -> int:
    return sum(
        1
        for event in server_events(server)
        if event.get("event") == "request" and event.get("method") == "POST"
    )


def assert_no_server_errors(server: LockgateServer) -> None:
    log = server.log()
    problems = [
        event
        for event in server_events(server)
        if event.get("level") in ("error", "critical") or int(event.get("status", 0)) >= 500
    ]
    assert not problems, f"server errors: {problems}"
    assert "Traceback" not in log, log[-4000:]


# ----------------------------------------------------------------------------------------------
# Uploading as twine does
# ----------------------------------------------------------------------------------------------


def twine_fields(
    content: bytes, name: str, version: str, filetype: str = "bdist_wheel", **overrides: Any
) -> dict[str, str]:
    """The form fields twine sends; an override of None leaves the field out."""
    fields: dict[str, Any] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": name,
        "version": version,
        "filetype": filetype,
        "pyversion": "py3" if filetype == "bdist_wheel" else "source",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(content, digest_size=32).hexdigest(),
        "summary": "test package",
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


def upload(
    server: LockgateServer,
    filename: str,
    content: bytes,
    *,
    name: str = "Foo_Bar",
    version: str = "1.0",
    filetype: str = "bdist_wheel",
    index: str = "alice/dev",
    auth: tuple[str, str] | None = ALICE,
    **overrides: Any,
) -> requests.Response:
    return server.request(
        "POST",
        f"/{index}/",
        auth=auth,
        data=twine_fields(content, name, version, filetype, **overrides),
        files={"content": (filename, content, "application/octet-stream")},
    )


def upload_path(server: LockgateServer, path: Path, **kw: Any) -> requests.Response:
    return upload(server, path.name, path.read_bytes(), **kw)


# ----------------------------------------------------------------------------------------------
# Raw HTTP, for bodies and paths no well-behaved client sends
# ----------------------------------------------------------------------------------------------


def basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def request_head(
    method: str,
    path: str,
    *,
    content_length: int,
    content_type: str | None = f"multipart/form-data; boundary={BOUNDARY}",
    auth: tuple[str, str] | None = ALICE,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if auth is not None:
        lines.append(f"Authorization: {basic(auth)}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class RawResponse:
    status: int
    reason: str
    body: str


def raw_exchange(server: LockgateServer, data: bytes, timeout: float = 30.0) -> RawResponse:
    """Send bytes as they are and read the whole answer (the server closes the connection)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    assert status_line.startswith("HTTP/1.1 "), f"no HTTP answer: {received[:200]!r}"
    _, status, reason = (status_line.split(" ", 2) + [""])[:3]
    return RawResponse(int(status), reason, body.decode("utf-8", "replace"))


def raw_request(
    server: LockgateServer,
    method: str,
    path: str,
    body: bytes = b"",
    **head: Any,
) -> RawResponse:
    return raw_exchange(server, request_head(method, path, content_length=len(body), **head) + body)


def form_part(disposition: str, value: bytes, content_type: str | None = None) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode("utf-8") + b"\r\n" + value + b"\r\n"


def text_parts(fields: dict[str, str]) -> bytes:
    return b"".join(
        form_part(f'form-data; name="{key}"', value.encode("utf-8"))
        for key, value in fields.items()
    )


def file_part(content: bytes, disposition: str) -> bytes:
    return form_part(disposition, content, "application/octet-stream")


def close_form() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode()


def multipart_upload(content: bytes, filename: str, **fields: Any) -> bytes:
    """A complete, well-formed twine-like body for the wheel `filename`."""
    return (
        text_parts(twine_fields(content, "Foo_Bar", "1.0", **fields))
        + file_part(content, f'form-data; name="content"; filename="{filename}"')
        + close_form()
    )


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


@dataclass
class Dists:
    wheel: Path  # foo_bar-1.0-py3-none-any.whl, METADATA Name "Foo_Bar"
    sdist: Path  # foo_bar-1.0.tar.gz

    @property
    def wheel_bytes(self) -> bytes:
        return self.wheel.read_bytes()


@pytest.fixture
def dists(tmp_path: Path) -> Dists:
    directory = tmp_path / "dists"
    return Dists(
        wheel=make_wheel(directory, "Foo_Bar", "1.0"),
        sdist=make_sdist(directory, "Foo_Bar", "1.0"),
    )


def set_up_users(server: LockgateServer) -> None:
    server.create_user("alice", ALICE[1])
    server.create_user("bob", BOB[1])
    server.create_index("alice/dev", ALICE)
    server.create_index("alice/prod", ALICE, volatile=False)


def strict_index(server: LockgateServer) -> None:
    """alice/strict: PyPI's file name rule, opted into (lockgate accepts legacy
    spellings by default)."""
    server.create_index("alice/strict", ALICE, strict_filenames=True)


@pytest.fixture
def stage(server: LockgateServer) -> Iterator[LockgateServer]:
    """The server with users alice and bob, and alice/dev (volatile) and alice/prod."""
    set_up_users(server)
    yield server
    assert_no_server_errors(server)


def rewrite_wheel(source: Path, target: Path, member: str, data: bytes) -> Path:
    """Copy a wheel, replacing one member (RECORD goes stale; the server does not read it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, data if info.filename == member else old.read(info))
    return target


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def wheel_members(name: str = "foo_bar", version: str = "1.0") -> dict[str, bytes]:
    dist_info = f"{name}-{version}.dist-info"
    return {
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: Foo_Bar\nVersion: {version}\n\n".encode()
        ),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/RECORD": b"",
    }


def zip_bomb() -> bytes:
    """A wheel whose one extra member inflates 100 MiB of zeros from about 100 KiB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in wheel_members().items():
            archive.writestr(name, data)
        info = zipfile.ZipInfo("foo_bar/zeros.bin", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        zeros = bytes(1024 * 1024)
        with archive.open(info, "w") as member:
            for _ in range(100):
                member.write(zeros)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# Transport: malformed multipart and cut-off bodies (F-C3)
# ----------------------------------------------------------------------------------------------


def test_malformed_multipart_is_refused_and_stores_nothing(
    stage: LockgateServer, dists: Dists
) -> None:
    content = dists.wheel_bytes
    filename = dists.wheel.name
    fields = text_parts(twine_fields(content, "Foo_Bar", "1.0"))
    content_part = file_part(content, f'form-data; name="content"; filename="{filename}"')
    good = multipart_upload(content, filename)
    cases: list[tuple[str, bytes, dict[str, Any], str]] = [
        (
            "url-encoded form",
            b":action=file_upload&name=Foo_Bar",
            {"content_type": "application/x-www-form-urlencoded"},
            "the upload must be multipart/form-data",
        ),
        (
            "no boundary parameter",
            good,
            {"content_type": "multipart/form-data"},
            "the upload must be multipart/form-data",
        ),
        ("no content type", good, {"content_type": None}, "multipart/form-data"),
        (
            "body uses another boundary",
            good,
            {"content_type": "multipart/form-data; boundary=not-the-one"},
            "the upload body is malformed",
        ),
        ("garbage body", b"garbage, not multipart\r\n\r\n", {}, "the upload body is malformed"),
        ("empty body", b"", {}, "the upload body is malformed"),
        (
            "closing boundary missing",
            fields + content_part,
            {},
            "the upload body is malformed or was cut short",
        ),
        (
            "part headers never end",
            fields + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x"'.encode(),
            {},
            "the upload body is malformed or was cut short",
        ),
        (
            "boundary broken inside the file",
            fields
            + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; '
            f'filename="{filename}"\r\n\r\n'.encode()
            + content[:1000]
            + f"\r\n--{BOUNDARY}X-broken\r\n".encode(),
            {},
            "the upload body is malformed or was cut short",
        ),
        (
            "part header line over 8 KiB",
            fields
            + file_part(content, f'form-data; name="content"; filename="{"a" * 9000}.whl"')
            + close_form(),
            {},
            "the upload body is malformed",
        ),
        (
            "nested multipart",
            fields
            + form_part(
                'form-data; name="content"',
                b"--inner\r\n\r\nx\r\n--inner--",
                "multipart/mixed; boundary=inner",
            )
            + close_form(),
            {},
            "nested multipart bodies are not supported",
        ),
        (
            "two content parts",
            fields + content_part + content_part + close_form(),
            {},
            "more than one 'content' file",
        ),
        (
            "content part without a filename",
            fields + file_part(content, 'form-data; name="content"') + close_form(),
            {},
            "Upload payload does not have a file.",
        ),
        ("no content part", fields + close_form(), {}, "Upload payload does not have a file."),
        (
            "a text field sent as a file",
            fields
            + file_part(b"x", 'form-data; name="summary"; filename="s.txt"')
            + content_part
            + close_form(),
            {},
            "summary: Should not be a tuple.",
        ),
        (
            "field not UTF-8",
            fields
            + form_part('form-data; name="author"', b"caf\xe9")
            + content_part
            + close_form(),
            {},
            "field 'author' is not valid UTF-8",
        ),
    ]
    for what, body, head, phrase in cases:
        before = stored(stage)
        response = raw_request(stage, "POST", "/alice/dev/", body, **head)
        assert_refused(response.status, response.reason, response.body, 400, phrase, what)
        assert_nothing_stored(stage, before, what=what)

    # The well-formed body of the same bytes is accepted: the refusals were about the form.
    response = raw_request(stage, "POST", "/alice/dev/", good)
    assert response.status == 200, response
    assert "Foo_Bar" in listed_projects(stage, "alice/dev")


@pytest.mark.parametrize("abort", ["fin", "rst"])
def test_client_disconnecting_mid_upload_leaves_nothing(
    stage: LockgateServer, tmp_path: Path, abort: str
) -> None:
    # Large enough that the server is streaming the file part when the client goes away.
    wheel = make_wheel(tmp_path / "big", "Foo_Bar", "1.0", payload_size=3 * 1024 * 1024)
    content = wheel.read_bytes()
    body = multipart_upload(content, wheel.name)
    # Cut inside the file part, well past its headers.
    cut = body.index(b'name="content"') + len(content) // 2
    before = stored(stage)
    posts = finished_posts(stage)

    sock = socket.create_connection(("127.0.0.1", stage.port), timeout=30)
    try:
        sock.sendall(request_head("POST", "/alice/dev/", content_length=len(body)) + body[:cut])
        # Let the server start writing the temp file before the connection goes away.
        wait_until(lambda: tmp_entries(stage) != [], "the upload's temp file")
        if abort == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionError:
                pass
            # Whether the server still answers a half-closed connection is its choice,
            # but it must not be a server error.
            assert not answer.startswith(b"HTTP/1.1 5"), answer[:200]
    finally:
        sock.close()

    wait_until(lambda: finished_posts(stage) > posts, "the server to end the cut-off request")
    assert_nothing_stored(stage, before, what=f"disconnect ({abort})")
    assert stage.get("/+status").status_code == 200

    # F-C3: the same upload retried in full is stored.
    response = upload(stage, wheel.name, content)
    assert response.status_code == 200, response.text
    assert stage.serial() == before.serial + 1
    assert "Foo_Bar" in listed_projects(stage, "alice/dev")
    assert tmp_entries(stage) == []


# ----------------------------------------------------------------------------------------------
# The form: digests, names and versions
# ----------------------------------------------------------------------------------------------


def test_digest_problems_are_refused(stage: LockgateServer, dists: Dists) -> None:
    content = dists.wheel_bytes
    mismatch = "The digest supplied does not match a digest calculated from the uploaded file."
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("wrong sha256", {"sha256_digest": "0" * 64}, mismatch),
        ("wrong blake2", {"blake2_256_digest": "f" * 64}, mismatch),
        ("sha256 of other bytes", {"sha256_digest": hashlib.sha256(b"x").hexdigest()}, mismatch),
        ("wrong md5 only", {"sha256_digest": None, "blake2_256_digest": None,
                            "md5_digest": "0" * 32}, mismatch),
        ("no digest", {"sha256_digest": None, "blake2_256_digest": None},
         "Include at least one message digest."),
        ("sha256 not hex", {"sha256_digest": "z" * 64},
         "Invalid value for sha256_digest. Error: Use a valid, hex-encoded, SHA256"),
        ("sha256 too short", {"sha256_digest": "ab" * 8},
         "Invalid value for sha256_digest."),
    ]  # fmt: skip
    for what, overrides, phrase in cases:
        before = stored(stage)
        response = upload(stage, dists.wheel.name, content, **overrides)
        check_refused(response, 400, phrase, what)
        assert_nothing_stored(stage, before, what=what)

    # Uppercase hex is the same digest: accepted.
    response = upload(
        stage, dists.wheel.name, content, sha256_digest=hashlib.sha256(content).hexdigest().upper()
    )
    assert response.status_code == 200, response.text


def test_name_and_version_mismatches_are_refused(
    stage: LockgateServer, dists: Dists, tmp_path: Path
) -> None:
    strict_index(stage)
    metadata_member = "foo_bar-1.0.dist-info/METADATA"
    with zipfile.ZipFile(dists.wheel) as archive:
        metadata = archive.read(metadata_member).decode()
    other_name = rewrite_wheel(
        dists.wheel,
        tmp_path / "other-name" / dists.wheel.name,
        metadata_member,
        metadata.replace("Name: Foo_Bar", "Name: other-project").encode(),
    )
    other_version = rewrite_wheel(
        dists.wheel,
        tmp_path / "other-version" / dists.wheel.name,
        metadata_member,
        metadata.replace("Version: 1.0", "Version: 2.0").encode(),
    )
    sdist = dists.sdist.read_bytes()
    cases: list[tuple[str, Callable[[], requests.Response], str]] = [
        (
            "form name differs from the filename",
            lambda: upload_path(stage, dists.wheel, name="foo-baz"),
            "Start filename for 'foo-baz' with 'foo_baz'.",
        ),
        (
            "form version differs from the filename",
            lambda: upload_path(stage, dists.wheel, version="1.1"),
            "Version in filename should be '1.1' not '1.0'.",
        ),
        (
            "METADATA names another project",
            lambda: upload_path(stage, other_name),
            "Name in METADATA should be 'Foo_Bar' not 'other-project'.",
        ),
        (
            "METADATA has another version",
            lambda: upload_path(stage, other_version),
            "Version in METADATA should be '1.0' not '2.0'.",
        ),
        (
            "wheel name not in normalized form, on a strict index",
            lambda: upload(
                stage, "Foo_Bar-1.0-py3-none-any.whl", dists.wheel_bytes, index="alice/strict"
            ),
            "should contain the normalized project name 'foo_bar', not 'Foo_Bar'.",
        ),
        (
            "sdist name not in PEP 625 form, on a strict index",
            lambda: upload(
                stage, "Foo_Bar-1.0.tar.gz", sdist, filetype="sdist", index="alice/strict"
            ),
            "Filename 'Foo_Bar-1.0.tar.gz' is invalid, should be 'foo_bar-1.0.tar.gz'.",
        ),
        (
            "sdist version differs from the form",
            lambda: upload(stage, dists.sdist.name, sdist, filetype="sdist", version="1.1"),
            "is invalid, should be 'foo_bar-1.1.tar.gz'.",
        ),
        (
            "wheel sent as sdist",
            lambda: upload_path(stage, dists.wheel, filetype="sdist"),
            "Invalid file extension: Extension .whl is invalid for filetype sdist.",
        ),
        (
            "egg",
            lambda: upload(
                stage, "foo_bar-1.0-py3.11.egg", dists.wheel_bytes, filetype="bdist_egg"
            ),
            "Invalid value for filetype. Error: Use a known file type.",
        ),
    ]
    for what, send, phrase in cases:
        before = stored(stage)
        check_refused(send(), 400, phrase, what)
        assert_nothing_stored(stage, before, what=what)


def top_level(server: LockgateServer) -> list[str]:
    return sorted(p.name for p in server.serverdir.parent.iterdir()) + sorted(
        p.name for p in server.serverdir.iterdir()
    )


def test_unsafe_filenames_are_refused(stage: LockgateServer, dists: Dists) -> None:
    top_before = top_level(stage)
    content = dists.wheel_bytes
    name = dists.wheel.name
    # Sent by requests exactly as twine would (urllib3 leaves '/', '\\' and NUL as they are).
    twine_cases: list[tuple[str, str, str]] = [
        ("../", f"../{name}", SLASH),
        ("../../", f"../../{name}", SLASH),
        ("absolute path", f"/tmp/{name}", SLASH),
        ("subdirectory", f"dir/{name}", SLASH),
        ("NUL", "foo_bar\x00-1.0-py3-none-any.whl", NON_PRINTABLE),
        ("NUL at the end", f"{name}\x00.txt", NON_PRINTABLE),
        ("DEL", "foo_bar\x7f-1.0-py3-none-any.whl", NON_PRINTABLE),
        ("tab", "foo_bar\t-1.0-py3-none-any.whl", NON_PRINTABLE),
        # A backslash in the quoted filename (aiohttp would silently unescape it).
        ("backslash", f"..\\{name}", SLASH),
        ("backslash inside", "foo_bar\\-1.0-py3-none-any.whl", SLASH),
        ("dot-dot", "..", "Cannot upload a file whose name starts with '.'."),
        ("hidden file", f".{name}", "Cannot upload a file whose name starts with '.'."),
        ("too long", "foo_bar-1.0-" + "a" * 300 + "-none-any.whl", "Filename is too long"),
        ("no extension", "foo_bar-1.0", "Invalid file extension: Use .tar.gz, .whl or .zip"),
        ("percent-encoded slash", f"x%2f..%2f{name}", "Invalid project name"),
    ]
    for what, filename, phrase in twine_cases:
        before = stored(stage)
        check_refused(upload(stage, filename, content), 400, phrase, what)
        assert_nothing_stored(stage, before, what=what)

    # RFC 5987 `filename*` (percent-encoded UTF-8): the decoded name is checked.
    fields = text_parts(twine_fields(content, "Foo_Bar", "1.0"))
    extended_cases: list[tuple[str, str, str]] = [
        ("encoded ../", f"..%2F{name}", SLASH),
        ("encoded backslash", f"..%5C{name}", SLASH),
        ("encoded NUL", "foo_bar%00-1.0-py3-none-any.whl", NON_PRINTABLE),
        ("encoded newline", f"{name}%0A", NON_PRINTABLE),
        ("encoded DEL", "foo_bar%7F-1.0-py3-none-any.whl", NON_PRINTABLE),
    ]
    for what, encoded, phrase in extended_cases:
        body = (
            fields
            + file_part(content, f"form-data; name=\"content\"; filename*=utf-8''{encoded}")
            + close_form()
        )
        before = stored(stage)
        response = raw_request(stage, "POST", "/alice/dev/", body)
        assert_refused(response.status, response.reason, response.body, 400, phrase, what)
        assert_nothing_stored(stage, before, what=what)

    # Nothing was written outside the blob store and tmp (INV-7).
    assert top_level(stage) == top_before
    assert not [p for p in stage.serverdir.rglob("*") if "foo_bar" in p.name]


def test_project_name_variants_share_one_project_and_non_ascii_is_refused(
    stage: LockgateServer, tmp_path: Path
) -> None:
    # twine sends "Foo-Bar" for Foo_Bar; all spellings normalize to foo-bar (PEP 503).
    uploads = [
        (make_wheel(tmp_path / "a", "Foo_Bar", "1.0"), "Foo_Bar", "bdist_wheel"),
        (make_wheel(tmp_path / "b", "foo-bar", "2.0"), "foo-bar", "bdist_wheel"),
        (make_sdist(tmp_path / "c", "FOO.BAR", "3.0"), "FOO.BAR", "sdist"),
        (make_wheel(tmp_path / "d", "foo_bar", "4.0"), "Foo-Bar", "bdist_wheel"),
    ]
    for path, name, filetype in uploads:
        version = path.name.split("-")[1].removesuffix(".tar.gz")
        response = upload_path(stage, path, name=name, version=version, filetype=filetype)
        assert response.status_code == 200, (path.name, response.text)
    listing = stage.get("/alice/dev/+simple/", headers={"Accept": JSON_V1}).json()
    assert [p["_normalized"] for p in listing["projects"]] == ["foo-bar"], listing
    page = stage.get("/alice/dev/+simple/foo-bar/", headers={"Accept": JSON_V1}).json()
    assert sorted(f["filename"] for f in page["files"]) == sorted(p.name for p, _, _ in uploads)

    invalid_name = "is an invalid value for Name."
    start_with = "Start filename for 'Foo_Bar' with 'foo_bar'."
    wheel = make_wheel(tmp_path / "e", "Foo_Bar", "5.0")
    content = wheel.read_bytes()
    cases: list[tuple[str, str, str, str]] = [
        ("non-ASCII name", "fóo", "fóo-5.0-py3-none-any.whl", invalid_name),
        ("Kelvin sign", "\u212aelvin", "\u212aelvin-5.0-py3-none-any.whl", invalid_name),
        ("long s", "\u017fpam", "\u017fpam-5.0-py3-none-any.whl", invalid_name),
        ("fullwidth letters", "ｆｏｏ", "ｆｏｏ-5.0-py3-none-any.whl", invalid_name),
        ("name with a space", "foo bar", "foo_bar-5.0-py3-none-any.whl", invalid_name),
        ("name ending in '-'", "foo-", "foo_-5.0-py3-none-any.whl", invalid_name),
        ("non-ASCII filename", "Foo_Bar", "fóo_bar-5.0-py3-none-any.whl", start_with),
        ("NFD filename", "Foo_Bar", "fo\u0301o_bar-5.0-py3-none-any.whl", "Invalid project name"),
    ]
    for what, name, filename, phrase in cases:
        before = stored(stage)
        response = upload(stage, filename, content, name=name, version="5.0")
        check_refused(response, 400, phrase, what)
        assert_nothing_stored(stage, before, what=what)
        assert stage.get(f"/alice/dev/+simple/{name}/").status_code in (404, 301)


# ----------------------------------------------------------------------------------------------
# The archive
# ----------------------------------------------------------------------------------------------


def test_invalid_archives_and_zip_bombs_are_refused(stage: LockgateServer, dists: Dists) -> None:
    wheel = dists.wheel_bytes
    unsafe = wheel_members()
    unsafe["../evil.py"] = b"print('escaped')\n"
    cases: list[tuple[str, str, bytes, str, str]] = [
        ("text as .whl", dists.wheel.name, b"this is not a zip archive\n", "bdist_wheel",
         "File is not a zipfile"),
        ("truncated wheel", dists.wheel.name, wheel[: len(wheel) // 2], "bdist_wheel",
         INVALID_DIST),
        ("empty wheel", dists.wheel.name, b"", "bdist_wheel", INVALID_DIST),
        ("wheel without METADATA", dists.wheel.name,
         zip_bytes({"foo_bar-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n"}), "bdist_wheel",
         INVALID_DIST),
        ("member escaping with ../", dists.wheel.name, zip_bytes(unsafe), "bdist_wheel",
         "File contains an unsafe member path"),
        ("zip bomb", dists.wheel.name, zip_bomb(), "bdist_wheel",
         "Invalid distribution file. File exceeds compression ratio of 50"),
        ("text as .tar.gz", dists.sdist.name, b"not gzip\n", "sdist", "File is not a tarfile"),
        ("zip as .tar.gz", dists.sdist.name, wheel, "sdist", "File is not a tarfile"),
        ("truncated sdist", dists.sdist.name, dists.sdist.read_bytes()[:200], "sdist",
         INVALID_DIST),
    ]  # fmt: skip
    for what, filename, content, filetype, phrase in cases:
        before = stored(stage)
        started = time.monotonic()
        response = upload(stage, filename, content, filetype=filetype)
        elapsed = time.monotonic() - started
        check_refused(response, 400, phrase, what)
        assert INVALID_DIST in response.text, what
        assert elapsed < 10, f"{what}: took {elapsed:.1f}s"
        assert_nothing_stored(stage, before, what=what)


def test_file_over_the_size_limit_is_refused(
    make_server: Callable[..., LockgateServer], tmp_path: Path
) -> None:
    # `lockgate serve` has no --max-upload-bytes flag and the harness strips LOCKGATE_*
    # variables, so the limit goes into the server directory's lockgate.toml ([server]).
    server = make_server("big")
    server.stop()
    config = server.serverdir / "lockgate.toml"
    config.write_text(config.read_text() + "max_upload_bytes = 1048576\n")
    server.start()
    set_up_users(server)

    small = make_wheel(tmp_path / "small", "Foo_Bar", "1.0", payload_size=512 * 1024)
    large = make_wheel(tmp_path / "large", "Foo_Bar", "2.0", payload_size=3 * 1024 * 1024)
    before = stored(server)
    response = upload_path(server, large, version="2.0")
    check_refused(response, 400, "File too large. Limit for project 'Foo_Bar' is 1 MB.")
    assert_nothing_stored(server, before, what="too large")

    # Just over the limit by one byte still counts (a non-zip body: the size check comes first).
    before = stored(server)
    response = upload(server, small.name, b"x" * (1024 * 1024 + 1))
    check_refused(response, 400, "File too large.")
    assert_nothing_stored(server, before, what="one byte over")

    # Under the limit: stored, so the limit is what refused the others.
    response = upload_path(server, small)
    assert response.status_code == 200, response.text
    assert server.serial() == before.serial + 1
    assert_no_server_errors(server)


# ----------------------------------------------------------------------------------------------
# Who may upload where
# ----------------------------------------------------------------------------------------------


def test_authentication_and_permission_refusals(stage: LockgateServer, dists: Dists) -> None:
    content = dists.wheel_bytes

    before = stored(stage)
    response = upload(stage, dists.wheel.name, content, auth=None)
    check_refused(response, 401, BAD_AUTH, "no credentials")
    assert response.headers.get("WWW-Authenticate", "").startswith("Basic "), response.headers
    assert_nothing_stored(stage, before, what="no credentials")

    garbled = stage.request(
        "POST",
        "/alice/dev/",
        headers={"Authorization": "Basic !!not-base64!!"},
        data=twine_fields(content, "Foo_Bar", "1.0"),
        files={"content": (dists.wheel.name, content)},
    )
    check_refused(garbled, 401, BAD_AUTH, "garbled Authorization header")
    assert_nothing_stored(stage, before, what="garbled credentials")

    # A wrong password is refused with 403 (Warehouse's status for bad credentials), and an
    # unknown user gets the very same answer, so uploads cannot probe for user names.
    wrong_password = upload(stage, dists.wheel.name, content, auth=("alice", "not-it"))
    check_refused(wrong_password, 403, BAD_AUTH, "wrong password")
    assert "wrong user or password" in wrong_password.text
    unknown_user = upload(stage, dists.wheel.name, content, auth=("mallory", "not-it"))
    check_refused(unknown_user, 403, BAD_AUTH, "unknown user")
    assert unknown_user.text == wrong_password.text
    assert unknown_user.reason == wrong_password.reason
    assert_nothing_stored(stage, before, what="bad credentials")

    # bob is a real user but not in alice/dev's acl_upload.
    response = upload(stage, dists.wheel.name, content, auth=BOB)
    check_refused(response, 403, "The user 'bob' isn't allowed to upload to project 'Foo_Bar'")
    assert_nothing_stored(stage, before, what="not in acl_upload")

    # The PyPI mirror takes no uploads, not even from root.
    before_mirror = stored(stage, "alice/dev")
    response = upload(stage, dists.wheel.name, content, index="root/pypi", auth=stage.root_auth())
    check_refused(response, 403, "index root/pypi is a mirror", "upload to root/pypi")
    assert_nothing_stored(stage, before_mirror, what="mirror")

    # Granting bob upload rights makes the same request succeed.
    patched = stage.request(
        "PATCH", "/alice/dev", auth=ALICE, json={"acl_upload": ["alice", "bob"]}
    )
    assert patched.status_code == 200, patched.text
    response = upload(stage, dists.wheel.name, content, auth=BOB)
    assert response.status_code == 200, response.text


def test_unknown_user_or_index_is_404(stage: LockgateServer, dists: Dists) -> None:
    for index, phrase in [
        ("alice/nope", "index alice/nope does not exist"),
        ("nobody/dev", "index nobody/dev does not exist"),
    ]:
        before = stored(stage)
        response = upload(stage, dists.wheel.name, dists.wheel_bytes, index=index)
        check_refused(response, 404, phrase, index)
        assert_nothing_stored(stage, before, what=index)


BAD_UPLOAD_PATHS = [
    "/../dev/",
    "/alice/../",
    "/alice/../dev/",
    "/alice/dev/../prod/",
    "/%2e%2e/dev/",
    "/alice/%2e%2e/",
    "/alice/..%2fprod/",
    "/alice%2fdev/",
    "/+simple/dev/",
    "/alice/+simple/",
    "/alice/+f/",
    "/+status/dev/",
    "/alice/dev%00/",
]


def test_path_tricks_in_the_upload_url_store_nothing(stage: LockgateServer, dists: Dists) -> None:
    body = multipart_upload(dists.wheel_bytes, dists.wheel.name)
    for path in BAD_UPLOAD_PATHS:
        before = stored(stage)
        before_prod = stored(stage, "alice/prod")
        response = raw_request(stage, "POST", path, body)
        # No route for these: a plain 404 (or 400), never an upload somewhere else.
        assert response.status in (400, 404), (path, response)
        assert response.reason and response.body.strip(), (path, response)
        assert response.reason.lower() in response.body.lower(), (path, response)
        assert_nothing_stored(stage, before, what=path)
        assert_nothing_stored(stage, before_prod, index="alice/prod", what=path)


def user_names(server: LockgateServer) -> set[str]:
    return set(server.get("/").json()["result"])


def index_names(server: LockgateServer, user: str) -> set[str]:
    return set(server.get(f"/{user}").json()["result"]["indexes"])


# Names the route pattern accepts, refused by the name check in the handler.
HANDLER_REFUSED_NAMES = ["a..b", "x..", "a" * 65]
# Names the router never hands to a handler (they cannot match `[A-Za-z0-9][A-Za-z0-9._-]*`).
ROUTER_REFUSED_NAMES = ["..", "%2e%2e", "+simple", "+f", ".hidden", "-x", "a%2Fb", "%C3%A9"]


def put_invalid_names(stage: LockgateServer, names: list[str]) -> list[str]:
    """PUT /{name} (as root) and PUT /alice/{name}; return every answer that is not a 400
    naming the problem, after checking that nothing at all was created."""
    users, serial = user_names(stage), stage.serial()
    wrong = []
    for name in names:
        for path, kind, body, auth in [
            (f"/{name}", "user", b'{"password": "pw"}', stage.root_auth()),
            (f"/alice/{name}", "index", b"{}", ALICE),
        ]:
            response = raw_request(
                stage, "PUT", path, body, content_type="application/json", auth=auth
            )
            assert response.status < 500, (path, response)
            phrase = f"invalid {kind} name"
            if not (
                response.status == 400 and phrase in response.body and phrase in response.reason
            ):
                wrong.append(f"PUT {path} -> {response.status} {response.reason!r}")
    assert user_names(stage) == users
    assert index_names(stage, "alice") == {"dev", "prod"}
    assert stage.serial() == serial
    assert_nothing_stored(stage, stored(stage), what="admin names")
    return wrong


def test_admin_api_refuses_invalid_names_and_creates_nothing(stage: LockgateServer) -> None:
    assert put_invalid_names(stage, HANDLER_REFUSED_NAMES) == []
    # These are refused too (no user or index appears, no 5xx) -- but see the next test.
    put_invalid_names(stage, ROUTER_REFUSED_NAMES)


def test_admin_api_answers_400_for_names_the_router_cannot_match(stage: LockgateServer) -> None:
    assert put_invalid_names(stage, ROUTER_REFUSED_NAMES) == []


# ----------------------------------------------------------------------------------------------
# Re-uploads
# ----------------------------------------------------------------------------------------------


def test_reupload_to_non_volatile_index(
    stage: LockgateServer, dists: Dists, tmp_path: Path
) -> None:
    first = dists.wheel_bytes
    response = upload(stage, dists.wheel.name, first, index="alice/prod")
    assert response.status_code == 200, response.text
    after_first = stored(stage, "alice/prod")
    assert after_first.projects == {"Foo_Bar"}

    # Identical bytes: a no-op success (twine retries, --skip-existing), no new serial.
    again = upload(stage, dists.wheel.name, first, index="alice/prod")
    assert again.status_code == 200, again.text
    assert_nothing_stored(stage, after_first, index="alice/prod", what="identical re-upload")

    # Different bytes under the same name: refused, and the changed bytes are not kept.
    changed = make_wheel(tmp_path / "changed", "Foo_Bar", "1.0", summary="changed").read_bytes()
    assert changed != first
    refused = upload(stage, dists.wheel.name, changed, index="alice/prod")
    check_refused(refused, 409, "File already exists", "different bytes")
    assert dists.wheel.name in refused.text
    assert_nothing_stored(stage, after_first, index="alice/prod", what="conflicting re-upload")

    # The stored file is still the first one (INV-4).
    page = stage.get("/alice/prod/+simple/foo-bar/", headers={"Accept": JSON_V1}).json()
    assert [f["hashes"]["sha256"] for f in page["files"]] == [hashlib.sha256(first).hexdigest()]
    url = page["files"][0]["url"]
    served = requests.get(requests.compat.urljoin(stage.url + "/alice/prod/+simple/foo-bar/", url))
    assert served.status_code == 200 and served.content == first


def test_legacy_file_names_are_accepted_unless_the_index_is_strict(
    stage: LockgateServer, dists: Dists, clients: Clients, tmp_path: Path
) -> None:
    """Wheels and sdists named as older tools name them (`Foo_Bar-1.0-…whl`,
    `Foo_Bar-1.0.tar.gz`) are everywhere; the wheel specification asks tools to accept
    them. They are stored and listed under their own names, `.metadata` included, and
    install with pip and uv. `strict_filenames: true` keeps PyPI's rule."""
    strict_index(stage)
    legacy_wheel, legacy_sdist = "Foo_Bar-1.0-py3-none-any.whl", "Foo_Bar-1.0.tar.gz"
    for filename, content, filetype in (
        (legacy_wheel, dists.wheel_bytes, "bdist_wheel"),
        (legacy_sdist, dists.sdist.read_bytes(), "sdist"),
    ):
        response = upload(stage, filename, content, filetype=filetype)
        assert response.status_code == 200, response.text
    page = stage.get(
        "/alice/dev/+simple/foo-bar/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    ).json()
    files = {f["filename"]: f for f in page["files"]}
    assert set(files) == {legacy_wheel, legacy_sdist}
    assert files[legacy_wheel]["core-metadata"]
    for number, install in enumerate((clients.pip_install, clients.uv_install)):
        result = install(stage.simple_url("alice/dev"), "foo-bar", target=tmp_path / str(number))
        assert result.returncode == 0, result.stdout + result.stderr
    # A name that does not normalize to the project is still refused.
    other = upload(stage, "Other_Name-1.0-py3-none-any.whl", dists.wheel_bytes)
    assert other.status_code == 400
    strict = upload(stage, legacy_wheel, dists.wheel_bytes, index="alice/strict")
    assert strict.status_code == 400 and "normalized project name" in strict.text
