"""Reading and creating the server state row (see `models.ServerState`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.db.models import ServerState

STATE_ROW = 1


async def read_state(session: AsyncSession) -> ServerState | None:
    """The state row, or None in a database no server was created in yet."""
    return (
        await session.execute(select(ServerState).where(ServerState.id == STATE_ROW))
    ).scalar_one_or_none()


async def require_state(session: AsyncSession) -> ServerState:
    state = await read_state(session)
    if state is None:
        raise LookupError("this database holds no lockgate server (no server state row)")
    return state


def new_state(server_id: str, genesis_hash: str) -> ServerState:
    return ServerState(id=STATE_ROW, server_id=server_id, serial=0, last_hash=genesis_hash)
