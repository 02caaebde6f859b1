"""Changelog entry kinds of the indexes domain: an index's configuration set,
an index deleted (its contents cascade in the schema)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import DropIndex

from lockgate.changelog.payloads import Payload, applying_foreign
from lockgate.changelog.registry import EntryRegistry
from lockgate.db.session import cache_only_so_far
from lockgate.indexes.models import INDEXES_LOWER_NAME, Index

log = structlog.get_logger("lockgate.indexes")


_INDEX_ROWS = "lockgate.index_rows"


async def index_row(session: AsyncSession, user: str, name: str) -> Index:
    """The index an entry names; entries only name indexes that exist at their serial.

    Within a transaction of cache-only entries (a group commit of mirror pages and
    files, none of which changes an index) the row is looked up once."""
    remember = cache_only_so_far(session)
    if remember:
        found: Index | None = session.info.setdefault(_INDEX_ROWS, {}).get((user, name))
        if found is not None:
            return found
    row = (
        await session.execute(select(Index).where(Index.user_name == user, Index.name == name))
    ).scalar_one()
    if remember:
        session.info[_INDEX_ROWS][(user, name)] = row
    return row


async def index_paths(session: AsyncSession) -> dict[int, str]:
    """Row id → `user/index`, for digests that must not show row ids."""
    rows = (await session.execute(select(Index.id, Index.user_name, Index.name))).all()
    return {row_id: f"{user}/{name}" for row_id, user, name in rows}


async def _admit_case_lookalike(session: AsyncSession, user: str, name: str) -> None:
    """Make room for an index whose name differs only in case from one of the same
    user's, when applying another server's entry (replica, import, replay).

    This server never writes such an entry: `create_index` refuses it, and the
    unique index on (user_name, lower(name)) stops one that slipped past. Applying
    the look-alikes of a server that held them before index names became
    case-insensitive leaves this database without that index, as that server is;
    `lockgate migrate` lists them and restores the index once they are resolved."""
    if not applying_foreign(session):
        return
    query = (
        select(Index.name)
        .where(Index.user_name == user, func.lower(Index.name) == name.lower())
        .limit(1)
    )
    existing = (await session.execute(query)).scalar_one_or_none()
    if existing is not None:
        log.warning(
            "applying an index name that differs only in case from an existing one; "
            "run `lockgate migrate` to list such names",
            index=f"{user}/{name}",
            existing=f"{user}/{existing}",
        )
        await session.execute(DropIndex(INDEXES_LOWER_NAME, if_exists=True))


@dataclass(frozen=True)
class IndexPut(Payload):
    """An index created or reconfigured; `config` is the validated stored form."""

    KIND = "index.put"
    user: str
    name: str
    type: str
    config: dict[str, Any]

    async def apply(self, session: AsyncSession) -> None:
        existing = (
            await session.execute(
                select(Index).where(Index.user_name == self.user, Index.name == self.name)
            )
        ).scalar_one_or_none()
        config = json.dumps(self.config, sort_keys=True)
        if existing is None:
            await _admit_case_lookalike(session, self.user, self.name)
            session.add(Index(user_name=self.user, name=self.name, type=self.type, config=config))
        else:
            existing.type = self.type
            existing.config = config
        await session.flush()


@dataclass(frozen=True)
class IndexDelete(Payload):
    KIND = "index.delete"
    user: str
    name: str

    async def apply(self, session: AsyncSession) -> None:
        # Everything the index holds goes with it through ON DELETE CASCADE
        # (SQLite enforces it: every connection turns foreign_keys on).
        await session.execute(
            delete(Index).where(Index.user_name == self.user, Index.name == self.name)
        )


async def digest(session: AsyncSession) -> dict[str, Any]:
    rows = (await session.execute(select(Index))).scalars()
    return {"indexes": sorted((i.user_name, i.name, i.type, i.config) for i in rows)}


def register(registry: EntryRegistry) -> None:
    registry.register(IndexPut, IndexDelete)
    registry.register_digest("indexes", digest)
