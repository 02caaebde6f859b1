"""Alembic migrations, shipped inside the package, and the helpers that run them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.schema import CreateIndex

from lockgate.accounts.models import USERS_LOWER_NAME
from lockgate.db.engine import make_sync_engine
from lockgate.indexes.models import INDEXES_LOWER_NAME

HERE = Path(__file__).parent


def alembic_config(db_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["db_url"] = db_url
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(db_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(db_url: str) -> str | None:
    engine = make_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _index_exists(conn: Connection, name: str) -> bool:
    # Not the inspector: SQLite cannot reflect expression indexes.
    query = (
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name"
        if conn.dialect.name == "sqlite"
        else "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :name"
    )
    return conn.execute(text(query), {"name": name}).first() is not None


def enforce_case_indexes(db_url: str, *, users: bool, indexes: bool) -> list[str]:
    """Create the unique indexes on lower(name) that migration 0008 (or applying a
    look-alike from another server's changelog) left out, for the tables whose
    look-alikes are resolved (`users`, `indexes` true); returns the names created."""
    wanted = [
        index
        for index, resolved in ((USERS_LOWER_NAME, users), (INDEXES_LOWER_NAME, indexes))
        if resolved
    ]
    created: list[str] = []
    engine = make_sync_engine(db_url)
    try:
        with engine.begin() as conn:
            for index in wanted:
                if not _index_exists(conn, str(index.name)):
                    conn.execute(CreateIndex(index))
                    created.append(str(index.name))
    finally:
        engine.dispose()
    return created
