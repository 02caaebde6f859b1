"""Private indexes (`acl_read`) end to end: every place an index's content shows
answers 401 (with a Basic challenge, so pip and uv retry with what they have) to
anonymous callers and 403 to users who may not read it, whether the project
exists or not; pip and uv install with credentials (URL, token) and fail cleanly
without; listings hide what the caller may not read; inheritance cannot widen
who reads a base; a replica enforces the same. SQLite and PostgreSQL."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_replica import _wait_caught_up
from tests.support.dists import make_wheel
from tests.support.server import Clients, LockgateServer, server_events, start_replica

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def _setup(server: LockgateServer, clients: Clients, tmp_path: Path) -> dict[str, str]:
    server.create_user(*ALICE)
    server.create_user(*BOB)
    server.create_index("alice/private", ALICE, acl_read=["alice"])
    wheel = make_wheel(tmp_path, "secret-sauce", "1.0")
    upload = clients.twine_upload(f"{server.url}/alice/private/", [wheel], *ALICE)
    assert upload.returncode == 0, upload.stdout + upload.stderr
    page = server.get("/alice/private/+simple/secret-sauce/", headers=JSON, auth=ALICE).json()
    url = posixpath.normpath("/alice/private/+simple/secret-sauce/" + page["files"][0]["url"])
    return {
        "list": "/alice/private/+simple/",
        "page": "/alice/private/+simple/secret-sauce/",
        "missing page": "/alice/private/+simple/no-such-thing/",
        "file": url,
        "metadata": url + ".metadata",
        "missing file": url.rsplit("/", 1)[0] + "/nope-1.0-py3-none-any.whl",
        "json": "/alice/private/pypi/secret-sauce/json",
        "missing json": "/alice/private/pypi/no-such-thing/json",
        "config": "/alice/private",
    }


def test_every_view_of_a_private_index_needs_a_reader(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    paths = _setup(server, clients, tmp_path)
    for what, path in paths.items():
        anonymous = server.get(path)
        assert anonymous.status_code == 401, (what, anonymous.status_code)
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="lockgate"'
        assert "alice/private is private" in anonymous.text
        outsider = server.get(path, auth=BOB)
        assert outsider.status_code == 403, (what, outsider.status_code)
        assert "may not read index alice/private" in outsider.text
        if not what.startswith("missing"):
            assert server.get(path, auth=ALICE).status_code == 200, what
            assert server.get(path, auth=server.root_auth()).status_code == 200, what
    # Listings show a private index only to those who may read it.
    assert "private" not in server.get("/").json()["result"]["alice"]["indexes"]
    assert "private" not in server.get("/alice", auth=BOB).json()["result"]["indexes"]
    assert "private" in server.get("/alice", auth=ALICE).json()["result"]["indexes"]
    # :AUTHENTICATED: admits any user, still not anonymous callers.
    opened = server.request(
        "PATCH", "/alice/private", auth=ALICE, json={"acl_read": [":AUTHENTICATED:"]}
    )
    assert opened.ok, opened.text
    assert server.get(paths["page"], auth=BOB).status_code == 200
    assert server.get(paths["page"]).status_code == 401


def test_pip_and_uv_with_and_without_credentials(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    _setup(server, clients, tmp_path)
    plain = server.simple_url("alice/private")
    with_password = plain.replace("http://", "http://alice:alice-pw@")
    seen = len(server_events(server))
    refused = clients.pip_install(plain, "secret-sauce", target=tmp_path / "p0")
    assert refused.returncode != 0
    # pip (with no terminal to ask on) reports no versions; the server said 401, not 404.
    answered = {
        event["status"]
        for event in server_events(server)[seen:]
        if event.get("path") == "/alice/private/+simple/secret-sauce/"
    }
    assert answered == {401}, answered
    installed = clients.pip_install(with_password, "secret-sauce", target=tmp_path / "p1")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    refused = clients.uv_install(plain, "secret-sauce", target=tmp_path / "u0")
    assert refused.returncode != 0
    assert "401" in refused.stderr or "credentials" in refused.stderr.lower(), refused.stderr
    installed = clients.uv_install(with_password, "secret-sauce", target=tmp_path / "u1")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # A read token works as the password of __token__; an upload-only token does not read.
    reader = _token(server, ["read"], ["alice/private"])
    with_token = plain.replace("http://", f"http://__token__:{reader}@")
    installed = clients.uv_install(with_token, "secret-sauce", target=tmp_path / "u2")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    uploader = _token(server, ["upload"], None)
    page = server.get("/alice/private/+simple/secret-sauce/", auth=("__token__", uploader))
    assert page.status_code == 403 and "lacks the 'read' scope" in page.text


def _token(server: LockgateServer, scopes: list[str], indexes: list[str] | None) -> str:
    body: dict[str, Any] = {"scopes": scopes}
    if indexes is not None:
        body["indexes"] = indexes
    response = server.request("POST", "/alice/+tokens", auth=ALICE, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["result"]["token"])


def test_inheritance_cannot_widen_who_reads_a_base(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    _setup(server, clients, tmp_path)
    serial = server.serial()
    for auth, path, body in (
        (ALICE, "/alice/public", {"bases": ["alice/private"]}),
        (BOB, "/bob/dev", {"bases": ["alice/private"], "acl_read": ["bob"]}),
        (ALICE, "/alice/team", {"bases": ["alice/private"], "acl_read": [":AUTHENTICATED:"]}),
    ):
        refused = server.request("PUT", path, auth=auth, json=body)
        assert refused.status_code == 400, (path, refused.text)
        assert "its base alice/private" in refused.text
    assert server.serial() == serial
    narrower = server.request(
        "PUT", "/alice/mine", auth=ALICE, json={"bases": ["alice/private"], "acl_read": ["alice"]}
    )
    assert narrower.status_code == 201, narrower.text
    # Narrowing a base that a wider index inherits is refused too, naming the inheritor.
    server.create_index("alice/open-base", ALICE)
    server.create_index("alice/open", ALICE, bases=["alice/open-base"])
    narrowing = server.request(
        "PATCH", "/alice/open-base", auth=ALICE, json={"acl_read": ["alice"]}
    )
    assert narrowing.status_code == 400 and "index alice/open " in narrowing.text
    for bad, phrase in (([], "cannot be empty"), ([":EVERYONE:"], "unknown special reader")):
        response = server.request("PATCH", "/alice/private", auth=ALICE, json={"acl_read": bad})
        assert response.status_code == 400 and phrase in response.text


def test_a_replica_enforces_the_same_reads(
    make_server: Callable[..., LockgateServer],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    primary = make_server("primary")
    paths = _setup(primary, clients, tmp_path)
    replica = start_replica(primary, tmp_path / "replica", make_db_url())
    try:
        _wait_caught_up(primary, replica)
        assert replica.get(paths["page"]).status_code == 401
        assert replica.get(paths["file"], auth=BOB).status_code == 403
        assert replica.get(paths["file"], auth=ALICE).status_code == 200
        installed = clients.pip_install(
            replica.simple_url("alice/private").replace("http://", "http://alice:alice-pw@"),
            "secret-sauce",
            target=tmp_path / "r",
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    finally:
        replica.stop()
