"""Changelog entry kinds of the hooks domain: a hook configured or removed, and
deliveries the primary made (so a promoted replica does not send them again)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.db.state import require_state
from lockgate.hooks.models import Hook, HookDelivered
from lockgate.indexes.entries import index_paths, index_row


@dataclass(frozen=True)
class HookPut(Payload):
    """A hook created or changed; `config` holds its kind's settings and secrets."""

    KIND = "hook.put"
    user: str
    index: str
    name: str
    kind: str
    config: dict[str, Any]
    events: tuple[str, ...]

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        hook = (
            await session.execute(
                select(Hook).where(Hook.index_id == index.id, Hook.name == self.name)
            )
        ).scalar_one_or_none()
        if hook is None:
            # The state row already carries this entry's serial (record() and replay
            # advance it before applying): only entries after it trigger the hook.
            hook = Hook(
                index_id=index.id,
                name=self.name,
                created_serial=(await require_state(session)).serial,
            )
            session.add(hook)
        hook.kind = self.kind
        hook.config = json.dumps(self.config, sort_keys=True)
        hook.events = json.dumps(list(self.events))
        await session.flush()


@dataclass(frozen=True)
class HookDelete(Payload):
    KIND = "hook.delete"
    user: str
    index: str
    name: str

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        await session.execute(delete(Hook).where(Hook.index_id == index.id, Hook.name == self.name))


@dataclass(frozen=True)
class HookDeliveredSet(Payload):
    """Deliveries the primary made (2xx from the target)."""

    KIND = "hook.delivered"
    ids: tuple[str, ...]
    delivered_at: str

    async def apply(self, session: AsyncSession) -> None:
        for delivery_id in self.ids:
            if await session.get(HookDelivered, delivery_id) is None:
                session.add(HookDelivered(delivery_id=delivery_id, delivered_at=self.delivered_at))
        await session.flush()


async def digest(session: AsyncSession) -> dict[str, Any]:
    indexes = await index_paths(session)
    hooks = (await session.execute(select(Hook))).scalars()
    delivered = (await session.execute(select(HookDelivered))).scalars()
    return {
        "hooks": sorted(
            (indexes[h.index_id], h.name, h.kind, h.config, h.events, h.created_serial)
            for h in hooks
        ),
        "hook_delivered": sorted((d.delivery_id, d.delivered_at) for d in delivered),
    }


def register(registry: EntryRegistry) -> None:
    registry.register(HookPut, HookDelete, HookDeliveredSet)
    registry.register_digest("hooks", digest)
