"""Export and import across an air gap (docs/architecture.md "Export and import"):
a full bundle then an incremental one reproduce the source exactly; a
tampered, truncated, hostile or out-of-order bundle changes nothing."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_changelog_replay import (
    _digest,
    _fill_mirror_cache,
    _mutate_everything,
    _source_url,
)
from tests.support.dists import make_wheel
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import LOCKGATE, Clients, LockgateServer


def _lockgate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run([LOCKGATE, *args], capture_output=True, text=True, timeout=300, env=env)


def _comparable(digest: dict[str, Any]) -> dict[str, Any]:
    """State that must match after an import: not the target's own serials or import
    marks, and not when a user row was first created on each server."""
    state = {k: v for k, v in digest.items() if k not in ("serial", "last_hash", "imports")}
    state["users"] = sorted(row[:3] for row in digest["users"])
    return state


def _state(server: LockgateServer) -> dict[str, Any]:
    return _comparable(asyncio.run(_digest(_source_url(server))))


def _blob_names(server: LockgateServer) -> set[str]:
    return {p.name for p in (server.serverdir / "blobs").rglob("*") if p.is_file()}


def _rewrite(bundle: Path, out: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """Copy a bundle, passing each member through `change` (None drops it)."""
    with tarfile.open(bundle) as source, tarfile.open(out, "w") as target:
        for member in source.getmembers():
            handle = source.extractfile(member)
            data = change(member.name, handle.read() if handle else b"")
            if data is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture
def upstream(tmp_path: Path) -> FakeUpstream:
    fake = FakeUpstream(tmp_path / "upstream")
    fake.add_wheel("alpha", "1.0")
    fake.add_wheel("beta", "2.0", with_metadata=False)
    fake.add_sdist("beta", "2.0")
    return fake.start()


def test_full_then_incremental_round_trip_and_refusals(
    make_server: Callable[..., LockgateServer],
    upstream: FakeUpstream,
    clients: Clients,
    tmp_path: Path,
) -> None:
    try:
        source = make_server("source", upstream=upstream.url)
        _mutate_everything(source, clients, tmp_path)
        _fill_mirror_cache(source, upstream, tmp_path)
    finally:
        upstream.close()
    target = make_server("target")
    full = tmp_path / "full.tar"
    exported = _lockgate("export", "--serverdir", str(source.serverdir), str(full))
    assert exported.returncode == 0, exported.stderr
    imported = _lockgate("import", "--serverdir", str(target.serverdir), str(full))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert _state(target) == _state(source)
    checked = _lockgate("fsck", "--serverdir", str(target.serverdir))
    assert checked.returncode == 0, checked.stdout

    # The running target serves what it imported (the upstream is gone by now).
    installed = clients.pip_install(
        target.simple_url("alice/dev"), "shared-lib", "alpha==1.0", target=tmp_path / "t"
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # A week of changes, carried as an incremental bundle.
    upto = source.serial()
    newer = make_wheel(tmp_path, "Shared.Lib", "3.0")
    upload = clients.twine_upload(f"{source.url}/alice/dev/", [newer], "alice", "alice-pw")
    assert upload.returncode == 0, upload.stderr
    delta = tmp_path / "delta.tar"
    exported = _lockgate(
        "export", "--serverdir", str(source.serverdir), "--since", str(upto), str(delta)
    )
    assert exported.returncode == 0, exported.stderr
    with tarfile.open(delta) as archive:
        blobs = [m.name for m in archive.getmembers() if m.name.startswith("blobs/")]
    assert len(blobs) == 2, "only the new wheel and its metadata travel"

    # Refusals before the delta is applied: each changes nothing.
    serial, blobs_before = target.serial(), _blob_names(target)
    third = make_server("third")
    no_base = _lockgate("import", "--serverdir", str(third.serverdir), str(delta))
    assert no_base.returncode != 0 and "imported up to serial 0" in no_base.stderr

    def flip_blob(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name.startswith("blobs/") else data

    def evil_member(name: str, data: bytes) -> bytes:
        return data

    tampered = _rewrite(delta, tmp_path / "tampered.tar", flip_blob)
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(delta.read_bytes()[: delta.stat().st_size // 2])
    hostile = _rewrite(delta, tmp_path / "hostile.tar", evil_member)
    with tarfile.open(hostile, "a") as archive:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    for bad, phrases in (
        (tampered, ("corrupt",)),
        # Cut mid-archive: the reader sees either a broken archive or missing members.
        (truncated, ("damaged or truncated", "truncated", "differ from its manifest")),
        (hostile, ("unexpected member",)),
        (full, ("imported up to serial",)),
    ):
        refused = _lockgate("import", "--serverdir", str(target.serverdir), str(bad))
        assert refused.returncode != 0, bad
        assert any(p in refused.stderr for p in phrases), refused.stderr
        assert "nothing was changed" in refused.stderr
        assert target.serial() == serial and _blob_names(target) == blobs_before
        assert list((target.serverdir / "tmp").iterdir()) == []
    assert not (tmp_path / "outside.txt").exists()

    applied = _lockgate("import", "--serverdir", str(target.serverdir), str(delta))
    assert applied.returncode == 0, applied.stderr
    assert _state(target) == _state(source)
    again = _lockgate("import", "--serverdir", str(target.serverdir), str(delta))
    assert again.returncode != 0 and "imported up to serial" in again.stderr


def test_import_creates_a_missing_server_directory(
    make_server: Callable[..., LockgateServer], clients: Clients, tmp_path: Path
) -> None:
    """The closed side of an air gap needs one command: `lockgate import` on a server
    directory that does not exist yet initialises it (embedded SQLite) first."""
    source = make_server("source")
    source.create_user("alice", "alice-pw")
    source.create_index("alice/dev", ("alice", "alice-pw"))
    wheel = make_wheel(tmp_path, "carried", "1.0")
    upload = clients.twine_upload(f"{source.url}/alice/dev/", [wheel], "alice", "alice-pw")
    assert upload.returncode == 0, upload.stderr
    source.stop()
    bundle = tmp_path / "full.tar"
    assert _lockgate("export", "--serverdir", str(source.serverdir), str(bundle)).returncode == 0
    fresh = tmp_path / "inside" / "lockgate"
    imported = _lockgate("import", "--serverdir", str(fresh), str(bundle))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "Initialised" in imported.stdout and "Generated password" not in imported.stdout
    served = LockgateServer(fresh).start()
    try:
        page = served.get("/alice/dev/+simple/carried/", auth=("alice", "alice-pw"))
        assert page.status_code == 200 and wheel.name in page.text
    finally:
        served.stop()
