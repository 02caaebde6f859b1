"""Changelog entry kinds of the indexes domain: an index's configuration set,
an index deleted (its contents cascade in the schema)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.indexes.models import Index


async def index_row(session: AsyncSession, user: str, name: str) -> Index:
    """The index an entry names; entries only name indexes that exist at their serial."""
    return (
        await session.execute(select(Index).where(Index.user_name == user, Index.name == name))
    ).scalar_one()


async def index_paths(session: AsyncSession) -> dict[int, str]:
    """Row id → `user/index`, for digests that must not show row ids."""
    rows = (await session.execute(select(Index.id, Index.user_name, Index.name))).all()
    return {row_id: f"{user}/{name}" for row_id, user, name in rows}


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
