"""Consistency check of a server directory (RELIABILITY INV-1, INV-2):
the changelog's serials and hash chain, and every referenced blob present
with the content its sha256 names. Orphan blobs and temp files are listed,
not errors (a crash may leave them; `lockgate gc` removes them)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from lockgate.changelog.models import ChangelogEntry, ServerState
from lockgate.changelog.writer import GENESIS_HASH, canonical_json, entry_hash
from lockgate.db.session import Database
from lockgate.storage.blobs import SHA256_RE, BlobStore
from lockgate.storage.gc import referenced_blobs

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
    previous, expected_serial = GENESIS_HASH, 1
    async with db.read() as session:
        result = await session.stream(select(ChangelogEntry).order_by(ChangelogEntry.serial))
        async for (entry,) in result:
            report.entries += 1
            if entry.serial != expected_serial:
                report.problems.append(f"changelog: serial {expected_serial} missing")
                expected_serial = entry.serial
            if entry.prev_hash != previous:
                report.problems.append(f"changelog: entry {entry.serial} breaks the hash chain")
            payload = canonical_json(json.loads(entry.payload))
            if entry_hash(entry.prev_hash, entry.serial, entry.kind, payload) != entry.hash:
                report.problems.append(f"changelog: entry {entry.serial} does not match its hash")
            previous, expected_serial = entry.hash, expected_serial + 1
        state = (await session.execute(select(ServerState))).scalar_one()
    if state.serial != report.entries or state.last_hash != previous:
        report.problems.append(
            f"changelog: server state says serial {state.serial}, the log ends at {report.entries}"
        )


async def fsck(
    db: Database, blobs: BlobStore, progress: Callable[[int, int], None] | None = None
) -> FsckReport:
    report = FsckReport()
    await check_changelog(db, report)
    async with db.read() as session:
        refs = sorted(await referenced_blobs(session))
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
