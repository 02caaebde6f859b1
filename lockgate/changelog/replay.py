"""Reading the changelog, applying entries written elsewhere, and the state digest
that proves state == replay(changelog) (docs/reliability.md INV-3).

`apply_foreign_entry` is what a replica and replay use: it applies an entry
written elsewhere under its original serial, after checking the hash chain so a
rewound or diverged history is refused instead of mixed in.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import ChainCursor, Entry
from lockgate.changelog.models import ChangelogEntry
from lockgate.changelog.payloads import EntryContext, applying_entry, applying_foreign_entries
from lockgate.changelog.registry import EntryRegistry, notify_observers
from lockgate.changelog.writer import lock_serial
from lockgate.db.state import require_state


def entry_from_row(row: ChangelogEntry) -> Entry:
    return Entry(
        row.serial,
        row.created_at,
        row.kind,
        json.loads(row.payload),
        row.prev_hash,
        row.hash,
        row.actor,
        row.actor_token,
    )


async def read_entries(
    session: AsyncSession, since: int = 0, limit: int | None = None
) -> list[Entry]:
    query = (
        select(ChangelogEntry).where(ChangelogEntry.serial > since).order_by(ChangelogEntry.serial)
    )
    if limit is not None:
        query = query.limit(limit)
    return [entry_from_row(row) for row in (await session.execute(query)).scalars()]


async def entry_at(session: AsyncSession, serial: int) -> Entry | None:
    row = await session.get(ChangelogEntry, serial)
    return entry_from_row(row) if row is not None else None


async def apply_foreign_entry(session: AsyncSession, registry: EntryRegistry, entry: Entry) -> None:
    """Append and apply an entry under its own serial; ChainMismatch when it does
    not continue this database's history, EntryFormatError when it cannot be read."""
    payload = registry.decode(entry.kind, entry.payload)
    state = await lock_serial(session)
    ChainCursor(state.serial, state.last_hash).advance(entry)
    session.add(
        ChangelogEntry(
            serial=entry.serial,
            created_at=entry.created_at,
            kind=entry.kind,
            payload=entry.payload_json(),
            prev_hash=entry.prev_hash,
            hash=entry.hash,
            actor=entry.actor,
            actor_token=entry.actor_token,
        )
    )
    state.serial = entry.serial
    state.last_hash = entry.hash
    context = EntryContext(entry.serial, entry.created_at, entry.actor)
    with applying_foreign_entries(session), applying_entry(session, context):
        await payload.apply(session)
        await notify_observers(session, payload)
        await session.flush()


async def state_digest(session: AsyncSession, registry: EntryRegistry) -> dict[str, Any]:
    """The whole state by natural keys (no row ids), sorted, for comparison."""
    state = await require_state(session)
    return {
        "serial": state.serial,
        "last_hash": state.last_hash,
        **await registry.digest(session),
    }
