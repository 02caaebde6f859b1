"""Changelog entry kind of export/import: how far the bundles from one source
server have been imported (so the next bundle must continue exactly there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.transfer.models import ImportMark


@dataclass(frozen=True)
class ImportMarkSet(Payload):
    KIND = "import.mark"
    source_server_id: str
    serial: int
    hash: str
    imported_at: str

    async def apply(self, session: AsyncSession) -> None:
        mark = await session.get(ImportMark, self.source_server_id)
        if mark is None:
            mark = ImportMark(source_server_id=self.source_server_id)
            session.add(mark)
        mark.serial = self.serial
        mark.hash = self.hash
        mark.imported_at = self.imported_at
        await session.flush()


async def digest(session: AsyncSession) -> dict[str, Any]:
    marks = (await session.execute(select(ImportMark))).scalars()
    return {"imports": sorted((m.source_server_id, m.serial, m.hash, m.imported_at) for m in marks)}


def register(registry: EntryRegistry) -> None:
    registry.register(ImportMarkSet)
    registry.register_digest("transfer", digest)
