"""F-S1: the blob disk fills up during an upload: a clear 507, nothing stored,
and uploads work again once there is room, without a restart."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dists import make_wheel
from tests.support.server import Clients, LockgateServer, upload_form


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"this sandbox cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_upload_on_a_full_disk_is_507_and_stores_nothing(
    small_disk: Path, clients: Clients, tmp_path: Path
) -> None:
    server = LockgateServer(small_disk / "server").start()
    try:
        server.create_user("dee", "dee-pw")
        server.create_index("dee/dev", ("dee", "dee-pw"))
        serial = server.serial()
        big = make_wheel(tmp_path, "huge", "1.0", payload_size=16 * 1024 * 1024)
        with big.open("rb") as handle:
            response = server.request(
                "POST",
                "/dee/dev/",
                auth=("dee", "dee-pw"),
                data=upload_form("huge", "1.0", big),
                files={"content": (big.name, handle, "application/octet-stream")},
            )
        assert response.status_code == 507, response.text
        assert "storage is full" in response.text
        assert server.serial() == serial
        assert list((server.serverdir / "tmp").iterdir()) == []
        small = make_wheel(tmp_path, "tiny", "1.0")
        upload = clients.twine_upload(f"{server.url}/dee/dev/", [small], "dee", "dee-pw")
        assert upload.returncode == 0, upload.stdout + upload.stderr
    finally:
        server.stop()
