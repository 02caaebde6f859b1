"""Search latency: p50 and p99 of `/+search` queries over 100,000 projects, on SQLite
(FTS5) and PostgreSQL (tsvector + GIN, pg_trgm), against the goal of p99 < 50 ms.

The corpus is written straight into a migrated database (a user, a stage index and
N rows of the search table, with names, summaries and descriptions drawn from a
fixed vocabulary by a seeded generator), because uploading 100,000 projects through
twine would take hours and measures the upload path, not search. The queries then run
through `lockgate.search.services.search`, the function `/+search` calls (scope:
every index, the ranking, counting and snippets included); HTTP parsing and JSON
rendering are not in the numbers.

    .venv/bin/python bench/search.py                    # 100,000 projects, both backends
    .venv/bin/python bench/search.py --projects 10000 --pg off

Bounded: the corpus size is a flag, every query runs `--rounds` times, PostgreSQL is
a fresh database on 127.0.0.1:5432 dropped at the end; nothing else is contacted.
Writes bench/results/search-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import drop_databases, log, postgres_url  # noqa: E402

GOAL_MS = 50.0
WORDS = [
    "http",
    "client",
    "server",
    "async",
    "parser",
    "json",
    "yaml",
    "toml",
    "config",
    "logging",
    "test",
    "mock",
    "data",
    "frame",
    "array",
    "matrix",
    "vector",
    "plot",
    "chart",
    "image",
    "audio",
    "video",
    "stream",
    "queue",
    "cache",
    "store",
    "sql",
    "graph",
    "tree",
    "search",
    "index",
    "token",
    "crypto",
    "hash",
    "secure",
    "auth",
    "user",
    "admin",
    "web",
    "api",
    "cloud",
    "storage",
    "file",
    "path",
    "time",
    "date",
    "zone",
    "locale",
    "string",
    "text",
    "markdown",
    "render",
    "template",
    "email",
    "socket",
    "network",
    "proxy",
    "retry",
    "pool",
    "thread",
    "process",
    "task",
    "job",
    "worker",
]
QUERIES = [
    "http",  # a common word: many matches, ranking and counting dominate
    "json parser",  # two words
    "pkg-04242",  # an exact name
    "pkg-0424",  # a name prefix (10 names)
    "rend",  # a word prefix
    "nonexistentword",  # nothing
    "zone locale string",  # three words, few matches
]


def _vocabulary(rng: random.Random, size: int = 5000) -> tuple[list[str], list[float]]:
    """The real words first, then made-up ones, drawn with Zipf-like weights (1/rank):
    the top words appear in a large share of descriptions, as "python" does on PyPI."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "zo", "pe", "shi", "dra", "qu"]
    words = list(WORDS)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words, [1.0 / (rank + 1) for rank in range(len(words))]


def _row(n: int, rng: random.Random, vocabulary: tuple[list[str], list[float]]) -> dict[str, Any]:
    words, weights = vocabulary

    def draw(k: int) -> list[str]:
        return rng.choices(words, weights, k=k)

    summary = " ".join(draw(rng.randint(3, 8)))
    body = " ".join(draw(rng.randint(40, 160)))
    return {
        "index_id": 0,  # set by the caller
        "name": f"pkg-{n:05d}",
        "display_name": f"pkg-{n:05d}",
        "kind": "stage",
        "latest": f"1.{n % 7}.0",
        "summary": summary,
        "description": f"# pkg-{n:05d}\n\n{body}",
        "keywords": " ".join(draw(3)),
        "classifiers": "Programming Language :: Python :: 3",
        "versions": f"1.{n % 7}.0 1.0.0",
        "docs": "",
    }


