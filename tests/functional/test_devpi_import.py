"""Coming from devpi (README "Coming from devpi: moving your data"): the real
devpi-server from PyPI is filled with users, indexes with inheritance, uploads by
twine (wheels and sdists), documentation, a push by devpi-client, a toxresult and
two yanks devpi makes itself (pushes of yanked releases from a devpi mirror);
`devpi-export` writes its directory and `lockgate import --from-devpi` brings it
into a fresh server on SQLite and PostgreSQL. Every simple page and every file
then match what devpi served, and the users log in with their devpi passwords.
Bad exports (a file missing, a file tampered with, an unknown format version)
are refused with a clear message and change nothing (docs/reliability.md DX-1..DX-7).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.functional.test_web_manage import Browserish, _signed_in_as
from tests.support.devpi import DevpiServer, devpi_venv
from tests.support.dists import make_sdist, make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import LOCKGATE, Clients, LockgateServer, server_events

# The first run builds devpi-server's environment (cached afterwards).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DEVPI_ROOT_PW = "devpi-root-pw"
ALICE_PW = "alice-devpi-pw"
BOB_PW = "bob-devpi-pw"
# Indexes of the scenario: alice/base <- alice/dev <- bob/feature.
INDEXES = ("alice/base", "alice/dev", "bob/feature")

# One simple page as a client sees it: file name -> (sha256, requires-python, yanked).
Page = dict[str, tuple[str, str | None, bool]]


def _lockgate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, timeout=600, env=env)


def _devpi_page(server: DevpiServer, index: str, project: str) -> Page:
    """devpi's HTML simple page, read as pip reads it."""
    text = requests.get(f"{server.url}/{index}/+simple/{project}/", timeout=60).text
    page: Page = {}
    for anchor in re.finditer(r"<a ([^>]*)>([^<]*)</a>", text):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', anchor.group(1)))
        sha256 = attrs["href"].split("#sha256=")[1]
        requires = attrs.get("data-requires-python")
        page[anchor.group(2)] = (
            sha256,
            html.unescape(requires) if requires else None,
            "data-yanked" in attrs,
        )
    return page


def _devpi_projects(server: DevpiServer, index: str) -> set[str]:
    text = requests.get(f"{server.url}/{index}/+simple/", timeout=60).text
    return {name for name in re.findall(r"<a [^>]*>([^<]*)</a>", text)}


