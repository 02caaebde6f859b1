"""Consistency check of a server directory (docs/reliability.md INV-1, INV-2):
the changelog's serials and hash chain, and every referenced blob present
with the content its sha256 names. Orphan blobs and temp files are listed,
not errors (a crash may leave them; `lockgate gc` removes them)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from lockgate.changelog.codec import ChainCursor
from lockgate.changelog.models import ChangelogEntry
from lockgate.changelog.registry import EntryRegistry
from lockgate.changelog.replay import entry_from_row
from lockgate.db.session import Database
from lockgate.db.state import require_state
from lockgate.storage.blobs import SHA256_RE, BlobStore

CHUNK = 1024 * 1024


@dataclass
class FsckReport:
    entries: int = 0
    blobs_checked: int = 0
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def check_changelog(db: Database, report: FsckReport) -> None:
    cursor = ChainCursor()
    async with db.read() as session:
        result = await session.stream(select(ChangelogEntry).order_by(ChangelogEntry.serial))
        async for (row,) in result:
            report.entries += 1
            report.problems.extend(f"changelog: {p}" for p in cursor.problems(entry_from_row(row)))
        state = await require_state(session)
    if state.serial != cursor.serial or state.last_hash != cursor.last_hash:
        report.problems.append(
            f"changelog: server state says serial {state.serial}, the log ends at {cursor.serial}"
        )


async def fsck(
    db: Database,
    blobs: BlobStore,
    registry: EntryRegistry,
    progress: Callable[[int, int], None] | None = None,
) -> FsckReport:
    report = FsckReport()
    await check_changelog(db, report)
    async with db.read() as session:
        refs = sorted(await registry.live_blobs(session))
    for position, sha256 in enumerate(refs, 1):
        if progress:
            progress(position, len(refs))
        path = blobs.path(sha256)
        if not path.is_file():
            report.problems.append(f"blob {sha256}: missing")
            continue
        actual = await asyncio.to_thread(_sha256_of, str(path))
        report.blobs_checked += 1
        if actual != sha256:
            report.problems.append(f"blob {sha256}: content has sha256 {actual} (corrupt)")
    known = set(refs)
    for path in sorted(blobs.root.glob("??/??/*")):
        if path.is_file() and (not SHA256_RE.match(path.name) or path.name not in known):
            report.orphans.append(path.name)
    report.temp_files = sorted(p.name for p in blobs.tmp.iterdir() if p.is_file())
    return report
