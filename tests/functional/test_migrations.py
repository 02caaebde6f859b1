"""Migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command

from lockgate import migrations


def test_upgrade_head_then_no_drift(make_db_url: Callable[[], str | None], tmp_path: Path) -> None:
    url = make_db_url() or f"sqlite:///{tmp_path / 'm.sqlite'}"
    migrations.upgrade(url)
    assert migrations.current_revision(url) == migrations.head_revision()
    # Raises when the models and the migrated schema differ.
    command.check(migrations.alembic_config(url))