def build(url: str, projects: int) -> None:
    from sqlalchemy import text

    from lockgate import migrations
    from lockgate.db.engine import make_sync_engine
    from lockgate.search.models import search_entries

    migrations.upgrade(url)
    engine = make_sync_engine(url)
    rng = random.Random(4242)
    vocabulary = _vocabulary(rng)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (name, password_hash, created_at) "
                    "VALUES ('bench', 'x', '2026-01-01T00:00:00Z')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO indexes (user_name, name, type, config) "
                    """VALUES ('bench', 'dev', 'stage', '{"bases": []}')"""
                )
            )
            index_id = conn.execute(text("SELECT id FROM indexes")).scalar_one()
            for start in range(0, projects, 2000):
                batch = [
                    _row(n, rng, vocabulary) for n in range(start, min(projects, start + 2000))
                ]
                for row in batch:
                    row["index_id"] = index_id
                conn.execute(search_entries.insert(), batch)
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM ANALYZE search_entries")
                )
            else:
                conn.execute(text("INSERT INTO search_fts(search_fts) VALUES ('optimize')"))
                conn.execute(text("ANALYZE"))
                conn.commit()
    finally:
        engine.dispose()


async def compare_probe(url: str, rounds: int) -> dict[str, Any]:
    """PostgreSQL: every query with the common-word probe (SR-10) and without it
    (its threshold raised above any share), alternating call by call on the same
    database, so both see the same load: the side-by-side a busy machine allows."""
    from lockgate.db.session import Database
    from lockgate.search import services
    from lockgate.storage.blobs import BlobStore

    db = Database(url)
    tmp = Path(tempfile.mkdtemp(prefix="lockgate-search-bench-"))
    blobs = BlobStore(tmp / "blobs", tmp / "tmp")
    default = services.COMMON_FRACTION
    timings: dict[str, dict[str, list[float]]] = {"probe": {}, "bitmap": {}}
    try:
        for q in QUERIES:
            await services.search(db, blobs, None, q)
        for _ in range(rounds):
            for q in QUERIES:
                for mode, fraction in (("probe", default), ("bitmap", 2.0)):
                    services.COMMON_FRACTION = fraction
                    started = time.perf_counter()
                    await services.search(db, blobs, None, q)
                    elapsed = (time.perf_counter() - started) * 1000
                    timings[mode].setdefault(q, []).append(elapsed)
    finally:
        services.COMMON_FRACTION = default
        await db.dispose()
    out: dict[str, Any] = {}
    for mode, by_query in timings.items():
        out[mode] = {q: _summary(ts) for q, ts in by_query.items()}
        out[mode]["all"] = _summary([t for ts in by_query.values() for t in ts])
    print(f"\npostgresql, probe vs bitmap alternating ({rounds} rounds; ms)")
    print(
        f"  {'query':<22} {'probe p50':>10} {'probe p99':>10} {'bitmap p50':>11} {'bitmap p99':>11}"
    )
    for q in [*QUERIES, "all"]:
        a, b = out["probe"][q], out["bitmap"][q]
        print(f"  {q:<22} {a['p50_ms']:>10} {a['p99_ms']:>10} {b['p50_ms']:>11} {b['p99_ms']:>11}")
    return out


async def measure(url: str, rounds: int) -> dict[str, Any]:
    from lockgate.db.session import Database
    from lockgate.search.services import search
    from lockgate.storage.blobs import BlobStore

    db = Database(url)
    tmp = Path(tempfile.mkdtemp(prefix="lockgate-search-bench-"))
    blobs = BlobStore(tmp / "blobs", tmp / "tmp")
    results: dict[str, Any] = {}
    try:
        for q in QUERIES:  # warm up: caches, plans
            await search(db, blobs, None, q)
        timings: dict[str, list[float]] = {q: [] for q in QUERIES}
        cpu: dict[str, list[float]] = {q: [] for q in QUERIES}
        for _ in range(rounds):
            for q in QUERIES:
                started, cpu_started = time.perf_counter(), time.process_time()
                found = await search(db, blobs, None, q)
                timings[q].append((time.perf_counter() - started) * 1000)
                cpu[q].append((time.process_time() - cpu_started) * 1000)
                results.setdefault(q, {"total": found.total})
        every = [t for ts in timings.values() for t in ts]
        for q, ts in timings.items():
            results[q].update(_summary(ts))
            # This process's CPU per query: on SQLite the whole search (the database
            # runs in-process), on PostgreSQL the client's part only. Scheduling delays
            # on a busy machine inflate the wall times, not this.
            results[q]["cpu_p50_ms"] = round(statistics.median(cpu[q]), 2)
        results["all"] = _summary(every)
        results["all"]["cpu_p50_ms"] = round(
            statistics.median([c for cs in cpu.values() for c in cs]), 2
        )
    finally:
        await db.dispose()
    return results


