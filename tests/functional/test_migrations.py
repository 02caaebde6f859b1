"""Migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from lockgate import migrations
from lockgate.db.engine import make_sync_engine


def test_upgrade_head_then_no_drift(make_db_url: Callable[[], str | None], tmp_path: Path) -> None:
    url = make_db_url() or f"sqlite:///{tmp_path / 'm.sqlite'}"
    migrations.upgrade(url)
    assert migrations.current_revision(url) == migrations.head_revision()
    # Raises when the models and the migrated schema differ.
    command.check(migrations.alembic_config(url))


def _insert(url: str, statement: str, **values: str) -> None:
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), values)
    finally:
        engine.dispose()


def test_the_schema_refuses_names_differing_only_in_case(
    make_db_url: Callable[[], str | None], tmp_path: Path
) -> None:
    """The unique indexes on lower(name) (migration 0008), which `alembic check`
    cannot compare on SQLite, exist and hold without the services' check."""
    url = make_db_url() or f"sqlite:///{tmp_path / 'm.sqlite'}"
    migrations.upgrade(url)
    user = "INSERT INTO users (name, password_hash, created_at) VALUES (:name, 'x', 'y')"
    index = "INSERT INTO indexes (user_name, name, type, config) VALUES (:user, :name, 'stage', '')"
    for name in ("alice", "bob"):
        _insert(url, user, name=name)
    with pytest.raises(IntegrityError):
        _insert(url, user, name="ALICE")
    _insert(url, index, user="alice", name="dev")
    _insert(url, index, user="bob", name="dev")
    with pytest.raises(IntegrityError):
        _insert(url, index, user="alice", name="Dev")
