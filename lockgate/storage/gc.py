"""Garbage collection: forget mirrored files the upstream dropped (kept until
now for audit), then delete blobs nothing references and stale temp files.

Blobs younger than `min_age` are kept whatever the database says: a blob is
written before the transaction that references it commits, so a young
unreferenced blob may belong to an upload in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.writer import record
from lockgate.db.session import Database
from lockgate.indexes.models import Index
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProjectList
from lockgate.packages.models import ReleaseFile
from lockgate.storage.blobs import SHA256_RE, BlobStore, temp_in_use

DEFAULT_MIN_AGE = 3600.0


@dataclass
class GcReport:
    forgotten_files: int = 0
    blobs_removed: int = 0
    bytes_removed: int = 0
    blobs_kept: int = 0
    temp_removed: int = 0


async def referenced_blobs(session: AsyncSession) -> set[str]:
    refs: set[str] = set()
    for column in (
        ReleaseFile.sha256,
        ReleaseFile.core_metadata_sha256,
        MirrorCachedFile.sha256,
        MirrorCachedFile.core_metadata_sha256,
        MirrorProjectList.sha256,
    ):
        refs.update(v for v in (await session.execute(select(column))).scalars() if v)
    return refs


def _unlisted(*columns: Any) -> Select[Any]:
    """Cached mirror files whose upstream page no longer lists them."""
    return (
        select(*columns)
        .select_from(MirrorCachedFile)
        .outerjoin(
            MirrorLink,
            (MirrorLink.index_id == MirrorCachedFile.index_id)
            & (MirrorLink.filename == MirrorCachedFile.filename),
        )
        .where(MirrorLink.id.is_(None))
    )


async def forget_unlisted_mirror_files(db: Database, dry_run: bool) -> int:
    async with db.read() as session:
        rows = (
            await session.execute(
                _unlisted(Index.user_name, Index.name, MirrorCachedFile.filename).join(
                    Index, Index.id == MirrorCachedFile.index_id
                )
            )
        ).all()
    by_index: dict[tuple[str, str], list[str]] = {}
    for user, name, filename in rows:
        by_index.setdefault((user, name), []).append(filename)
    if not dry_run:
        for (user, name), filenames in by_index.items():
            async with db.write() as session:
                await record(
                    session,
                    "mirror.purge",
                    {"user": user, "index": name, "filenames": sorted(filenames)},
                )
    return len(rows)


async def collect_garbage(
    db: Database,
    blobs: BlobStore,
    *,
    dry_run: bool = False,
    min_age: float = DEFAULT_MIN_AGE,
    progress: Callable[[int, int], None] | None = None,
) -> GcReport:
    report = GcReport()
    report.forgotten_files = await forget_unlisted_mirror_files(db, dry_run)
    async with db.read() as session:
        refs = await referenced_blobs(session)
    if dry_run:
        # What the purge would release counts as unreferenced in a dry run.
        async with db.read() as session:
            refs -= await _unlisted_blobs(session)
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


async def _unlisted_blobs(session: AsyncSession) -> set[str]:
    rows = (
        await session.execute(
            _unlisted(MirrorCachedFile.sha256, MirrorCachedFile.core_metadata_sha256)
        )
    ).all()
    return {value for row in rows for value in row if value}
