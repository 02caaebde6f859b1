"""Appending entries: one call per mutation, inside the caller's write transaction.

`record()` is the only way state changes on a primary: it takes the serial
counter, appends the entry with the hash chain, and applies the entry to the
state tables through the projection, so state == replay(changelog) holds by
construction.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.models import ChangelogEntry, ServerState
from lockgate.changelog.projection import apply_entry

GENESIS_HASH = "0" * 64


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, serial: int, kind: str, payload_json: str) -> str:
    digest = hashlib.sha256()
    for part in (prev_hash, str(serial), kind, payload_json):
        digest.update(part.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


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
        .where(ServerState.id == 1)
        .with_for_update()
        # The values read under the lock, even if this session loaded the row before.
        .execution_options(populate_existing=True)
    )
    return (await session.execute(locked)).scalar_one()


async def record(session: AsyncSession, kind: str, payload: dict[str, Any]) -> int:
    """Append one entry and apply it; returns its serial. The caller commits.

    The counter row is locked here, as late as possible in the transaction, so
    writers hold it only for the few statements between this call and COMMIT
    (unless the caller took it earlier with `lock_serial()`).
    """
    state = await lock_serial(session)
    serial = state.serial + 1
    payload_json = canonical_json(payload)
    new_hash = entry_hash(state.last_hash, serial, kind, payload_json)
    session.add(
        ChangelogEntry(
            serial=serial,
            created_at=utcnow_iso(),
            kind=kind,
            payload=payload_json,
            prev_hash=state.last_hash,
            hash=new_hash,
        )
    )
    state.serial = serial
    state.last_hash = new_hash
    await apply_entry(session, kind, payload)
    await session.flush()
    return serial
