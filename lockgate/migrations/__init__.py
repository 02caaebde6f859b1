"""Alembic migrations, shipped inside the package, and the helpers that run them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.schema import CreateIndex

from lockgate.accounts.models import USERS_LOWER_NAME
from lockgate.db.engine import make_sync_engine
from lockgate.indexes.models import INDEXES_LOWER_NAME

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent
# `lockgate serve` checks the schema on every start: Alembic itself (a third of a
# second to import and to load every revision module) is only imported to migrate.
_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(?:[\"']([^\"']+)[\"']|None)", re.MULTILINE)


def alembic_config(db_url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["db_url"] = db_url
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(db_url), revision)


def head_revision() -> str | None:
    """The newest revision, read from the revision files' text (no module is
    imported); tests/unit/test_startup.py checks it against Alembic's own answer."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (HERE / "versions").glob("[0-9]*.py"):
        source = path.read_text("utf-8")
        found = _REVISION.search(source)
        if found is None:
            continue
        revisions.add(found.group(1))
        down = _DOWN_REVISION.search(source)
        if down is not None and down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        # Several heads (or none): let Alembic say what it makes of it.
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    return heads.pop()


def current_revision(db_url: str) -> str | None:
    """The database's revision (Alembic's version table), None for an empty database."""
    engine = make_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :t"
            else:
                exists = (
                    "SELECT 1 FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_name = :t"
                )
            if conn.execute(text(exists), {"t": "alembic_version"}).first() is None:
                return None
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            # One row on a linear history; several would mean branches (never here).
            return str(rows[0][0]) if len(rows) == 1 else None
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
