"""Fixtures shared by every test: database backends, servers and clients."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.databases import PostgresDatabases, postgres_available
from tests.support.server import Clients, LockgateServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_PG_PROBLEM = postgres_available()
_REPORTED: list[str] = []


def pytest_report_header(config: pytest.Config) -> str:
    if _PG_PROBLEM:
        return f"PostgreSQL tests SKIPPED: {_PG_PROBLEM}"
    return "PostgreSQL tests run against 127.0.0.1:5432"


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    if _PG_PROBLEM:
        if IN_CI:
            pytest.fail(f"CI=true but {_PG_PROBLEM}")
        pytest.skip(_PG_PROBLEM)
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_db_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], str | None]:
    """Returns a factory of fresh database URLs for the backend under test.

    For SQLite it returns None: the server uses its embedded default file.
    """
    if backend == "sqlite":
        return lambda: None
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.create


@pytest.fixture
def make_server(
    tmp_path: Path, make_db_url: Callable[[], str | None]
) -> Iterator[Callable[..., LockgateServer]]:
    servers: list[LockgateServer] = []

    def start(
        name: str = "server", env: dict[str, str] | None = None, **flags: str
    ) -> LockgateServer:
        server = LockgateServer(tmp_path / name, make_db_url(), env=env, **flags)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., LockgateServer]) -> LockgateServer:
    return make_server()


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return Clients(tmp_path)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium (one per test worker). Absent chromium fails in CI, skips elsewhere."""
    from tests.support.browser import chromium_path, launched_chromium

    if chromium_path() is None:
        message = "no chromium on this machine (.ci/run installs Debian's chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with launched_chromium() as launched:
        yield launched