def _summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(p99, 2),
        "p99_vs_goal": round(p99 / GOAL_MS, 2),
    }


def report(backend: str, projects: int, results: dict[str, Any]) -> None:
    print(f"\n{backend}: {projects:,} projects (goal: p99 < {GOAL_MS:.0f} ms)")
    print(
        f"  {'query':<22} {'matches':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99/goal':>9} "
        f"{'CPU p50 ms':>10}"
    )
    for q, r in results.items():
        total = "" if q == "all" else f"{r['total']:,}"
        print(
            f"  {q:<22} {total:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['p99_vs_goal']:>9} "
            f"{r['cpu_p50_ms']:>10}"
        )


def _kept_database(name: str) -> tuple[str, str]:
    """The URL of a corpus database kept between runs, and "reused" when it already
    held the corpus (a users table: `build` ran to its end before) or "created"."""
    import psycopg

    if not name.replace("_", "").isalnum():
        raise SystemExit("--pg-database: letters, digits and _ only")
    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name) as kept:
                built = kept.execute(
                    "SELECT to_regclass('search_entries') IS NOT NULL "
                    "AND EXISTS (SELECT 1 FROM pg_stat_user_tables "
                    "WHERE relname = 'search_entries' AND (last_analyze IS NOT NULL "
                    "OR last_autoanalyze IS NOT NULL))"
                ).fetchone()
            if not (built and built[0]):
                raise SystemExit(
                    f"--pg-database {name}: exists but holds no built corpus; drop it first"
                )
            state = "reused"
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
            state = "created"
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pg", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--sqlite", choices=("on", "off"), default="on")
    parser.add_argument(
        "--pg-database",
        metavar="NAME",
        help="keep the PostgreSQL corpus in this database on 127.0.0.1:5432 between runs: "
        "built when the database does not exist, reused (not rebuilt, not dropped) when "
        "it does; drop it yourself when done",
    )
    parser.add_argument(
        "--compare-probe",
        action="store_true",
        help="PostgreSQL: also time every query with and without the common-word probe, "
        "alternating call by call (written under postgresql_probe_vs_bitmap)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.projects <= 1_000_000:
        parser.error("--projects must be between 1 and 1,000,000")
    created: list[str] = []
    out: dict[str, Any] = {
        "projects": args.projects,
        "rounds": args.rounds,
        "goal_ms": GOAL_MS,
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="lockgate-search-bench-") as tmp:
        backends = []
        if args.sqlite == "on":
            backends.append(("sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite'}"))
        try:
            kept: str | None = None
            if args.pg_database and args.pg != "off":
                pg, kept = _kept_database(args.pg_database)
            else:
                pg = postgres_url(args.pg, created)
            if pg:
                backends.append(("postgresql", pg))
            for backend, url in backends:
                if backend == "postgresql" and kept == "reused":
                    log(f"{backend}: reusing database {args.pg_database}; measuring")
                else:
                    log(f"{backend}: writing {args.projects:,} projects")
                    started = time.monotonic()
                    build(url, args.projects)
                    log(f"{backend}: built in {time.monotonic() - started:.0f} s; measuring")
                results = asyncio.run(measure(url, args.rounds))
                report(backend, args.projects, results)
                out[backend] = results
                if backend == "postgresql" and args.compare_probe:
                    out["postgresql_probe_vs_bitmap"] = asyncio.run(compare_probe(url, args.rounds))
        finally:
            drop_databases(created)
    out["load_average_after"] = os.getloadavg()
    target = Path(__file__).resolve().parent / "results" / "search-latest.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
