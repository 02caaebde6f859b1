"""Replaying a changelog into another database, and the state digest that proves
state == replay(changelog) (ARCHITECTURE core idea 1, RELIABILITY INV-3).

`apply_foreign_entry` is what a replica or an import uses: it applies an entry
written elsewhere under its original serial, after checking the hash chain so a
rewound or diverged history is refused instead of mixed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.models import User
from lockgate.changelog.models import ChangelogEntry, ServerState
from lockgate.changelog.projection import apply_entry
from lockgate.changelog.writer import canonical_json, entry_hash
from lockgate.indexes.models import Index
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProject, MirrorProjectList
from lockgate.packages.models import Project, Release, ReleaseFile
from lockgate.transfer.models import ImportMark


class ChainMismatch(ValueError):
    """An entry does not continue this database's history."""


@dataclass(frozen=True)
class Entry:
    serial: int
    created_at: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @staticmethod
    def from_row(row: ChangelogEntry) -> Entry:
        return Entry(
            row.serial, row.created_at, row.kind, json.loads(row.payload), row.prev_hash, row.hash
        )


async def read_entries(session: AsyncSession, since: int = 0) -> list[Entry]:
    rows = (
        await session.execute(
            select(ChangelogEntry)
            .where(ChangelogEntry.serial > since)
            .order_by(ChangelogEntry.serial)
        )
    ).scalars()
    return [Entry.from_row(row) for row in rows]


async def apply_foreign_entry(session: AsyncSession, entry: Entry) -> None:
    state = (
        await session.execute(select(ServerState).where(ServerState.id == 1).with_for_update())
    ).scalar_one()
    if entry.serial != state.serial + 1:
        raise ChainMismatch(f"expected serial {state.serial + 1}, got {entry.serial}")
    if entry.prev_hash != state.last_hash:
        raise ChainMismatch(
            f"entry {entry.serial} does not follow this history (previous hash differs)"
        )
    payload_json = canonical_json(entry.payload)
    if entry_hash(entry.prev_hash, entry.serial, entry.kind, payload_json) != entry.hash:
        raise ChainMismatch(f"entry {entry.serial} is corrupt (hash does not match its content)")
    session.add(
        ChangelogEntry(
            serial=entry.serial,
            created_at=entry.created_at,
            kind=entry.kind,
            payload=payload_json,
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )
    )
    state.serial = entry.serial
    state.last_hash = entry.hash
    await apply_entry(session, entry.kind, entry.payload)
    await session.flush()


async def state_digest(session: AsyncSession) -> dict[str, Any]:
    """Every state table by natural keys (no row ids), sorted, for comparison."""
    indexes = {
        i.id: f"{i.user_name}/{i.name}" for i in (await session.execute(select(Index))).scalars()
    }
    projects = {p.id: p for p in (await session.execute(select(Project))).scalars()}
    releases = {r.id: r for r in (await session.execute(select(Release))).scalars()}
    state = (await session.execute(select(ServerState))).scalar_one()
    mirror_tables = {
        table.__tablename__: sorted(
            (indexes[getattr(row, "index_id")], *_columns(row))  # noqa: B009 - tables differ
            for row in (await session.execute(select(table))).scalars()
        )
        for table in (MirrorProject, MirrorLink, MirrorCachedFile, MirrorProjectList)
    }
    imports = sorted(
        (m.source_server_id, m.serial, m.hash, m.imported_at)
        for m in (await session.execute(select(ImportMark))).scalars()
    )
    return {
        "imports": imports,
        **mirror_tables,
        "serial": state.serial,
        "last_hash": state.last_hash,
        "users": sorted(
            (u.name, u.password_hash, u.email, u.created_at)
            for u in (await session.execute(select(User))).scalars()
        ),
        "indexes": sorted(
            (i.user_name, i.name, i.type, i.config)
            for i in (await session.execute(select(Index))).scalars()
        ),
        "projects": sorted(
            (indexes[p.index_id], p.name, p.display_name) for p in projects.values()
        ),
        "releases": sorted(
            (
                indexes[projects[r.project_id].index_id],
                projects[r.project_id].name,
                r.version,
                r.yanked,
                r.yanked_reason or "",
                r.metadata_json,
                r.created_at,
            )
            for r in releases.values()
        ),
        "files": sorted(
            (
                indexes[f.index_id],
                f.filename,
                projects[releases[f.release_id].project_id].name,
                releases[f.release_id].version,
                f.sha256,
                f.blake2_256 or "",
                f.md5 or "",
                f.size,
                f.packagetype,
                f.python_version,
                f.requires_python or "",
                f.core_metadata_sha256 or "",
                f.upload_time,
                f.uploader or "",
            )
            for f in (await session.execute(select(ReleaseFile))).scalars()
        ),
    }


def _columns(row: Any) -> tuple[str, ...]:
    """Every column but row ids, as sortable strings."""
    return tuple(
        repr(getattr(row, column.key))
        for column in row.__table__.columns
        if column.key not in ("id", "index_id")
    )
