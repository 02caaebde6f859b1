"""Appending entries: one call per mutation, inside the caller's write transaction.

`record()` is the only way state changes on a primary: it takes the serial
counter, appends the entry with the hash chain, and applies the payload to the
state tables, so state == replay(changelog) holds by construction.

`record_alone()` entries (cached upstream pages, files, metadata) depend on
nothing read under the lock, so the ones that queue up while a write commits
are committed together in the next transaction: one commit (one fsync) for many
entries, each still with its own serial, and each caller answered only once its
entry is durable. A cold mirror fill records dozens at once, and one fsync per
entry made every page and file wait for all the others.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import Actor, canonical_json, entry_hash
from lockgate.changelog.models import ChangelogEntry
from lockgate.changelog.payloads import EntryContext, Payload, applying_entry
from lockgate.changelog.registry import notify_observers
from lockgate.db.models import ServerState
from lockgate.db.session import Database, note_entry
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
    created_at = utcnow_iso()
    new_hash = entry_hash(
        state.last_hash, serial, payload.KIND, payload_json, actor.name, actor.token_id
    )
    session.add(
        ChangelogEntry(
            serial=serial,
            created_at=created_at,
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
    note_entry(session, serial, payload.CACHE_ONLY)
    with applying_entry(session, EntryContext(serial, created_at, actor.name)):
        await payload.apply(session)
        await notify_observers(session, payload)
        await session.flush()
    return serial


Pending = tuple[Payload, Actor, "asyncio.Future[int]"]


class _GroupCommit:
    """The `record_alone()` queue of one database (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.queue: list[Pending] = []
        self.task: asyncio.Task[None] | None = None

    def submit(self, payload: Payload, actor: Actor) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        # Retrieved even when the caller went away, so no "never retrieved" warning.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self.queue.append((payload, actor, future))
        if self.task is None:
            self.task = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        batch: list[Pending] = []
        try:
            while self.queue:
                batch, self.queue = self.queue, []
                try:
                    serials = await self._commit(batch)
                except Exception as exc:  # noqa: BLE001 - handed to the callers
                    if len(batch) == 1:
                        _settle(batch[0][2], exc)
                        continue
                    # One entry failed the whole transaction: each alone, so only it fails.
                    for pending in batch:
                        try:
                            _settle(pending[2], (await self._commit([pending]))[0])
                        except Exception as single:  # noqa: BLE001 - handed to the caller
                            _settle(pending[2], single)
                    continue
                for (_payload, _actor, future), serial in zip(batch, serials, strict=True):
                    _settle(future, serial)
        finally:
            self.task = None
            for _payload, _actor, future in batch + self.queue:
                if not future.done():
                    future.cancel()  # shutting down: nothing was committed for these
            self.queue = []

    async def _commit(self, batch: list[Pending]) -> list[int]:
        async with self.db.write() as session:
            return [await record(session, payload, actor) for payload, actor, _ in batch]


def _settle(future: asyncio.Future[int], outcome: int | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


_GROUPS: weakref.WeakKeyDictionary[Database, _GroupCommit] = weakref.WeakKeyDictionary()


async def record_alone(db: Database, payload: Payload, actor: Actor) -> int:
    """Record one entry that depends on nothing read under the lock (a cached
    upstream page, file or list); returns its serial once it is committed.
    Entries queued meanwhile share the commit (group commit)."""
    group = _GROUPS.get(db)
    if group is None:
        group = _GROUPS[db] = _GroupCommit(db)
    # Shielded: a caller that goes away does not take the others' commit with it.
    return await asyncio.shield(group.submit(payload, actor))