def _lockgate_page(server: LockgateServer, index: str, project: str) -> Page:
    response = server.get(
        f"/{index}/+simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert response.status_code == 200, response.text
    return {
        f["filename"]: (f["hashes"]["sha256"], f.get("requires-python"), bool(f.get("yanked")))
        for f in response.json()["files"]
    }


def _lockgate_projects(server: LockgateServer, index: str) -> set[str]:
    response = server.get(
        f"/{index}/+simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert response.status_code == 200, response.text
    return {p["name"] for p in response.json()["projects"]}


def _doc_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", "<html><body>alpha docs</body></html>")
    return buffer.getvalue()


def _twine_to_devpi(
    clients: Clients, devpi: DevpiServer, index: str, user: str, pw: str, *files: Path
) -> None:
    result = clients.twine_upload(f"{devpi.url}/{index}/", list(files), user, pw)
    assert result.returncode == 0, result.stdout + result.stderr


def _fill_devpi(
    devpi: DevpiServer, clients: Clients, work: Path, upstream: FakeUpstream
) -> dict[str, Any]:
    root = devpi.login("root", DEVPI_ROOT_PW)
    devpi.request("PUT", "/alice", root, json={"password": ALICE_PW, "email": "alice@example.org"})
    devpi.request("PUT", "/bob", root, json={"password": BOB_PW})
    alice = devpi.login("alice", ALICE_PW)
    bob = devpi.login("bob", BOB_PW)
    devpi.request(
        "PUT", "/alice/base", alice, json={"type": "stage", "bases": [], "volatile": False}
    )
    devpi.request(
        "PUT",
        "/alice/dev",
        alice,
        json={
            "type": "stage",
            "bases": ["alice/base"],
            "volatile": True,
            "acl_upload": ["alice", "bob"],
            "mirror_whitelist": ["requests"],
        },
    )
    devpi.request("PUT", "/bob/feature", bob, json={"type": "stage", "bases": ["alice/dev"]})
    dists = work / "dists"
    _twine_to_devpi(
        clients,
        devpi,
        "alice/dev",
        "alice",
        ALICE_PW,
        make_wheel(dists, "alpha", "1.0", requires_python=">=3.8"),
        make_sdist(dists, "alpha", "1.0", requires_python=">=3.8"),
        make_wheel(dists, "alpha", "2.0", requires_python=">=3.9"),
    )
    # bob may upload to alice/dev (acl_upload); a legacy file name as well.
    _twine_to_devpi(
        clients, devpi, "alice/dev", "bob", BOB_PW, make_wheel(dists, "Beta_Pkg", "0.1")
    )
    _twine_to_devpi(clients, devpi, "bob/feature", "bob", BOB_PW, make_wheel(dists, "gamma", "3.0"))
    devpi.request(
        "POST",
        "/alice/dev/",
        alice,
        data={":action": "doc_upload", "name": "alpha", "version": "1.0"},
        files={"content": ("alpha-1.0.doc.zip", _doc_zip())},
    )
    # A push with devpi-client, as devpi users promote releases.
    clientdir = work / "devpi-client"
    devpi.client(clientdir, "use", f"{devpi.url}/alice/dev")
    devpi.client(clientdir, "login", "alice", "--password", ALICE_PW)
    devpi.client(clientdir, "push", "alpha==1.0", "alice/base")
    # A toxresult for the 1.0 wheel on alice/dev, posted to the file's URL.
    links = devpi.request("GET", "/alice/dev/alpha/1.0", {"Accept": "application/json"}).json()[
        "result"
    ]["+links"]
    wheel = next(link for link in links if link["href"].endswith("alpha-1.0-py3-none-any.whl"))
    toxresult = {
        "reportversion": "1",
        "toxversion": "3.28.0",
        "platform": "linux",
        "host": "ci",
        "installpkg": {
            "basename": "alpha-1.0-py3-none-any.whl",
            "sha256": wheel["hashes"]["sha256"],
        },
        "testenvs": {
            "py311": {
                "python": {"version": "3.11.7"},
                "test": [{"command": ["pytest"], "retcode": "0", "output": "3 passed"}],
            }
        },
    }
    devpi.request("POST", wheel["href"].split(devpi.url, 1)[1], alice, json=toxresult)
    # Yanks made by devpi: devpi-server 6.20 has no yank command, and its stage
    # indexes serve no PEP 592 yank, but a mirror index keeps its upstream's yank in
    # the version metadata and a push copies that metadata to the stage index, where
    # devpi's version JSON and devpi-export keep it. A mirror on a loopback fake
    # upstream (never PyPI), read as pip would, then devpi-client's push from it; the
    # mirror is deleted again (devpi exports no mirrored files anyway).
    devpi.request(
        "PUT", "/root/upstream", root, json={"type": "mirror", "mirror_url": upstream.url}
    )
    devpi.request("GET", "/root/upstream/+simple/delta/", {})
    for version in ("0.9", "1.0"):
        devpi.client(
            clientdir, "push", "--index", "root/upstream", f"delta=={version}", "alice/dev"
        )
    devpi.request("DELETE", "/root/upstream", root)
    json_accept = {"Accept": "application/json"}
    return {
        version: devpi.request("GET", f"/alice/dev/delta/{version}", json_accept)
        .json()["result"]
        .get("yanked")
        for version in ("0.9", "1.0")
    }


@pytest.fixture(scope="module")
def devpi_export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The devpi scenario, exported; and what devpi served: every index's project
    list, every simple page, every file's bytes (by sha256)."""
    work = tmp_path_factory.mktemp("devpi")
    upstream = FakeUpstream(work / "upstream").start()
    upstream.add_wheel("delta", "0.9", yanked=True)  # a yank without a reason
    upstream.add_wheel("delta", "1.0", yanked="broken build")
    upstream.add_wheel("delta", "1.1")
    devpi = DevpiServer(devpi_venv(), work / "serverdir", DEVPI_ROOT_PW, offline=False).start()
    clients = Clients(work)
    served: dict[str, Any] = {"projects": {}, "pages": {}, "files": {}}
    try:
        served["devpi_yanked"] = _fill_devpi(devpi, clients, work, upstream)
        for index in INDEXES:
            projects = _devpi_projects(devpi, index)
            served["projects"][index] = projects
            for project in projects:
                page = _devpi_page(devpi, index, project)
                served["pages"][(index, project)] = page
        # Every file's bytes, through devpi's own file URLs.
        for index in INDEXES:
            for project in served["projects"][index]:
                text = requests.get(f"{devpi.url}/{index}/+simple/{project}/", timeout=60).text
                for href in re.findall(r'href="([^"#]+)#', text):
                    url = requests.compat.urljoin(f"{devpi.url}/{index}/+simple/{project}/", href)
                    data = requests.get(url, timeout=60).content
                    served["files"][hashlib.sha256(data).hexdigest()] = data
    finally:
        devpi.stop()
        upstream.stop()
    export = work / "export"
    result = devpi.export(export)
    assert result.returncode == 0, result.stdout + result.stderr
    yield export, served


def _import(serverdir: Path, export: Path, db_url: str | None) -> subprocess.CompletedProcess[str]:
    args = ["import", "--serverdir", str(serverdir), "--from-devpi", str(export)]
    if db_url:
        # A new server directory on PostgreSQL: initialise it with the database first.
        init = _lockgate(
            "init", "--serverdir", str(serverdir), "--db", db_url, "--root-password", "x"
        )
        assert init.returncode == 0, init.stderr
    return _lockgate(*args)


def test_devpi_export_imports_with_every_page_and_file(
    devpi_export: tuple[Path, dict[str, Any]],
    make_db_url: Callable[[], str | None],
    clients: Clients,
    tmp_path: Path,
) -> None:
    """DX-1, DX-2, DX-3, DX-7: everything devpi served is served the same way (and the
    yanks devpi kept in version metadata are PEP 592 yanks)."""
    export, served = devpi_export
    serverdir = tmp_path / "server"
    db_url = make_db_url()
    result = _import(serverdir, export, db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "3 users, 3 indexes, 5 projects, 7 releases, 9 files, 2 yanks" in out, out
    assert "1 test results" in out, out
    # devpi's docs are verified, checked as an upload's are, and kept with the release.
    # (two: devpi copied the docs along with the push, as lockgate does)
    assert "1 test results, 2 documentation zips" in out, out
    assert "documentation not imported" not in out, out

    server = LockgateServer(serverdir, db_url)
    server.start(timeout=180)
    try:
        docs = server.get("/alice/dev/alpha/1.0/+doc/index.html")
        assert docs.status_code == 200, docs.text
        assert docs.text == "<html><body>alpha docs</body></html>"
        assert docs.headers["Content-Security-Policy"].startswith("sandbox")
        for index in INDEXES:
            assert _lockgate_projects(server, index) == {
                re.sub(r"[-_.]+", "-", p).lower() for p in served["projects"][index]
            }
            for project in served["projects"][index]:
                expected = dict(served["pages"][(index, project)])
                if project == "delta":
                    # devpi keeps the yanks in the version metadata but serves its stage
                    # pages without them; lockgate serves them as PEP 592 yanks.
                    expected = {name: (sha, rp, True) for name, (sha, rp, _) in expected.items()}
                assert _lockgate_page(server, index, project) == expected, (
                    index,
                    project,
                )
        # Every file's bytes, from lockgate's URLs.
        seen = set()
        for index in INDEXES:
            for project in served["projects"][index]:
                response = server.get(
                    f"/{index}/+simple/{project}/",
                    headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                )
                for f in response.json()["files"]:
                    data = requests.get(
                        requests.compat.urljoin(
                            server.url + f"/{index}/+simple/{project}/", f["url"]
                        ),
                        timeout=60,
                    ).content
                    assert hashlib.sha256(data).hexdigest() == f["hashes"]["sha256"]
                    assert served["files"][f["hashes"]["sha256"]] == data
                    seen.add(f["hashes"]["sha256"])
        assert seen == set(served["files"])
        # Index settings carried: type, bases, volatile, acl_upload, mirror_whitelist.
        dev = server.get("/alice/dev", headers={"Accept": "application/json"}).json()["result"]
        assert dev["bases"] == ["alice/base"]
        assert dev["acl_upload"] == ["alice", "bob"]
        assert dev["mirror_whitelist"] == ["requests"]
        base = server.get("/alice/base", headers={"Accept": "application/json"}).json()["result"]
        assert base["volatile"] is False
        # The toxresult is a test result of the wheel it was posted for.
        info = server.get("/alice/dev/pypi/alpha/1.0/json").json()
        wheel = next(u for u in info["urls"] if u["filename"] == "alpha-1.0-py3-none-any.whl")
        assert [(r["environment"], r["outcome"]) for r in wheel["test_results"]] == [
            ("py311", "passed")
        ]
        # DX-7: the yanks devpi made (pushed from its mirror) are PEP 592 yanks, with
        # devpi's reason where it had one.
        assert served["devpi_yanked"] == {"0.9": True, "1.0": "broken build"}
        for version, reason in (("0.9", None), ("1.0", "broken build")):
            shown = server.get(f"/alice/dev/pypi/delta/{version}/json").json()
            assert [(u["yanked"], u["yanked_reason"]) for u in shown["urls"]] == [(True, reason)]
        simple = server.get(
            "/alice/dev/+simple/delta/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        ).json()
        assert {f["filename"]: f["yanked"] for f in simple["files"]} == {
            "delta-0.9-py3-none-any.whl": True,
            "delta-1.0-py3-none-any.whl": "broken build",
        }
        # devpi-client's push arrives as a push: alice/base shows where 1.0 came from.
        pushed = server.get("/alice/base/pypi/alpha/1.0/json").json()["urls"]
        assert {u["pushed_from"] for u in pushed} == {"alice/dev"}
        assert {u["uploader"] for u in pushed} == {"alice"}
        # The users log in with their devpi passwords: twine uploads, pip installs.
        new = make_wheel(tmp_path / "new", "alpha", "3.0", requires_python=">=3.8")
        upload = clients.twine_upload(server.url + "/alice/dev/", [new], "alice", ALICE_PW)
        assert upload.returncode == 0, upload.stdout + upload.stderr
        assert server.get("/alice/+tokens", auth=("alice", "wrong")).status_code == 401
        assert server.get("/bob/+tokens", auth=("bob", BOB_PW)).status_code == 200
        # The first login replaced devpi's hash by lockgate's own; the password stays.
        assert any(e.get("event") == "rehashed an imported password" for e in server_events(server))
        again = clients.twine_upload(
            server.url + "/alice/dev/",
            [make_wheel(tmp_path / "new", "alpha", "3.1")],
            "alice",
            ALICE_PW,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        installed = clients.pip_install(
            server.simple_url("bob/feature"), "alpha==1.0", "gamma", target=tmp_path / "t"
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def _copy(export: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(export, copy)
    return copy


def _rewrite_index(export: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = export / "dataindex.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _files(data: dict[str, Any], index: str) -> list[dict[str, Any]]:
    return data["indexes"][index]["files"]


def test_bad_devpi_exports_change_nothing(
    devpi_export: tuple[Path, dict[str, Any]],
    make_db_url: Callable[[], str | None],
    tmp_path: Path,
) -> None:
    """DX-4: a missing file, a tampered file, an unknown format version, a toxresult
    or doc tampered with — each refused, saying what, with nothing imported."""
    export, _ = devpi_export
    serverdir = tmp_path / "server"
    db_url = make_db_url()
    init = ["init", "--serverdir", str(serverdir), "--root-password", "root-pw"]
    assert _lockgate(*init, *(["--db", db_url] if db_url else [])).returncode == 0

    missing = _copy(export, tmp_path, "missing")
    gone = _files(json.loads((missing / "dataindex.json").read_text()), "alice/dev")[0]["relpath"]
    (missing / gone).unlink()

    tampered = _copy(export, tmp_path, "tampered")
    wheel = next(
        f["relpath"]
        for f in _files(json.loads((tampered / "dataindex.json").read_text()), "alice/base")
        if f["relpath"].endswith(".whl")
    )
    with (tampered / wheel).open("ab") as handle:
        handle.write(b"\0")

    doc = _copy(export, tmp_path, "doc")
    doc_path = next(
        f["relpath"]
        for f in _files(json.loads((doc / "dataindex.json").read_text()), "alice/dev")
        if f["type"] == "doczip"
    )
    (doc / doc_path).write_bytes(_doc_zip() + b"x")

    # Docs whose hashes devpi recorded faithfully, but which hold a path trick: refused by
    # the same checks as a documentation upload (docs/reliability.md DOC-2).
    hostile = _copy(export, tmp_path, "hostile")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.html", "<html>out</html>")
    hostile_zip = buffer.getvalue()

    def _rehash_doc(data: dict[str, Any]) -> None:
        entry = next(f for f in _files(data, "alice/dev") if f["type"] == "doczip")
        (hostile / entry["relpath"]).write_bytes(hostile_zip)
        mapping = entry["entrymapping"]
        digests = {name: hashlib.new(name, hostile_zip).hexdigest() for name in ("sha256", "md5")}
        if isinstance(mapping.get("hashes"), dict):
            mapping["hashes"] = {k: digests[k] for k in mapping["hashes"] if k in digests}
        for key in ("hash_spec", "_hash_spec"):
            if isinstance(mapping.get(key), str):
                name = mapping[key].partition("=")[0]
                mapping[key] = f"{name}={hashlib.new(name, hostile_zip).hexdigest()}"
        if isinstance(mapping.get("md5"), str):
            mapping["md5"] = digests["md5"]

    _rewrite_index(hostile, _rehash_doc)

    version = _copy(export, tmp_path, "version")
    _rewrite_index(version, lambda d: d.update(dumpversion="99"))

    outside = _copy(export, tmp_path, "outside")
    _rewrite_index(
        outside, lambda d: _files(d, "alice/dev")[0].update(relpath="../../../etc/passwd")
    )

    symlink = _copy(export, tmp_path, "symlink")
    linked = _files(json.loads((symlink / "dataindex.json").read_text()), "bob/feature")[0]
    outside_file = tmp_path / "outside.whl"
    outside_file.write_bytes((symlink / linked["relpath"]).read_bytes())
    (symlink / linked["relpath"]).unlink()
    (symlink / linked["relpath"]).symlink_to(outside_file)

    plugin = _copy(export, tmp_path, "plugin")
    _rewrite_index(
        plugin, lambda d: d["indexes"]["alice/dev"]["indexconfig"].update(type="constrained")
    )

    cases = {
        missing: f"the export lists {gone}, but the file is missing",
        tampered: "does not match the sha256 devpi recorded for it",
        doc: "alpha-1.0.doc.zip does not match the sha256 devpi recorded",
        hostile: "the documentation of alpha 1.0",
        version: "unsupported devpi export format: dumpversion '99'",
        outside: "leads outside the export",
        symlink: f"file path {linked['relpath']!r} in dataindex.json leads outside the export",
        plugin: "has type 'constrained' (a devpi plugin's)",
        tmp_path / "nowhere": "is not a directory",
        tmp_path: "holds no dataindex.json",
    }
    blobs_before = sorted(p.name for p in (serverdir / "blobs").rglob("*") if p.is_file())
    for path, message in cases.items():
        result = _lockgate("import", "--serverdir", str(serverdir), "--from-devpi", str(path))
        assert result.returncode == 1, (path, result.stdout)
        assert "devpi import refused, nothing was changed" in result.stderr, result.stderr
        assert message in result.stderr, (message, result.stderr)
        assert "Traceback" not in result.stderr
    # Nothing changed: no user, no index, no blob, no temp file left behind.
    blobs_after = sorted(p.name for p in (serverdir / "blobs").rglob("*") if p.is_file())
    assert blobs_after == blobs_before
    assert not [p for p in (serverdir / "tmp").iterdir()]
    server = LockgateServer(serverdir, db_url)
    server.start(timeout=180)
    try:
        assert server.get("/alice").status_code == 404
        serial = server.serial()
    finally:
        server.stop()
    # The good export still imports into that server afterwards.
    result = _lockgate("import", "--serverdir", str(serverdir), "--from-devpi", str(export))
    assert result.returncode == 0, result.stderr
    # ... and a second time is refused: the users exist now (DX-5).
    again = _lockgate("import", "--serverdir", str(serverdir), "--from-devpi", str(export))
    assert again.returncode == 1
    assert "this server already has user 'alice'" in again.stderr, again.stderr
    assert serial >= 1


def test_devpi_password_formats_yanks_and_odd_settings(
    devpi_export: tuple[Path, dict[str, Any]],
    make_server: Callable[..., LockgateServer],
    tmp_path: Path,
) -> None:
    """DX-6: devpi's older salted sha256 logs in; a hash lockgate cannot verify is
    listed for a reset (that user cannot log in with anything); a yank devpi keeps
    in a version's metadata is a yank; settings lockgate lacks are listed."""
    export, _ = devpi_export
    variant = _copy(export, tmp_path, "variant")
    salt = "c2FsdHNhbHRzYWx0c2FsdA=="

    def change(data: dict[str, Any]) -> None:
        data["users"]["carol"] = {
            "username": "carol",
            "pwsalt": salt,
            "pwhash": hashlib.sha256((salt + "carol-old-pw").encode()).hexdigest(),
        }
        data["users"]["dave"] = {"username": "dave", "pwhash": "{SSHA}not-a-devpi-hash"}
        # A yank in a version's metadata as devpi keeps it (beside the two the
        # scenario's pushes from devpi's mirror made).
        data["indexes"]["alice/dev"]["projects"]["alpha"]["2.0"]["yanked"] = "broken build"
        data["indexes"]["alice/dev"]["indexconfig"]["mirror_whitelist_inheritance"] = "union"
        # devpi's root/pypi (devpi-init without --no-root-pypi), exported with
        # --include-mirrored-files: its settings come, its cached files do not.
        data["indexes"]["root/pypi"] = {
            "indexconfig": {
                "type": "mirror",
                "mirror_url": "https://pypi.example.org/simple/",
                "mirror_cache_expiry": 600,
                "mirror_web_url_fmt": "https://pypi.example.org/project/{name}/",
                "volatile": False,
                "title": "PyPI",
            },
            "projects": {"six": {"1.16.0": {"name": "six", "version": "1.16.0"}}},
            "files": [
                {
                    "type": "releasefile",
                    "projectname": "six",
                    "version": "1.16.0",
                    "relpath": "root/pypi/+f/six-1.16.0-py2.py3-none-any.whl",
                }
            ],
        }

    _rewrite_index(variant, change)
    server = make_server("target")
    server.stop()
    result = _lockgate("import", "--serverdir", str(server.serverdir), "--from-devpi", str(variant))
    assert result.returncode == 0, result.stderr
    assert "3 yanks" in result.stdout, result.stdout
    assert "cannot be carried (set a new password for each" in result.stdout
    assert ": dave" in result.stdout, result.stdout
    assert 'mirror_whitelist_inheritance="union"' in result.stdout, result.stdout
    assert "files of devpi mirror indexes not imported" in result.stdout, result.stdout
    server.start(timeout=180)
    assert server.get("/carol/+tokens", auth=("carol", "carol-old-pw")).status_code == 200
    assert server.get("/carol/+tokens", auth=("carol", "wrong")).status_code == 401
    assert server.get("/dave/+tokens", auth=("dave", "{SSHA}not-a-devpi-hash")).status_code == 401
    # A browser login with a devpi password works, and binds the session to lockgate's
    # own hash at once: a later Basic login (no rehash left to do) keeps it signed in.
    visitor = Browserish(server)
    assert visitor.login("bob", BOB_PW).status_code == 303
    assert _signed_in_as(server, visitor.cookie)
    assert server.get("/bob/+tokens", auth=("bob", BOB_PW)).status_code == 200
    assert _signed_in_as(server, visitor.cookie)
    page = _lockgate_page(server, "alice/dev", "alpha")
    assert page["alpha-2.0-py3-none-any.whl"][2] is True
    assert page["alpha-1.0-py3-none-any.whl"][2] is False
    pypi = server.get("/root/pypi", headers={"Accept": "application/json"}).json()["result"]
    assert (pypi["mirror_url"], pypi["mirror_cache_expiry"], pypi["title"]) == (
        "https://pypi.example.org/simple/",
        600,
        "PyPI",
    )
    info = server.get("/alice/dev/pypi/alpha/2.0/json").json()
    assert info["urls"][0]["yanked_reason"] == "broken build"
