"""Black-box conformance of the Warehouse-style JSON API (docs/standards.md §5, T47, T48).

The routes are `/{user}/{index}/pypi/<project>/json` and
`/{user}/{index}/pypi/<project>/<version>/json`. One server per database backend
is started for the whole module and filled once with twine; nothing changes it
afterwards. Fixture data as in docs/standards.md §7 (`Foo.Bar` 1.0 sdist and wheel with
`Requires-Python: >=3.8,<4`, 2.0 wheel yanked with "bad build"), plus small
projects for the choice of the latest version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.dists import make_sdist, make_wheel, wheel_metadata
from tests.support.server import Clients, LockgateServer

pytestmark = pytest.mark.e2e

USER, PASSWORD = "alice", "alice-pw"
AUTH = (USER, PASSWORD)
STAGE = "alice/stage"
PYPI = f"/{STAGE}/pypi"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"

SDIST = "foo_bar-1.0.tar.gz"
WHEEL1 = "foo_bar-1.0-py3-none-any.whl"
WHEEL2 = "foo_bar-2.0-py3-none-any.whl"

INFO_KEYS = {
    "name",
    "version",
    "summary",
    "description",
    "description_content_type",
    "keywords",
    "license",
    "license_expression",
    "license_files",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "classifiers",
    "requires_dist",
    "requires_python",
    "provides_extra",
    "dynamic",
    "platform",
    "home_page",
    "download_url",
    "project_urls",
    "package_url",
    "project_url",
    "release_url",
    "docs_url",
    "yanked",
    "yanked_reason",
    "bugtrack_url",
    "downloads",
}
FILE_KEYS = {
    "filename",
    "url",
    "packagetype",
    "python_version",
    "size",
    "digests",
    "md5_digest",
    "upload_time",
    "upload_time_iso_8601",
    "requires_python",
    "yanked",
    "yanked_reason",
    "core-metadata",
    "comment_text",
    "has_sig",
    "downloads",
}


@dataclass
class World:
    server: LockgateServer
    files: dict[str, Path]

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.server.get(path, **kw)

    def json(self, path: str) -> dict[str, Any]:
        response = self.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["Content-Type"].split(";")[0] == "application/json"
        data = response.json()
        assert int(response.headers["X-PyPI-Last-Serial"]) == data["last_serial"]
        return data

    def simple_hashes(self, project: str) -> dict[str, str]:
        response = self.get(f"/{STAGE}/+simple/{project}/", headers={"Accept": SIMPLE_JSON})
        assert response.status_code == 200
        return {f["filename"]: f["hashes"]["sha256"] for f in response.json()["files"]}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"jsonapi-{request.param}")
    db_url = None
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres_databases").create()
    server = LockgateServer(tmp / "server", db_url).start()
    try:
        server.create_user(USER, PASSWORD)
        server.create_index(STAGE, AUTH)
        dist = tmp / "dist"
        files = [
            make_sdist(dist, "Foo.Bar", "1.0"),
            make_wheel(dist, "Foo.Bar", "1.0", requires_python=">=3.8,<4"),
            make_wheel(dist, "Foo.Bar", "2.0"),
            make_wheel(dist, "pre-proj", "1.0"),
            make_wheel(dist, "pre-proj", "2.0b1"),
            make_wheel(dist, "pre-only", "1.0a1"),
            make_wheel(dist, "pre-only", "1.0b2"),
            make_wheel(dist, "all-yanked", "1.0"),
            make_wheel(dist, "all-yanked", "2.0"),
            make_wheel(dist, "twins", "1.0"),
            make_wheel(dist, "twins", "1.0.0"),
        ]
        upload = Clients(tmp).twine_upload(f"{server.url}/{STAGE}/", files, *AUTH)
        assert upload.returncode == 0, upload.stdout + upload.stderr
        for project, version, reason in (
            ("foo-bar", "2.0", "bad build"),
            ("all-yanked", "1.0", None),
            ("all-yanked", "2.0", None),
        ):
            body = {"yanked": True, **({"reason": reason} if reason else {})}
            response = server.request(
                "PATCH", f"/{STAGE}/{project}/{version}", auth=AUTH, json=body
            )
            assert response.status_code == 200, response.text
        yield World(server, {p.name: p for p in files})
    finally:
        server.stop()


def _check_file(world: World, f: dict[str, Any], simple_hashes: dict[str, str]) -> None:
    assert set(f) >= FILE_KEYS, FILE_KEYS - set(f)
    body = world.files[f["filename"]].read_bytes()
    assert f["digests"]["sha256"] == simple_hashes[f["filename"]]
    assert f["digests"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert f["digests"]["md5"] == f["md5_digest"] == hashlib.md5(body).hexdigest()
    assert f["digests"]["blake2b_256"] == hashlib.blake2b(body, digest_size=32).hexdigest()
    assert f["size"] == len(body)
    if f["filename"].endswith(".whl"):
        assert (f["packagetype"], f["python_version"]) == ("bdist_wheel", "py3")
        metadata = wheel_metadata(world.files[f["filename"]])
        assert f["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    else:
        assert (f["packagetype"], f["python_version"]) == ("sdist", "source")
        assert not f["core-metadata"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", f["upload_time"]), f["upload_time"]
    iso = f["upload_time_iso_8601"]
    assert iso.endswith("Z")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", iso), iso
    assert iso.startswith(f["upload_time"])
    assert isinstance(f["yanked"], bool)
    assert f["has_sig"] is False
    download = world.server.http.get(f["url"], timeout=30)
    assert download.status_code == 200
    assert download.content == body
    assert "Content-Encoding" not in download.headers


# --- T47 --------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["Foo.Bar", "FOO_bar", "foo--bar", "foo_bar"])
def test_t47_non_normalized_name_redirects(world: World, spelling: str) -> None:
    for suffix in ("json", "1.0/json"):
        response = world.get(f"{PYPI}/{spelling}/{suffix}")
        assert response.status_code == 301
        assert response.headers["Location"].endswith(f"{PYPI}/foo-bar/{suffix}")
        followed = world.get(f"{PYPI}/{spelling}/{suffix}", allow_redirects=True)
        assert followed.status_code == 200
        assert followed.url == world.server.url + f"{PYPI}/foo-bar/{suffix}"


def test_t47_project_route(world: World) -> None:
    data = world.json(f"{PYPI}/foo-bar/json")
    assert {"info", "last_serial", "releases", "urls", "vulnerabilities"} <= set(data)
    assert isinstance(data["last_serial"], int) and data["last_serial"] > 0
    assert data["vulnerabilities"] == []
    info = data["info"]
    assert set(info) >= INFO_KEYS, INFO_KEYS - set(info)
    assert info["name"] == "Foo.Bar"
    # 2.0 is yanked, so the latest is 1.0.
    assert info["version"] == "1.0"
    assert info["yanked"] is False and info["yanked_reason"] is None
    assert info["summary"] == "test package"
    assert info["requires_python"] == ">=3.8,<4"
    # Download counts of this server (docs/reliability.md WEB-6); other tests download.
    downloads = info["downloads"]
    assert set(downloads) == {"last_day", "last_week", "last_month"}
    assert 0 <= downloads["last_day"] <= downloads["last_week"] <= downloads["last_month"]
    assert info["bugtrack_url"] is None

    releases = data["releases"]
    assert set(releases) == {"1.0", "2.0"}
    assert sorted(f["filename"] for f in releases["1.0"]) == sorted([SDIST, WHEEL1])
    (yanked,) = releases["2.0"]
    assert yanked["filename"] == WHEEL2
    assert yanked["yanked"] is True
    assert yanked["yanked_reason"] == "bad build"
    for f in releases["1.0"]:
        assert f["yanked"] is False and f["yanked_reason"] is None
    # `urls` are the files of the release in `info`.
    assert sorted(f["filename"] for f in data["urls"]) == sorted([SDIST, WHEEL1])

    hashes = world.simple_hashes("foo-bar")
    for files in releases.values():
        for f in files:
            _check_file(world, f, hashes)
    wheel = next(f for f in releases["1.0"] if f["filename"] == WHEEL1)
    assert wheel["requires_python"] == ">=3.8,<4"


def test_t47_trailing_slash_is_served(world: World) -> None:
    assert world.json(f"{PYPI}/foo-bar/json/") == world.json(f"{PYPI}/foo-bar/json")
    assert world.json(f"{PYPI}/foo-bar/1.0/json/") == world.json(f"{PYPI}/foo-bar/1.0/json")


@pytest.mark.parametrize(
    ("project", "latest"),
    [("pre-proj", "1.0"), ("pre-only", "1.0b2"), ("all-yanked", "2.0"), ("foo-bar", "1.0")],
)
def test_t47_latest_version_choice(world: World, project: str, latest: str) -> None:
    # Highest version, preferring non-yanked releases first and final releases second.
    data = world.json(f"{PYPI}/{project}/json")
    assert data["info"]["version"] == latest
    assert {f["filename"].split("-")[1].removesuffix(".tar.gz") for f in data["urls"]} == {latest}


# --- T48 --------------------------------------------------------------------------


@pytest.mark.parametrize("asked", ["1.0", "1.0.0", "1.00", "v1.0", "1.0.0.0"])
def test_t48_version_route_matches_canonically(world: World, asked: str) -> None:
    data = world.json(f"{PYPI}/foo-bar/{asked}/json")
    assert "releases" not in data
    assert {"info", "last_serial", "urls", "vulnerabilities"} <= set(data)
    assert data["info"]["version"] == "1.0"
    assert data["info"]["name"] == "Foo.Bar"
    assert data["info"]["yanked"] is False
    assert data["vulnerabilities"] == []
    assert sorted(f["filename"] for f in data["urls"]) == sorted([SDIST, WHEEL1])
    hashes = world.simple_hashes("foo-bar")
    for f in data["urls"]:
        _check_file(world, f, hashes)
        assert f["packagetype"] in ("sdist", "bdist_wheel")
        assert f["upload_time_iso_8601"].endswith("Z")


def test_t48_exact_version_string_wins_over_canonical_twin(world: World) -> None:
    assert world.json(f"{PYPI}/twins/1.0/json")["info"]["version"] == "1.0"
    assert world.json(f"{PYPI}/twins/1.0.0/json")["info"]["version"] == "1.0.0"
    releases = world.json(f"{PYPI}/twins/json")["releases"]
    assert set(releases) == {"1.0", "1.0.0"}


def test_t48_yanked_version_route(world: World) -> None:
    data = world.json(f"{PYPI}/foo-bar/2.0/json")
    assert "releases" not in data
    info = data["info"]
    assert (info["version"], info["yanked"], info["yanked_reason"]) == ("2.0", True, "bad build")
    (f,) = data["urls"]
    assert f["filename"] == WHEEL2 and f["yanked"] is True and f["yanked_reason"] == "bad build"
    _check_file(world, f, world.simple_hashes("foo-bar"))


@pytest.mark.parametrize(
    "path",
    [
        "nope/json",
        "nope/json/",
        "nope/1.0/json",
        "foo-bar/9.9/json",
        "foo-bar/9.9/json/",
        "foo-bar/not-a-version/json",
        "foo-bar/3.0b1/json",
        "-bad-/json",
    ],
)
@pytest.mark.parametrize("accept", [None, "application/json"])
def test_t48_unknown_project_or_version_is_404_json(
    world: World, path: str, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = world.get(f"{PYPI}/{path}", headers=headers)
    assert response.status_code == 404
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.json() == {"message": "Not Found"}


def test_unknown_project_under_other_spelling_is_404_after_redirect(world: World) -> None:
    response = world.get(f"{PYPI}/No.Such_Thing/json", allow_redirects=True)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
