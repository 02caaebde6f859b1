"""The `Database`: engines, read and write transactions, and the serial watcher.

Handlers never commit: they run inside `read()` or `write()`, which commit on
success and roll back on any exception. After a write commits, waiters on
`wait_for_serial` wake up (page caches and the changelog long-poll use this).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lockgate.db.engine import is_sqlite, make_async_engines
from lockgate.db.models import ServerState
from lockgate.errors import ServiceUnavailable


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        self.read_engine, self.write_engine = make_async_engines(url)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        # One writer at a time inside this process on SQLite: its lock is per
        # database, and queuing here is cheaper than spinning on SQLITE_BUSY.
        self._write_lock = asyncio.Lock() if self.sqlite else None
        self.serial = 0
        # The serial of the last commit that may have changed anything but cached
        # upstream data (indexes, users, namespaces, permissions...): memos of those
        # key on it, so a cold mirror fill (a commit per page or file) does not
        # empty them. See `note_entry` and `_write_transaction`.
        self.config_serial = 0
        self._serial_changed = asyncio.Condition()
        self._closing = False

    async def dispose(self) -> None:
        await self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            await self.write_engine.dispose()

    async def load_serial(self) -> int:
        async with self.read() as session:
            state = (await session.execute(select(ServerState))).scalar_one_or_none()
        serial = state.serial if state else 0
        if serial > self.serial:
            # Committed by another process (or not yet noted): anything may have changed.
            self.config_serial = max(self.config_serial, serial)
        await self.note_serial(serial)
        return self.serial

    async def note_serial(self, serial: int) -> None:
        if serial > self.serial:
            self.serial = serial
            async with self._serial_changed:
                self._serial_changed.notify_all()

    async def wait_for_serial(self, serial: int, seconds: float) -> bool:
        """Wait until a serial > `serial` is committed; False on timeout or shutdown."""
        try:
            async with asyncio.timeout(seconds), self._serial_changed:
                await self._serial_changed.wait_for(lambda: self.serial > serial or self._closing)
        except TimeoutError:
            return False
        return self.serial > serial

    async def wake_waiters(self) -> None:
        """Shutting down: long-polls answer now instead of holding the exit."""
        self._closing = True
        async with self._serial_changed:
            self._serial_changed.notify_all()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self._read_sessions() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise ServiceUnavailable(
                "the database is unavailable or busy; try again shortly"
            ) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        if self._write_lock is not None:
            async with self._write_lock, self._write_transaction() as session:
                yield session
        else:
            async with self._write_transaction() as session:
                yield session

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self._write_sessions() as session, session.begin():
                if not self.sqlite:
                    # Writers queue on the serial counter row from their first
                    # statement, as SQLite's BEGIN IMMEDIATE makes them: every
                    # check-then-write (duplicate upload, new user or index, a
                    # config merge) then sees the commits before it, never races.
                    await session.execute(
                        select(ServerState.id).where(ServerState.id == 1).with_for_update()
                    )
                yield session
                state_serial = await _current_serial(session)
        except (OperationalError, InterfaceError) as exc:
            raise ServiceUnavailable(
                "the database is unavailable or busy; nothing was changed, try again"
            ) from exc
        first = session.info.get(_FIRST_SERIAL)
        cache_only = session.info.get(_CACHE_ONLY, False)
        # Only cache entries, and no commit by anyone between the last serial this
        # process knew and this transaction's first entry: configuration memos stay.
        if not (cache_only and first is not None and first == self.serial + 1):
            self.config_serial = max(self.config_serial, state_serial)
        await self.note_serial(state_serial)


_FIRST_SERIAL = "lockgate.first_serial"
_CACHE_ONLY = "lockgate.cache_only"


def note_entry(session: AsyncSession, serial: int, cache_only: bool) -> None:
    """The changelog writer tells the transaction what it recorded: its first serial,
    and whether every entry only cached upstream data (see `Database.config_serial`)."""
    info = session.info
    if _FIRST_SERIAL not in info:
        info[_FIRST_SERIAL] = serial
        info[_CACHE_ONLY] = cache_only
    else:
        info[_CACHE_ONLY] = info[_CACHE_ONLY] and cache_only


def cache_only_so_far(session: AsyncSession) -> bool:
    """Whether this transaction has recorded entries and all of them only cache
    upstream data: rows such entries never change (indexes) may then be remembered
    for the rest of the transaction (a group commit of many mirror entries)."""
    return bool(session.info.get(_CACHE_ONLY, False))


async def _current_serial(session: AsyncSession) -> int:
    state = (await session.execute(select(ServerState.serial))).scalar_one_or_none()
    return state or 0


DATABASE = web.AppKey("database", Database)
