"""Changelog entry kinds of the namespaces domain: a namespace reserved (or given
to another owner), a namespace released."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.namespaces.models import Namespace


@dataclass(frozen=True)
class NamespacePut(Payload):
    """A namespace reserved for `owner`, or given to another owner."""

    KIND = "namespace.put"
    name: str  # normalized, e.g. "acme"
    display: str  # as reserved, e.g. "acme-"
    owner: str
    created_at: str

    async def apply(self, session: AsyncSession) -> None:
        row = await session.get(Namespace, self.name)
        if row is None:
            row = Namespace(name=self.name)
            session.add(row)
        row.display = self.display
        row.owner = self.owner
        row.created_at = self.created_at
        await session.flush()


@dataclass(frozen=True)
class NamespaceDelete(Payload):
    """A namespace released: its names are open to everybody again."""

    KIND = "namespace.delete"
    name: str

    async def apply(self, session: AsyncSession) -> None:
        await session.execute(delete(Namespace).where(Namespace.name == self.name))


async def digest(session: AsyncSession) -> dict[str, Any]:
    rows = (await session.execute(select(Namespace))).scalars()
    return {"namespaces": sorted((n.name, n.display, n.owner, n.created_at) for n in rows)}


def register(registry: EntryRegistry) -> None:
    registry.register(NamespacePut, NamespaceDelete)
    registry.register_digest("namespaces", digest)
