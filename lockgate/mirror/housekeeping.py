"""Forgetting cached mirror files the upstream no longer lists (kept until now
for audit); `lockgate gc` calls this before it sweeps unreferenced blobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import SYSTEM
from lockgate.changelog.writer import record_alone
from lockgate.db.session import Database
from lockgate.indexes.models import Index
from lockgate.mirror.entries import MirrorPurge
from lockgate.mirror.models import MirrorCachedFile, MirrorLink


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


async def forget_unlisted_files(db: Database, dry_run: bool) -> int:
    """Record a `mirror.purge` per index for its unlisted cached files; their count."""
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
            await record_alone(
                db,
                MirrorPurge(user=user, index=name, filenames=tuple(sorted(filenames))),
                SYSTEM,
            )
    return len(rows)


async def unlisted_blobs(session: AsyncSession) -> set[str]:
    """The blobs `forget_unlisted_files` would release."""
    rows = (
        await session.execute(
            _unlisted(MirrorCachedFile.sha256, MirrorCachedFile.core_metadata_sha256)
        )
    ).all()
    return {value for row in rows for value in row if value}
