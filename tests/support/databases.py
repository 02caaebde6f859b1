"""Fresh databases for tests: a SQLite file, or a new PostgreSQL database per server.

PostgreSQL is this machine's server at 127.0.0.1:5432 (user postgres, trust).
Without it the PostgreSQL half is skipped with one clear line, except in CI
(`CI=true`), where its absence is an error.
"""

from __future__ import annotations

import os
import uuid

import psycopg

PG_HOST = os.environ.get("LOCKGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LOCKGATE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("LOCKGATE_TEST_PG_USER", "postgres")
RUN_PREFIX = f"lockgate_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3
        ):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable ({exc})".strip()


class PostgresDatabases:
    """Creates databases named after this test run and drops them at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
        )

    def create(self) -> str:
        name = f"{RUN_PREFIX}_{len(self.created)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    def drop_all(self) -> None:
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()
