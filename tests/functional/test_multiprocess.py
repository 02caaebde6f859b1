"""Two server processes on one server directory and database (several workers,
or a CLI beside a live server): each sees the other's commits within a second."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.dists import make_wheel
from tests.support.server import Clients, LockgateServer

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def test_second_process_sees_uploads_without_restart(
    server: LockgateServer, clients: Clients, tmp_path: Path
) -> None:
    other = LockgateServer(server.serverdir, server.db_url).start()
    try:
        server.create_user("pat", "pat-pw")
        server.create_index("pat/dev", ("pat", "pat-pw"))
        first = make_wheel(tmp_path, "shared", "1.0")
        assert (
            clients.twine_upload(f"{server.url}/pat/dev/", [first], "pat", "pat-pw").returncode == 0
        )
        time.sleep(1)
        cached = other.get("/pat/dev/+simple/shared/", headers=JSON)  # now in its page cache
        assert [f["filename"] for f in cached.json()["files"]] == [first.name]
        second = make_wheel(tmp_path, "shared", "2.0")
        assert (
            clients.twine_upload(f"{server.url}/pat/dev/", [second], "pat", "pat-pw").returncode
            == 0
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            files = other.get("/pat/dev/+simple/shared/", headers=JSON).json()["files"]
            if len(files) == 2:
                break
            time.sleep(0.1)
        assert sorted(f["filename"] for f in files) == sorted([first.name, second.name])
        assert other.serial() == server.serial()
    finally:
        other.stop()
