"""PostgreSQL search for words in most rows (docs/reliability.md SR-10): when ANALYZE's
statistics say the query's words are in most rows, the capped matches are read from
the table's first blocks (a TID range scan that stops at the LIMIT) instead of the GIN
bitmap; the answer is the bitmap's, and a probe that misjudged falls back to it.

A real migrated PostgreSQL database, rows written straight into the search table (as
bench/search.py does: thousands of projects through twine would take minutes), and
`lockgate.search.services.search`, the function `/+search` calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from lockgate import migrations
from lockgate.db.engine import make_sync_engine
from lockgate.db.session import Database
from lockgate.search import services
from lockgate.search.models import search_entries
from lockgate.storage.blobs import BlobStore
from tests.support.databases import PostgresDatabases

pytestmark = pytest.mark.pg

ROWS = 12_000


def _row(n: int, index_id: int) -> dict[str, Any]:
    words = ["filler", f"w{n % 97}"]
    if n % 10 != 0:
        words.append("gamma")  # 90 % of rows: the probe finds the capped count
    # alpha and beta: each in 75 % of rows, so together in ~56 % by the statistics,
    # really in the second half only: the probe reads the first half and falls short.
    if n >= ROWS // 2 or n % 2 == 0:
        words.append("alpha")
    if n >= ROWS // 2 or n % 2 == 1:
        words.append("beta")
    if n % 1000 == 7:
        words.append("gammaray")
    name = f"pkg-{n:05d}"
    return {
        "index_id": index_id,
        "name": name,
        "display_name": name,
        "kind": "stage",
        "latest": "1.0",
        "summary": f"project {n % 13}" + (" gamma" if n % 7 == 0 else ""),
        "description": " ".join(words),
        "keywords": "",
        "classifiers": "",
        "versions": "1.0",
        "docs": "",
    }


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Iterator[tuple[str, BlobStore]]:
    url = postgres_databases.create()
    migrations.upgrade(url)
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (name, password_hash, created_at) "
                    "VALUES ('u', 'x', '2026-01-01T00:00:00Z')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO indexes (user_name, name, type, config) "
                    """VALUES ('u', 'dev', 'stage', '{"bases": []}')"""
                )
            )
            index_id = conn.execute(text("SELECT id FROM indexes")).scalar_one()
            conn.execute(search_entries.insert(), [_row(n, index_id) for n in range(ROWS)])
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("ANALYZE search_entries")
            )
    finally:
        engine.dispose()
    tmp = tmp_path_factory.mktemp("blobs")
    yield url, BlobStore(tmp / "blobs", tmp / "tmp")


def _search(url: str, blobs: BlobStore, query: str, page: int = 1) -> services.Results:
    async def run() -> services.Results:
        db = Database(url)
        try:
            return await services.search(db, blobs, None, query, page=page)
        finally:
            await db.dispose()

    services.forget_table_stats()
    return asyncio.run(run())


def _stats(url: str) -> services.TableStats:
    async def run() -> services.TableStats | None:
        db = Database(url)
        try:
            async with db.read() as session:
                return await services.table_stats(session)
        finally:
            await db.dispose()

    services.forget_table_stats()
    stats = asyncio.run(run())
    assert stats is not None
    return stats


def _answer(results: services.Results) -> list[tuple[str, int, str]]:
    return [(hit.name, hit.tier, str(hit.snippet)) for hit in results.hits]


@pytest.mark.parametrize(
    ("query", "probed"),
    [
        ("gamma", True),  # in 90 % of rows: the probe's answer
        ("gam", True),  # a prefix of it: at least as common
        ("alpha beta", True),  # the probe falls short: the bitmap's answer after all
        ("gammaray", False),  # rare: the bitmap alone
        ("nowhere", False),
    ],
)
def test_common_words_give_the_bitmaps_answer(
    corpus: tuple[str, BlobStore], monkeypatch: pytest.MonkeyPatch, query: str, probed: bool
) -> None:
    """SR-10: with the probe (statistics say common) and without it (the threshold
    raised above any share), every page shows the same hits, tiers, snippets and
    count; the probe is tried exactly for the words the statistics call common."""
    url, blobs = corpus
    stats = _stats(url)
    words = services.parse_query(query).words
    assert (stats.probe_end(stats.fraction(words, None)) is not None) is probed
    with_probe = [_search(url, blobs, query, page) for page in (1, 2, 50)]
    monkeypatch.setattr(services, "COMMON_FRACTION", 2.0)
    assert stats.probe_end(stats.fraction(words, None)) is None
    without = [_search(url, blobs, query, page) for page in (1, 2, 50)]
    for mine, theirs in zip(with_probe, without, strict=True):
        assert mine.total == theirs.total
        assert _answer(mine) == _answer(theirs)
    if query in ("gamma", "alpha beta"):
        assert with_probe[0].total == services.COUNT_CAP + 1  # shown as "1000+"
        assert with_probe[0].hits and with_probe[-1].hits


def test_scope_share_and_unanalyzed_tables_skip_the_probe(corpus: tuple[str, BlobStore]) -> None:
    """SR-10: an index holding few rows makes a common word rare in its scope, and
    words absent from the statistics are never called common."""
    url, _ = corpus
    stats = _stats(url)
    (index_id,) = stats.indexes
    assert stats.fraction(("gamma",), [index_id]) == pytest.approx(0.9, abs=0.05)
    assert stats.fraction(("gamma",), [index_id + 1]) == 0.0
    assert stats.fraction(("zzz",), None) == 0.0
    empty = services.TableStats(rows=0, pages=0, lexemes={"gamma": 0.9}, indexes={})
    assert empty.probe_end(0.9) is None
