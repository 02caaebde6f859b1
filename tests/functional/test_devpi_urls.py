"""devpi's index URLs without `+simple/` (docs and guides give installers the index
URL itself): pip and uv install through `/{user}/{index}` and `/{user}/{index}/`,
being redirected to the simple page; JSON clients (devpi-client) get devpi's project
JSON. Both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.server import Clients, LockgateServer

pytestmark = pytest.mark.e2e

ALICE = ("alice", "alice-pw")


def test_pip_and_uv_with_devpi_style_index_urls(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    server.create_user(*ALICE)
    server.create_index("alice/dev", ALICE)
    wheel = make_wheel(tmp_path, "Devpi.Style", "1.0")
    result = clients.twine_upload(f"{server.url}/alice/dev/", [wheel], *ALICE)
    assert result.returncode == 0, result.stdout + result.stderr
    for number, index_url in enumerate((f"{server.url}/alice/dev", f"{server.url}/alice/dev/")):
        installed = clients.pip_install(index_url, "devpi-style", target=tmp_path / f"p{number}")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        installed = clients.uv_install(index_url, "devpi-style", target=tmp_path / f"u{number}")
        assert installed.returncode == 0, installed.stdout + installed.stderr
    for path in ("/alice/dev/Devpi.Style/", "/alice/dev/devpi-style"):
        answer = server.get(path, allow_redirects=False, headers={"Accept": "text/html"})
        assert answer.status_code == 302
        assert answer.headers["Location"] == "/alice/dev/+simple/devpi-style/"
    # devpi-client asks there for devpi's project JSON (tests/functional/test_devpi_client.py)
    as_json = server.get("/alice/dev/devpi-style/", headers={"Accept": "application/json"})
    assert as_json.status_code == 200 and as_json.json()["type"] == "projectconfig"
    assert list(as_json.json()["result"]) == ["1.0"]
