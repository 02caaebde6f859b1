"""Appending entries: one call per mutation, inside the caller's write transaction.

`record()` is the only way state changes on a primary: it takes the serial
counter, appends the entry with the hash chain, and applies the payload to the
state tables, so state == replay(changelog) holds by construction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import Actor, canonical_json, entry_hash
from lockgate.changelog.models import ChangelogEntry
from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import notify_observers
from lockgate.db.models import ServerState
from lockgate.db.session import Database
from lockgate.db.state import STATE_ROW


def utcnow_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def lock_serial(session: AsyncSession) -> ServerState:
    """Lock the serial counter row for the rest of the write transaction.

    On PostgreSQL this is what makes writers queue up (on SQLite the database
    write lock already does). `record()` takes it anyway; a writer whose decision
    depends on rows another writer may be adding at the same moment (an upload
    checking for an existing file) takes it *before* reading them, so the check
    and the entry are atomic. Statements after the lock see every commit made
    before it (READ COMMITTED), and taking it again is a no-op.
    """
    locked = (
        select(ServerState)
        .where(ServerState.id == STATE_ROW)
        .with_for_update()
        # The values read under the lock, even if this session loaded the row before.
        .execution_options(populate_existing=True)
    )
    return (await session.execute(locked)).scalar_one()


async def record(session: AsyncSession, payload: Payload, actor: Actor) -> int:
    """Append one entry, caused by `actor`, and apply it; returns its serial. The
    caller commits.

    The counter row is locked here, as late as possible in the transaction, so
    writers hold it only for the few statements between this call and COMMIT
    (unless the caller took it earlier with `lock_serial()`).
    """
    state = await lock_serial(session)
    serial = state.serial + 1
    payload_json = canonical_json(payload.to_json())
    new_hash = entry_hash(
        state.last_hash, serial, payload.KIND, payload_json, actor.name, actor.token_id
    )
    session.add(
        ChangelogEntry(
            serial=serial,
            created_at=utcnow_iso(),
            kind=payload.KIND,
            payload=payload_json,
            prev_hash=state.last_hash,
            hash=new_hash,
            actor=actor.name,
            actor_token=actor.token_id,
        )
    )
    state.serial = serial
    state.last_hash = new_hash
    await payload.apply(session)
    await notify_observers(session, payload)
    await session.flush()
    return serial


async def record_alone(db: Database, payload: Payload, actor: Actor) -> int:
    """Record one entry in a write transaction of its own (a change that depends
    on nothing read under the lock: a cached upstream page, file or list)."""
    async with db.write() as session:
        return await record(session, payload, actor)
