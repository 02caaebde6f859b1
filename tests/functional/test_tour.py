"""The README tour end to end: user, index, twine upload, pip and uv install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.dists import make_sdist, make_wheel
from tests.support.server import Clients, LockgateServer


def _import_version(target: Path, module: str) -> str:
    code = (
        f"import sys; sys.path.insert(0, {str(target)!r}); "
        f"import {module}; print({module}.__version__)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_upload_with_twine_then_install_with_pip_and_uv(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    server.create_user("alice", "alice-pw", "alice@example.org")
    server.create_index("alice/dev", ("alice", "alice-pw"), bases=["root/pypi"])
    dist = tmp_path / "dist"
    dist.mkdir()
    files = [
        make_wheel(dist, "Acme.Utils", "1.0", requires_python=">=3.8"),
        make_sdist(dist, "Acme.Utils", "1.0"),
        make_wheel(dist, "acme-app", "2.0", requires_dist=["acme-utils>=1.0"]),
    ]
    upload = clients.twine_upload(f"{server.url}/alice/dev/", files, "alice", "alice-pw")
    assert upload.returncode == 0, upload.stdout + upload.stderr

    pip = clients.pip_install(server.simple_url("alice/dev"), "acme-app", target=tmp_path / "p")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert _import_version(tmp_path / "p", "acme_app") == "2.0"
    assert _import_version(tmp_path / "p", "acme_utils") == "1.0"

    uv = clients.uv_install(server.simple_url("alice/dev"), "acme-app", target=tmp_path / "u")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert _import_version(tmp_path / "u", "acme_app") == "2.0"

    # A child index sees its parent's releases through inheritance.
    server.create_index("alice/feature", ("alice", "alice-pw"), bases=["alice/dev"])
    pip = clients.pip_install(
        server.simple_url("alice/feature"), "acme-utils==1.0", target=tmp_path / "c"
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr


def test_identical_reupload_is_a_no_op_and_non_volatile_refuses_overwrite(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    server.create_user("bob", "bob-pw")
    server.create_index("bob/prod", ("bob", "bob-pw"), volatile=False)
    first = make_wheel(tmp_path, "thing", "1.0")
    assert clients.twine_upload(f"{server.url}/bob/prod/", [first], "bob", "bob-pw").returncode == 0
    serial = server.serial()
    # Identical bytes again: a no-op success, no new changelog entry.
    again = clients.twine_upload(f"{server.url}/bob/prod/", [first], "bob", "bob-pw")
    assert again.returncode == 0, again.stdout + again.stderr
    assert server.serial() == serial
    # Different bytes under the same name on a non-volatile index: refused.
    other = tmp_path / "other"
    other.mkdir()
    changed = make_wheel(other, "thing", "1.0", summary="changed")
    refused = clients.twine_upload(f"{server.url}/bob/prod/", [changed], "bob", "bob-pw")
    assert refused.returncode != 0
    assert "File already exists" in refused.stdout + refused.stderr
    assert server.serial() == serial


def test_files_carry_their_sha256_as_a_strong_etag(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    server.create_user("eta", "eta-pw")
    server.create_index("eta/dev", ("eta", "eta-pw"))
    wheel = make_wheel(tmp_path, "tagged", "1.0")
    assert clients.twine_upload(f"{server.url}/eta/dev/", [wheel], "eta", "eta-pw").returncode == 0
    page = server.get(
        "/eta/dev/+simple/tagged/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    ).json()
    (file,) = page["files"]
    url = "/eta/dev/+simple/tagged/" + file["url"]
    for _ in range(2):  # the second answer comes from the in-memory lookup
        response = server.get(url, allow_redirects=True)
        assert response.headers["ETag"] == f'"{file["hashes"]["sha256"]}"'
    again = server.get(
        url, allow_redirects=True, headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304
