"""Garbage collection: forget mirrored files the upstream dropped (kept until
now for audit), then delete blobs nothing references and stale temp files.

Which blobs are referenced, the registry answers: every domain registers the
blobs its state holds. Blobs younger than `min_age` are kept whatever the
database says: a blob is written before the transaction that references it
commits, so a young unreferenced blob may belong to an upload in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lockgate.changelog.registry import EntryRegistry
from lockgate.db.session import Database
from lockgate.mirror.housekeeping import forget_unlisted_files, unlisted_blobs
from lockgate.storage.blobs import SHA256_RE, BlobStore, temp_in_use

DEFAULT_MIN_AGE = 3600.0


@dataclass
class GcReport:
    forgotten_files: int = 0
    blobs_removed: int = 0
    bytes_removed: int = 0
    blobs_kept: int = 0
    temp_removed: int = 0


async def collect_garbage(
    db: Database,
    blobs: BlobStore,
    registry: EntryRegistry,
    *,
    dry_run: bool = False,
    min_age: float = DEFAULT_MIN_AGE,
    progress: Callable[[int, int], None] | None = None,
) -> GcReport:
    report = GcReport()
    report.forgotten_files = await forget_unlisted_files(db, dry_run)
    async with db.read() as session:
        refs = await registry.live_blobs(session)
        if dry_run:
            # What the purge would release counts as unreferenced in a dry run.
            refs -= await unlisted_blobs(session)
    now = time.time()
    candidates = [p for p in blobs.root.glob("??/??/*") if p.is_file()]
    for position, path in enumerate(candidates, 1):
        if progress:
            progress(position, len(candidates))
        if not SHA256_RE.match(path.name) or path.name in refs:
            report.blobs_kept += 1
            continue
        stat = path.stat()
        if now - stat.st_mtime < min_age:
            report.blobs_kept += 1
            continue
        report.blobs_removed += 1
        report.bytes_removed += stat.st_size
        if not dry_run:
            path.unlink(missing_ok=True)
    for path in blobs.tmp.iterdir():
        if path.is_file() and not temp_in_use(path.name) and now - path.stat().st_mtime >= min_age:
            report.temp_removed += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    return report
