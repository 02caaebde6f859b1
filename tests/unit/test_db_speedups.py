"""The database layer's speed-ups keep its behaviour (docs/architecture.md, "Views,
services, transactions"): the one-hop SQLite driver answers like aiosqlite's stock
adapter (rows, rowcount, lastrowid, errors), and the configuration serial moves with
every commit that may change configuration, never only with cached upstream data."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from lockgate.accounts.services import create_user, prepare_new_user
from lockgate.changelog.codec import SYSTEM
from lockgate.db import sqlite_driver
from lockgate.db.engine import make_async_engines
from lockgate.db.session import Database
from lockgate.domains import build_registry
from lockgate.indexes.services import create_index
from tests.support.inprocess import add_file, add_mirror_page, bootstrap


def test_sqlite_statements_answer_as_the_stock_adapter(tmp_path: Path) -> None:
    async def run() -> None:
        reader, writer = make_async_engines(f"sqlite:///{tmp_path}/t.sqlite")
        assert writer.dialect.driver == sqlite_driver.DRIVER
        async with writer.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
            assert inserted.lastrowid == 1
            many = await conn.execute(
                text("INSERT INTO t (name) VALUES (:name)"), [{"name": "b"}, {"name": "c"}]
            )
            assert many.rowcount == 2
            updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
            assert updated.rowcount == 2
        async with reader.connect() as conn:
            rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
            assert (await conn.execute(text("SELECT name FROM t WHERE id = 9"))).first() is None
            streamed = await conn.stream(text("SELECT id FROM t ORDER BY id"))
            assert [row[0] async for row in streamed] == [1, 2, 3]
        # Errors are the DB-API's, wrapped by SQLAlchemy as usual; the transaction rolls back.
        with pytest.raises(IntegrityError):
            async with writer.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('z')"))
                await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        with pytest.raises(OperationalError, match="no such table"):
            async with reader.connect() as conn:
                await conn.execute(text("SELECT * FROM missing"))
        async with reader.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
            assert count == 3  # 'z' went with the failed transaction
        await reader.dispose()
        await writer.dispose()

    asyncio.run(run())


def test_config_serial_moves_with_configuration_not_with_cached_pages(tmp_path: Path) -> None:
    async def run() -> None:
        build_registry()
        url = f"sqlite:///{tmp_path}/db.sqlite"
        db = await bootstrap(url)
        try:
            await db.load_serial()
            start = db.config_serial
            assert start == db.serial > 0
            # Cached upstream data only: the serial moves, the configuration serial not.
            await add_mirror_page(db, "root/pypi", "demo", [("demo-1.0.tar.gz", "a" * 64)])
            assert db.serial > start
            assert db.config_serial == start
            # An index made: everything remembered per configuration serial is stale.
            user = await prepare_new_user("alice", {"password": "alice-pw"})
            async with db.write() as session:
                await create_user(session, "alice", user, SYSTEM)
                await create_index(session, "alice", "dev", {"bases": ["root/pypi"]}, SYSTEM)
            assert db.config_serial == db.serial
            # An upload (not a cache entry) moves it too.
            await add_file(db, "alice/dev", "demo", "1.0", "demo-1.0-py3-none-any.whl", "b" * 64)
            assert db.config_serial == db.serial
            # Another process commits (here: a second Database on the same file), even
            # only a cached page: this process cannot know what it was, so it moves.
            other = Database(url)
            try:
                await add_mirror_page(other, "root/pypi", "other", [("other-1.tar.gz", "c" * 64)])
            finally:
                await other.dispose()
            before = db.config_serial
            await db.load_serial()
            assert db.config_serial == db.serial > before
            # And a cached page of this process's after another's commit it had not
            # seen yet moves it as well (its first entry does not follow the known serial).
            other = Database(url)
            try:
                await add_mirror_page(other, "root/pypi", "third", [("third-1.tar.gz", "d" * 64)])
            finally:
                await other.dispose()
            seen = db.config_serial
            await add_mirror_page(db, "root/pypi", "fourth", [("fourth-1.tar.gz", "e" * 64)])
            assert db.config_serial == db.serial > seen
        finally:
            await db.dispose()

    asyncio.run(run())
