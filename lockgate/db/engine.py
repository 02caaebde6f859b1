"""Engines for the two backends: SQLite (embedded default) and PostgreSQL (psycopg 3).

The configured URL is the synchronous form (`sqlite:///…` or `postgresql+psycopg://…`),
which Alembic uses as is; the server derives the asyncio form from it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseURLError(ValueError):
    """The database URL names a backend lockgate does not support."""


def normalize_url(url: str) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise DatabaseURLError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    )


def is_sqlite(url: str | URL) -> bool:
    return make_url(str(url) if isinstance(url, URL) else url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _install_sqlite_begin(sync_engine: Engine, *, immediate: bool) -> None:
    """Take SQLite's single-writer lock at BEGIN for writing engines.

    pysqlite/aiosqlite start transactions lazily, so a transaction that read first
    and then writes can fail with SQLITE_BUSY instead of waiting; `BEGIN IMMEDIATE`
    makes writers queue up on the lock (with busy_timeout) from the start.
    """

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_sync_engine(url: str) -> Engine:
    normalized = normalize_url(url)
    if normalized.get_backend_name() == "sqlite":
        engine = create_engine(normalized)
        _install_sqlite_begin(engine, immediate=True)
        return engine
    return create_engine(normalized, pool_pre_ping=True)


def make_async_engines(url: str) -> tuple[AsyncEngine, AsyncEngine]:
    """Return (read_engine, write_engine). On PostgreSQL both are the same engine."""
    normalized = normalize_url(url)
    if normalized.get_backend_name() == "sqlite":
        # aiosqlite with one thread hop per statement (lockgate/db/sqlite_driver.py).
        from lockgate.db import sqlite_driver

        async_url = normalized.set(drivername=f"sqlite+{sqlite_driver.DRIVER}")
        reader = create_async_engine(async_url, pool_size=8, max_overflow=8)
        writer = create_async_engine(async_url, pool_size=1, max_overflow=0)
        _install_sqlite_begin(reader.sync_engine, immediate=False)
        _install_sqlite_begin(writer.sync_engine, immediate=True)
        return reader, writer
    engine = create_async_engine(normalized, pool_pre_ping=True, pool_size=10, max_overflow=10)
    return engine, engine
