"""The deliveries owed, derived from the changelog.

Every node walks its own changelog after a cursor and, for each entry that is an
event some hook of its index listens to (a hook made before the entry), adds one
delivery with an id that is the same on every node (derived from the serial, the
index and the hook). The entry itself was written in the transaction that made
the change, so nothing owed is ever lost: a crash before the walk only means the
walk happens after the restart. Rows and cursor move in one transaction.
"""

from __future__ import annotations

import json
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.replay import read_entries
from lockgate.changelog.writer import utcnow_iso
from lockgate.db.session import Database
from lockgate.db.state import require_state
from lockgate.errors import NotFound
from lockgate.hooks.events import event_of
from lockgate.hooks.models import Hook, HookCursor, HookDelivered, HookOutbox
from lockgate.indexes.models import Index

CURSOR_ROW = 1
BATCH = 500
DELIVERY_NAMESPACE = uuid.UUID("6f1c3f64-9a2e-4f57-9a8e-6c1d2b7f4e10")


def delivery_id(serial: int, index: str, hook: str) -> str:
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{serial}:{index}:{hook}"))


@dataclass(frozen=True)
class Delivery:
    id: str
    event: str
    serial: int
    status: str
    attempts: int
    created_at: str
    last_answer: str | None
    next_attempt: float

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "serial": self.serial,
            "status": self.status,
            "attempts": self.attempts,
            "created": self.created_at,
            "last_answer": self.last_answer,
            "next_attempt": (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.next_attempt))
                if self.status in ("pending", "resend")
                else None
            ),
        }


async def _hooks_by_index(session: AsyncSession) -> dict[str, list[Hook]]:
    rows = (await session.execute(select(Hook, Index.user_name, Index.name).join(Index))).all()
    found: dict[str, list[Hook]] = {}
    for hook, user, name in rows:
        found.setdefault(f"{user}/{name}", []).append(hook)
    return found


# Per database: the configuration serial at which there was no hook at all. The
# sender runs after every commit; while no hook exists (a hook is made by an entry
# that moves `Database.config_serial`) it then reads nothing (a cold mirror fill
# commits every few milliseconds).
_HOOKLESS: weakref.WeakKeyDictionary[Database, int] = weakref.WeakKeyDictionary()


async def derive(db: Database, base_url: str) -> int:
    """Add the deliveries owed for entries after this node's cursor; how many."""
    config_serial = db.config_serial
    if _HOOKLESS.get(db) == config_serial:
        return 0
    async with db.read() as session:
        cursor = await session.get(HookCursor, CURSOR_ROW)
        any_hook = (await session.execute(select(Hook.id).limit(1))).first() is not None
    if cursor is not None and not any_hook:
        _HOOKLESS[db] = config_serial
    if cursor is not None and (cursor.serial >= db.serial or not any_hook):
        # Without hooks nothing is owed: no write transaction per commit. The cursor
        # stays; a hook made later only counts entries after its own serial.
        return 0
    added = 0
    async with db.write() as session:
        cursor = await session.get(HookCursor, CURSOR_ROW)
        if cursor is None:
            # A new server (or one upgraded to hooks): owe nothing from before.
            state = await require_state(session)
            session.add(HookCursor(id=CURSOR_ROW, serial=state.serial))
            return 0
        entries = await read_entries(session, cursor.serial, limit=BATCH)
        if not entries:
            return 0
        hooks = await _hooks_by_index(session)
        oldest = min((h.created_serial for found in hooks.values() for h in found), default=None)
        for entry in entries:
            if oldest is None or entry.serial <= oldest:
                continue
            event = await event_of(session, entry, base_url)
            if event is None:
                continue
            for hook in hooks.get(event.index, []):
                if entry.serial <= hook.created_serial or event.name not in json.loads(hook.events):
                    continue
                key = delivery_id(entry.serial, event.index, hook.name)
                if await session.get(HookOutbox, key) is not None:
                    continue
                session.add(
                    HookOutbox(
                        id=key,
                        index_path=event.index,
                        hook_name=hook.name,
                        serial=entry.serial,
                        event=event.name,
                        body=json.dumps({**event.body, "delivery": key}, sort_keys=True),
                        created_at=utcnow_iso(),
                        status="pending",
                        attempts=0,
                        next_attempt=0.0,
                        last_answer=None,
                    )
                )
                added += 1
        cursor.serial = entries[-1].serial
    return added


async def deliveries(session: AsyncSession, index: str, hook: str) -> list[Delivery]:
    rows = (
        await session.execute(
            select(HookOutbox, HookDelivered.delivery_id)
            .outerjoin(HookDelivered, HookDelivered.delivery_id == HookOutbox.id)
            .where(HookOutbox.index_path == index, HookOutbox.hook_name == hook)
            .order_by(HookOutbox.serial.desc())
            .limit(200)
        )
    ).all()
    return [
        Delivery(
            row.id,
            row.event,
            row.serial,
            "delivered" if delivered and row.status != "resend" else row.status,
            row.attempts,
            row.created_at,
            row.last_answer,
            row.next_attempt,
        )
        for row, delivered in rows
    ]


async def resend(session: AsyncSession, index: str, hook: str, delivery: str) -> None:
    """Send a delivery again by hand (with its id), whatever became of it."""
    row = await session.get(HookOutbox, delivery)
    if row is None or row.index_path != index or row.hook_name != hook:
        raise NotFound(f"hook {hook} of {index} has no delivery {delivery}")
    row.status = "resend"
    row.attempts = 0
    row.next_attempt = 0.0
