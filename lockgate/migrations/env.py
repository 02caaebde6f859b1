"""Alembic environment: runs migrations on the URL handed over in `config.attributes`."""

from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy.exc import SAWarning

from lockgate.db.engine import is_sqlite, make_sync_engine
from lockgate.domains import load_all_models

# The search table and its full-text index differ per backend and live outside the
# models (lockgate/search/models.py); migration 0011 alone defines them.
SEARCH_PREFIX = "search_"


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith(SEARCH_PREFIX))


config = context.config
target_metadata = load_all_models()


def run_migrations_online() -> None:
    db_url = str(config.attributes.get("db_url") or config.get_main_option("sqlalchemy.url"))
    engine = make_sync_engine(db_url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=is_sqlite(db_url),
                compare_type=True,
                include_name=include_name,
            )
            with context.begin_transaction(), warnings.catch_warnings():
                # SQLite cannot reflect expression indexes (lower(name), migration
                # 0008), so comparing the schema (`alembic check`) skips them there;
                # tests/functional/test_migrations.py checks they exist.
                warnings.filterwarnings(
                    "ignore",
                    message="Skipped unsupported reflection of expression-based index",
                    category=SAWarning,
                )
                warnings.filterwarnings(
                    "ignore",
                    message="autogenerate skipping metadata-specified expression-based index",
                    category=UserWarning,
                )
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations_online()
