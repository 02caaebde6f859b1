"""SQLAlchemy's aiosqlite dialect with one thread hop per statement.

aiosqlite runs each sqlite3 call on its connection's own thread, and SQLAlchemy's
adapter makes a call for each step of a statement: open a cursor, execute, fetch
the rows, close the cursor, each an enqueue, a thread wake-up and a callback back
on the event loop. On a loaded machine each wake-up waits for the scheduler, so a
short statement cost ~1 ms of latency per step, and a write transaction of a few
dozen statements (a mirrored page with its search row) held the write lock for tens
of milliseconds, most of it waiting for threads to be scheduled (bench/README.md,
"Second pass").

This dialect's cursor does the whole statement in one call on the connection's
thread (cursor, execute, fetchall, close) and hands back the rows, the
description, `rowcount` and `lastrowid`: the same sqlite3 calls on the same thread,
in the same order, so behaviour (transactions, errors, types) is unchanged. Server
side cursors (streamed results) keep the stock implementation. `make_async_engines`
selects it with the `sqlite+lockgate_aiosqlite` driver name; it is registered here.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

DRIVER = "lockgate_aiosqlite"

# (description, rows, rowcount, lastrowid) of one executed statement.
Outcome = tuple[Any, list[Any], int, int | None]


def _run_one(conn: sqlite3.Connection, operation: str, parameters: Any) -> Outcome:
    """On the connection's thread: the statement from cursor to closed cursor."""
    cursor = conn.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(conn: sqlite3.Connection, operation: str, parameters: Sequence[Any]) -> Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statements each take a single aiosqlite call."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: Any) -> None:
        # No driver cursor is opened here (the stock adapter opens one, a thread hop).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        """Nothing to close: the driver cursor was closed with its statement."""

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            outcome = await self._connection._execute(
                _run_one, self._connection._conn, operation, parameters
            )
        self._keep(outcome)
        return self

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            outcome = await self._connection._execute(
                _run_many, self._connection._conn, operation, seq_of_parameters
            )
        self._keep(outcome)
        return self

    def _keep(self, outcome: Outcome) -> None:
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    def nextset(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True
        return OneHopConnection(self, await_(connection))


class OneHopDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneHopDBAPI:
        return OneHopDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneHopDialect")
