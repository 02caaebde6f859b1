"""`lockgate export`: entries after a serial, and their blobs, into one bundle."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lockgate.changelog.codec import GENESIS_HASH, encode_line
from lockgate.changelog.registry import EntryRegistry
from lockgate.changelog.replay import entry_at, read_entries
from lockgate.changelog.writer import utcnow_iso
from lockgate.db.session import Database
from lockgate.db.state import require_state
from lockgate.storage.blobs import BlobStore
from lockgate.transfer.bundle import CHANGELOG, FORMAT, MANIFEST


class ExportError(Exception):
    pass


@dataclass(frozen=True)
class ExportResult:
    path: Path
    from_serial: int
    to_serial: int
    entries: int
    blobs: int


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


async def export_bundle(
    db: Database,
    blobs: BlobStore,
    registry: EntryRegistry,
    out: Path,
    since: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    async with db.read() as session:
        state = await require_state(session)
        if since < 0 or since > state.serial:
            raise ExportError(f"--since must be between 0 and {state.serial}, not {since}")
        from_hash = GENESIS_HASH
        if since:
            entry = await entry_at(session, since)
            if entry is None:
                raise ExportError(f"serial {since} is not in this server's changelog")
            from_hash = entry.hash
        entries = await read_entries(session, since)
    if not entries:
        raise ExportError(f"nothing to export: the changelog ends at serial {since}")
    lines = [encode_line(e) for e in entries]
    changelog = ("\n".join(lines) + "\n").encode("utf-8")
    needed = sorted({sha for e in entries for sha in registry.blobs(e.kind, e.payload)})
    sizes: dict[str, int] = {}
    for sha256 in needed:
        path = blobs.path(sha256)
        if not path.is_file():
            raise ExportError(f"blob {sha256} is missing on this server (run lockgate fsck)")
        sizes[sha256] = path.stat().st_size
    manifest = {
        "format": FORMAT,
        "source_server_id": state.server_id,
        "from_serial": since,
        "from_hash": from_hash,
        "to_serial": entries[-1].serial,
        "to_hash": entries[-1].hash,
        "changelog_sha256": hashlib.sha256(changelog).hexdigest(),
        "blobs": sizes,
        "created_at": utcnow_iso(),
    }
    temp = out.with_name(out.name + ".partial")
    with tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        _add_bytes(archive, CHANGELOG, changelog)
        for position, sha256 in enumerate(needed, 1):
            archive.add(blobs.path(sha256), arcname=f"blobs/{sha256}", recursive=False)
            if progress:
                progress(position, len(needed))
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    temp.replace(out)
    return ExportResult(out, since, entries[-1].serial, len(entries), len(needed))
