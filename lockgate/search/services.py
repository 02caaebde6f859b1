"""Searching: a query parsed into words and a name, the indexes in scope (every index
the caller may read, or one index and its bases), the database's full-text search
(SQLite FTS5 with prefix indexes; PostgreSQL tsvector with GIN, pg_trgm for name
prefixes), snippets cut for the page's rows, and the mirrors' upstream project lists.

Ranking (the issue's order): the exact name, then names starting with the query,
then projects whose summary holds every word, then the rest; within each tier by a
score computed here on the short columns, then by name. Bounded: the database yields
at most COUNT_CAP + 1 matches and only the first RANK_CANDIDATES are ranked, so a
common word costs what a rare one does (docs/reliability.md SR-9). On PostgreSQL the
words ANALYZE's statistics put in most rows are read from the table's first blocks up
to that cap instead of the GIN bitmap of nearly every row (SR-10).
"""

from __future__ import annotations

import asyncio
import bisect
import html
import re
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from packaging.utils import canonicalize_name
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.auth import Principal
from lockgate.db.session import Database
from lockgate.errors import BadRequest, NotFound
from lockgate.indexes.access import may_read
from lockgate.indexes.models import Index
from lockgate.indexes.services import IndexView, get_index, resolve_chain
from lockgate.mirror.models import MirrorProjectList
from lockgate.names import is_valid_project_name
from lockgate.search.index import RebuildCounts, rebuild_sync
from lockgate.search.models import search_entries
from lockgate.storage.blobs import BlobStore

MAX_QUERY_CHARS = 200
MAX_WORDS = 12
MAX_WORD_CHARS = 64
PER_PAGE = 20
MAX_PAGE = 50  # results beyond 1,000 are not worth paging to: refine the query
# Words: runs of letters and digits (what FTS5's unicode61 and PostgreSQL's parser
# keep); everything else separates them, so no query can carry search syntax.
_WORD = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"


@dataclass(frozen=True)
class Query:
    text: str
    words: tuple[str, ...]
    name: str | None  # the normalized name when the query is a valid project name


def parse_query(raw: str) -> Query:
    """The words and the name a query asks for; 400 for what cannot be searched."""
    if len(raw) > MAX_QUERY_CHARS:
        raise BadRequest(
            f"the search query is {len(raw)} characters long; at most {MAX_QUERY_CHARS} "
            "are searched"
        )
    if _CONTROL.search(raw):
        raise BadRequest("the search query holds a control character; search for words")
    stripped = raw.strip()
    if not stripped:
        raise BadRequest("give something to search for: ?q=words")
    words = tuple(dict.fromkeys(w.casefold()[:MAX_WORD_CHARS] for w in _WORD.findall(stripped)))[
        :MAX_WORDS
    ]
    if not words:
        raise BadRequest(
            f"the search query {stripped!r} has no letters or digits: search for words "
            "or a project name"
        )
    name = canonicalize_name(stripped) if is_valid_project_name(stripped) else None
    return Query(stripped, words, name)


@dataclass
class Hit:
    index: str  # user/index
    name: str  # normalized
    display_name: str
    kind: str  # "stage", "mirror" (a cached upstream page) or "upstream" (project list)
    version: str | None
    summary: str
    tier: int
    snippet: Markup = field(default_factory=Markup)

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {
            "index": self.index,
            "project": self.display_name,
            "name": self.name,
            "version": self.version,
            "summary": self.summary,
            # HTML: escaped text with the matched words in <mark> (the summary when
            # the words matched nothing longer).
            "snippet": str(self.snippet or highlight(self.summary)),
            "source": self.kind,
            "url": f"{base_url}/{self.index}/{self.name}",
        }


@dataclass
class Results:
    query: Query
    scope: str | None  # the index searched (with its bases), or None for all
    page: int
    total: int
    hits: list[Hit]

    @property
    def pages(self) -> int:
        return min(MAX_PAGE, max(1, -(-self.total // PER_PAGE)))

    @property
    def total_exact(self) -> bool:
        """False when counting stopped at COUNT_CAP (shown as "1000+")."""
        return self.total <= COUNT_CAP

    @property
    def total_shown(self) -> int:
        return min(self.total, COUNT_CAP)


def highlight(marked: str) -> Markup:
    """Escape a snippet and turn the search's markers into <mark>; nothing an author
    wrote becomes markup."""
    flat = " ".join(marked.split())
    if flat.count(MARK_OPEN) != flat.count(MARK_CLOSE):
        flat = flat.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")
    escaped = html.escape(flat, quote=True)
    return Markup(escaped.replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>"))


def parse_page(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"page must be a number from 1 to {MAX_PAGE}")
    return int(raw)


async def indexes_in_scope(
    session: AsyncSession, principal: Principal | None, scope: str | None
) -> list[IndexView]:
    """Every index the caller may read, or `scope` (user/index) and its bases; a scope
    the caller may not read answers as one that does not exist."""
    if scope is None:
        rows = (await session.execute(select(Index))).scalars()
        every = [IndexView.from_row(row) for row in rows]
        return [i for i in every if may_read(principal, i.path, i.readers)]
    user, _, name = scope.partition("/")
    index = await get_index(session, user, name) if user and name else None
    if index is None or not may_read(principal, index.path, index.readers):
        raise NotFound(f"index {scope} does not exist (or you may not read it)")
    chain = await resolve_chain(session, index)
    return [i for i in chain if may_read(principal, i.path, i.readers)]


def _fts5_expression(words: tuple[str, ...]) -> str:
    # Each word quoted (no word holds a quote) and a prefix: "rend" finds "rendering".
    return " ".join(f'"{w}"*' for w in words)


def _tsquery(words: tuple[str, ...], weights: str = "") -> str:
    return " & ".join(f"'{w}':*{weights}" for w in words)


COLUMNS = "e.id, e.index_id, e.name, e.display_name, e.kind, e.latest, e.summary, e.keywords"
# {filter} is "" or "AND e.index_id IN :ids" (left out when every index is in scope).
_NAME_ROWS = {
    # Normalized names are [a-z0-9-]; those starting with `name` sort in
    # [name, name + "~"), which the index on name finds.
    "sqlite": "SELECT {cols} FROM search_entries e WHERE e.name >= :lo AND e.name < :hi {filter}",
    # pg_trgm's GIN index serves LIKE 'prefix%' whatever the database's collation.
    "postgresql": "SELECT {cols} FROM search_entries e WHERE e.name LIKE :prefix {filter}",
}
_NAME_ROWS_ORDER = " ORDER BY (e.name = :name) DESC, e.name, e.index_id LIMIT :limit"
# Counting stops here ("1000+"): as far as anyone can page (MAX_PAGE × PER_PAGE).
COUNT_CAP = MAX_PAGE * PER_PAGE
# Ranking is bounded: at most this many matches are put in tiers and scored (the
# first the full-text index yields: the newest on SQLite, the first in table order
# on PostgreSQL); further matches, up to COUNT_CAP, follow them newest first. A
# query matching fewer is ranked exactly, and what a page costs no longer grows with
# how many projects match (bench/search.py; bm25 and ts_rank over a few thousand
# matches were where p99 went).
RANK_CANDIDATES = 500
# The full-text statements: the matches, up to COUNT_CAP + 1, with the LIMIT inside
# the MATCH so the full-text index stops there; the first RANK_CANDIDATES of them are
# ranked in Python (`_rank`). The count, the summary tier and the rest are no longer
# separate full-text queries, each finding every match of a word prefix again.
_MATCHES = {
    # Row ids: FTS5 consumes ORDER BY rowid (no sort) and stops at the LIMIT; no bm25,
    # whose IDF reads every posting of every query word, whatever the LIMIT. With the
    # prefix indexes (migration 0017) a word prefix is one doclist, read only as far
    # as the LIMIT, so counting (`_COUNT_SQLITE`) is a second short read, cheaper than
    # fetching a thousand ids through the driver.
    "sqlite": """
        SELECT e.id FROM search_fts JOIN search_entries e ON e.id = search_fts.rowid
        WHERE search_fts MATCH :fts {filter} ORDER BY search_fts.rowid DESC LIMIT :wanted""",
    # The GIN bitmap yields the matches (building it is the cost, whatever the LIMIT,
    # so one statement gives the count and the rows); LIMIT stops the heap scan (no
    # ORDER BY, which would read every match first), and only the rows ranking looks
    # at are sent, each with the count.
    "postgresql": """
        SELECT c.*, count(*) OVER () AS total FROM (
            SELECT {cols} FROM search_entries e
            WHERE e.document @@ to_tsquery('simple', :tsq) {filter} LIMIT :cap
        ) c LIMIT :wanted""",
}
# PostgreSQL, a query whose words are in most rows (SR-10): the GIN bitmap of such a
# word holds nearly every row and costs 30-60 ms to build at 100,000 projects,
# whatever the LIMIT (a bitmap index scan cannot stop early). The same first matches
# in table order (a bitmap heap scan visits blocks in order, as this does) come from
# reading the table's first blocks, stopping at the LIMIT: a TID range scan up to the
# block where, by ANALYZE's statistics, about _PROBE_MARGIN x the capped count of
# matches should have been seen. Taken only when it found the capped count (then it is
# exactly what the bitmap would have given); else the bitmap statement runs as before,
# so a misjudged word costs one bounded probe more, never a wrong answer.
_PROBE_MATCHES = """
    SELECT c.*, count(*) OVER () AS total FROM (
        SELECT {cols} FROM search_entries e
        WHERE e.ctid < CAST(:before AS tid)
          AND e.document @@ to_tsquery('simple', :tsq) {filter} LIMIT :cap
    ) c LIMIT :wanted"""
# Probe only when the words are estimated in at least this share of the rows in
# scope. Measured at 100,000 projects (bench/search.py): the probe costs ~9 µs per
# row read (each row's tsvector is decompressed and matched), the bitmap ~0.3 µs per
# matching row (`http`, in every row: 9 ms against 30-60 ms; a word in 20 % of rows,
# `rend`: the probe reads ~5,000 rows and is slower than its bitmap). At 0.5 the probe
# reads at most COUNT_CAP / 0.5 x _PROBE_MARGIN ≈ 4,000 rows (~36 ms when it misjudges).
COMMON_FRACTION = 0.5
_PROBE_MARGIN = 2.0
# ANALYZE's statistics of the search table, read at most this often per database
# (they change when autovacuum analyzes the table, not per write).
_STATS_SECONDS = 300.0
_STATS_SQL = """
    SELECT c.reltuples, c.relpages,
        (SELECT s.most_common_elems::text::text[] FROM pg_stats s
         WHERE s.schemaname = n.nspname AND s.tablename = c.relname
           AND s.attname = 'document') AS lexemes,
        (SELECT s.most_common_elem_freqs FROM pg_stats s
         WHERE s.schemaname = n.nspname AND s.tablename = c.relname
           AND s.attname = 'document') AS lexeme_freqs,
        (SELECT s.most_common_vals::text::text[] FROM pg_stats s
         WHERE s.schemaname = n.nspname AND s.tablename = c.relname
           AND s.attname = 'index_id') AS index_ids,
        (SELECT s.most_common_freqs FROM pg_stats s
         WHERE s.schemaname = n.nspname AND s.tablename = c.relname
           AND s.attname = 'index_id') AS index_freqs
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = to_regclass('search_entries')"""
# Without an index filter no join: the FTS table alone.
_MATCHES_UNFILTERED_SQLITE = """
    SELECT rowid AS id FROM search_fts WHERE search_fts MATCH :fts
    ORDER BY rowid DESC LIMIT :wanted"""
_COUNT_SQLITE = """
    SELECT count(*) FROM (SELECT 1 FROM search_fts
        JOIN search_entries e ON e.id = search_fts.rowid
        WHERE search_fts MATCH :fts {filter} LIMIT :cap)"""
_COUNT_UNFILTERED_SQLITE = """
    SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH :fts LIMIT :cap)"""
# The columns ranking needs, read by id for the rows it looks at (a fifth of the cost
# of joining them in the MATCH statement, which reads past the long description).
_ROWS = "SELECT {cols} FROM search_entries e WHERE e.id IN :wanted"
# Relevance within a tier: each time a query word starts a word of the name, the
# summary or the keywords (the short columns; a description's words make a row match
# but do not rank it), weighted as the columns matter, a whole word counting double.
_WEIGHTS = (10.0, 5.0, 3.0)  # name, summary, keywords
# The texts a snippet is cut from, in the order they are tried.
_SNIPPET_COLUMNS = ("description", "docs", "keywords", "classifiers")
_SNIPPET_WORDS = 24
_SNIPPET_SCAN = 200_000  # characters of a text searched for a first match
_TRAILING = re.compile(r"[^\w\s]{0,3}")


def _expanding(sql: str, *names: str) -> Any:
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in names))


def _fold(word: str) -> str:
    """Case and accents folded, as FTS5's unicode61 (remove_diacritics) folds them."""
    if word.isascii():  # most text: nothing to decompose (a tenth of the cost)
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def make_snippet(text: str, words: tuple[str, ...]) -> str | None:
    """About 24 words of `text` around its first match, the matched words between
    MARK_OPEN and MARK_CLOSE (escaped and turned into <mark> by `highlight`); None
    when no word of `text` starts with a query word.

    Cut here rather than by FTS5's snippet() or ts_headline: one rule on both
    backends, for the page's 20 rows only, without a query per row."""
    folded = tuple(_fold(w) for w in words)
    tokens = list(_WORD.finditer(text[:_SNIPPET_SCAN]))
    hits = [i for i, t in enumerate(tokens) if _fold(t.group()).startswith(folded)]
    if not hits:
        return None
    first = max(0, hits[0] - _SNIPPET_WORDS // 3)
    last = min(len(tokens), first + _SNIPPET_WORDS)
    marked = set(hits)
    parts: list[str] = ["… "] if first > 0 else []
    position = tokens[first].start() if first > 0 else 0
    for i in range(first, last):
        token = tokens[i]
        parts.append(text[position : token.start()])
        parts.append(f"{MARK_OPEN}{token.group()}{MARK_CLOSE}" if i in marked else token.group())
        position = token.end()
    # The punctuation right after the last word ("files." not "files").
    parts.append(_TRAILING.match(text, position).group())  # type: ignore[union-attr]
    if last < len(tokens) or len(text) > _SNIPPET_SCAN:
        parts.append(" …")
    return "".join(parts)


def _word_patterns(words: tuple[str, ...]) -> list[re.Pattern[str]]:
    """Per query word: where it starts a word of folded text, and the rest of that
    word (empty when the query word is the whole word)."""
    patterns = []
    for word in words:
        literal = re.escape(_fold(word))
        # The literal first (re then finds it with a fast scan), the word start
        # checked behind it: no letter or digit before.
        patterns.append(re.compile(f"{literal}(?<![^\\W_]{literal})([^\\W_]*)"))
    return patterns


def _rank(
    rows: list[dict[str, Any]], words: tuple[str, ...], taken: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The full-text matches not `taken` by a name tier, in rank order: the first
    RANK_CANDIDATES put in tiers (2: the summary holds every word; 3: the rest) and
    ordered by score, then name; the others after them as the database gave them."""
    patterns = _word_patterns(words)
    ranked: list[tuple[int, float, str, int, dict[str, Any]]] = []
    rest: list[dict[str, Any]] = []
    for position, row in enumerate(rows):
        if row["id"] in taken:
            continue
        if position >= RANK_CANDIDATES:
            row["tier"] = 3
            rest.append(row)
            continue
        # One folded text per row; a hit's column is told by where it starts.
        name = f"{row['display_name']} {row['name']}\x00"
        summary = f"{row['summary'] or ''}\x00"
        combined = _fold(name + summary + (row["keywords"] or ""))
        summary_end = len(name) + len(summary)
        score = 0.0
        in_summary = True
        for pattern in patterns:
            found_in_summary = False
            for hit in pattern.finditer(combined):
                start = hit.start()
                column = 0 if start < len(name) else 1 if start < summary_end else 2
                found_in_summary = found_in_summary or column == 1
                score += _WEIGHTS[column] * (1.0 if hit.group(1) else 2.0)
            in_summary = in_summary and found_in_summary
        row["tier"] = tier = 2 if in_summary else 3
        ranked.append((tier, -score, row["name"], row["index_id"], row))
    ranked.sort(key=lambda item: item[:4])
    return [item[4] for item in ranked] + rest


@dataclass(frozen=True)
class TableStats:
    """What ANALYZE last saw of the search table (PostgreSQL): its size, the share of
    rows holding each of its most common lexemes, and each index's share of rows."""

    rows: float
    pages: int
    lexemes: dict[str, float]
    indexes: dict[int, float]

    def fraction(self, words: tuple[str, ...], ids: list[int] | None) -> float:
        """A low estimate of the share of rows matching every word (as prefixes) in
        the indexes `ids` (None: every index). Per word the most frequent common
        lexeme it is a prefix of (a prefix matches at least that lexeme's rows); 0
        when a word is not among the common lexemes. Words are taken as independent,
        which can overestimate words that seldom occur together: the probe's own
        check (it must find the capped count) keeps the answer right."""
        share = 1.0
        for word in words:
            share *= max((f for lex, f in self.lexemes.items() if lex.startswith(word)), default=0)
        if ids is not None:
            share *= min(1.0, sum(self.indexes.get(i, 0.0) for i in ids))
        return share

    def probe_end(self, fraction: float) -> str | None:
        """The TID before which the probe stops, or None when no probe is worth it."""
        if fraction < COMMON_FRACTION or self.rows <= 0 or self.pages <= 0:
            return None
        rows_per_page = self.rows / self.pages
        needed = (COUNT_CAP + 1) / fraction * _PROBE_MARGIN
        pages = int(needed / rows_per_page) + 1
        return None if pages >= self.pages else f"({pages},0)"


# Database URL → (monotonic time read, stats); None while the table was never analyzed.
_STATS: dict[str, tuple[float, TableStats | None]] = {}


def _stats_from_row(row: Any) -> TableStats | None:
    if row is None or not row.lexemes or not row.lexeme_freqs:
        return None
    # most_common_elem_freqs has the lexemes' frequencies, then extra entries (the
    # minimum, maximum and null frequency): zip stops at the lexemes.
    lexemes = dict(zip(row.lexemes, (float(f) for f in row.lexeme_freqs), strict=False))
    indexes: dict[int, float] = {}
    for value, freq in zip(row.index_ids or [], row.index_freqs or [], strict=False):
        if str(value).isdigit():
            indexes[int(value)] = float(freq)
    return TableStats(float(row.reltuples), int(row.relpages), lexemes, indexes)


async def table_stats(session: AsyncSession) -> TableStats | None:
    """The search table's statistics (PostgreSQL), cached for _STATS_SECONDS."""
    key = str(session.get_bind().engine.url)
    now = time.monotonic()
    cached = _STATS.get(key)
    if cached is not None and now - cached[0] < _STATS_SECONDS:
        return cached[1]
    stats = _stats_from_row((await session.execute(text(_STATS_SQL))).first())
    _STATS[key] = (now, stats)
    return stats


def forget_table_stats() -> None:
    """Read the statistics again at the next search (after an ANALYZE)."""
    _STATS.clear()


async def _database_hits(
    session: AsyncSession, sqlite: bool, query: Query, ids: list[int] | None, upto: int
) -> tuple[list[dict[str, Any]], int]:
    """(the first `upto` rows in rank order, each with its tier; how many match, at
    most COUNT_CAP + 1).

    The names (exact, then prefix) from the name index, then one full-text statement
    for the rest (`_MATCHES`), ranked in Python: summary matches, then the rest."""
    backend = "sqlite" if sqlite else "postgresql"
    where = "AND e.index_id IN :ids" if ids is not None else ""
    name = query.name or ""
    params: dict[str, Any] = {
        "fts": _fts5_expression(query.words),
        "tsq": _tsquery(query.words),
        "name": name,
        "lo": name,
        "hi": name + "~",
        "prefix": f"{name}%",
        "ids": ids or [],
        "cap": COUNT_CAP + 1,
        "limit": upto,
    }

    def statement(sql: str) -> Any:
        sql = sql.format(cols=COLUMNS, filter=where)
        return _expanding(sql, "ids") if ids is not None else text(sql)

    if not sqlite:
        # The planner prices `@@` on a TOASTed tsvector as cheap and scans the whole
        # table for a common word; the GIN bitmap is 4-5x faster (bench/search.py).
        # SET LOCAL ends with this read transaction.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
    taken: dict[int, dict[str, Any]] = {}
    if query.name:
        sql = _NAME_ROWS[backend] + _NAME_ROWS_ORDER
        for row in await session.execute(statement(sql), params):
            taken[row.id] = {**row._mapping, "tier": 0 if row.name == name else 1}
    if sqlite:
        count_sql = _COUNT_SQLITE if ids is not None else _COUNT_UNFILTERED_SQLITE
        count = int((await session.execute(statement(count_sql), params)).scalar_one())
        # The rows ranking (or a deep page) looks at, in match order.
        wanted = max(RANK_CANDIDATES, upto + len(taken)) if count else 0
        sql = _MATCHES["sqlite"] if ids is not None else _MATCHES_UNFILTERED_SQLITE
        found = list(
            (await session.execute(statement(sql), {**params, "wanted": wanted})).scalars()
        )
        matches = []
        if found:
            result = await session.execute(
                _expanding(_ROWS.format(cols=COLUMNS), "wanted"), {"wanted": found}
            )
            keys = list(result.keys())
            rows = {row[0]: dict(zip(keys, row, strict=True)) for row in result}
            matches = [rows[row_id] for row_id in found if row_id in rows]
    else:
        wanted = max(RANK_CANDIDATES, upto + len(taken))
        probe: list[dict[str, Any]] | None = None
        stats = await table_stats(session)
        before = stats.probe_end(stats.fraction(query.words, ids)) if stats else None
        if before is not None:
            # The probe reads blocks in order, never through an index (SR-10).
            await session.execute(
                text(
                    "SELECT set_config('enable_bitmapscan', 'off', true), "
                    "set_config('enable_indexscan', 'off', true)"
                )
            )
            result = await session.execute(
                statement(_PROBE_MATCHES), {**params, "wanted": wanted, "before": before}
            )
            keys = list(result.keys())
            probed = [dict(zip(keys, row, strict=True)) for row in result]
            if probed and probed[0]["total"] > COUNT_CAP:
                probe = probed  # the capped count found: what the bitmap would give
            else:  # the bitmap statement after all, planned as without the probe
                await session.execute(
                    text(
                        "SELECT set_config('enable_bitmapscan', 'on', true), "
                        "set_config('enable_indexscan', 'on', true)"
                    )
                )
        if probe is not None:
            matches = probe
        else:
            result = await session.execute(
                statement(_MATCHES["postgresql"]), {**params, "wanted": wanted}
            )
            keys = list(result.keys())
            matches = [dict(zip(keys, row, strict=True)) for row in result]
        count = int(matches[0].pop("total")) if matches else 0
        for match in matches[1:]:
            del match["total"]
    # A name row is a full-text match too (its name is indexed, split into words that
    # the query's words are prefixes of), so the count already holds it; this only
    # guards the odd name the tokenizers split otherwise.
    total = max(count, len(taken))
    ranked = list(taken.values())
    if len(ranked) < upto:
        ranked += _rank(matches, query.words, taken)[: upto - len(ranked)]
    ranked.sort(key=lambda row: row["tier"])  # stable: keeps the order within a tier
    return ranked, total


async def _snippets(session: AsyncSession, query: Query, page_ids: list[int]) -> dict[int, str]:
    """Row id → marked snippet, for the rows of one page."""
    if not page_ids:
        return {}
    columns = [getattr(search_entries.c, name) for name in _SNIPPET_COLUMNS]
    rows = await session.execute(
        select(search_entries.c.id, *columns).where(search_entries.c.id.in_(page_ids))
    )
    snippets: dict[int, str] = {}
    for row in rows:
        for column in _SNIPPET_COLUMNS:
            marked = make_snippet(getattr(row, column) or "", query.words)
            if marked:
                snippets[row.id] = marked
                break
    return snippets


# The upstream project lists in use, by blob: sorted normalized names and their
# display names. A PyPI-sized list is read (in a thread) once per change of the list.
_LISTS: OrderedDict[str, tuple[list[str], dict[str, str]]] = OrderedDict()
_LISTS_KEPT = 4


def _read_list(blobs: BlobStore, sha256: str) -> tuple[list[str], dict[str, str]]:
    display: dict[str, str] = {}
    for line in blobs.path(sha256).read_text("utf-8").splitlines():
        line = line.strip()
        if line:
            display.setdefault(canonicalize_name(line), line)
    return sorted(display), display


async def _project_list(blobs: BlobStore, sha256: str) -> tuple[list[str], dict[str, str]]:
    if sha256 in _LISTS:
        _LISTS.move_to_end(sha256)
        return _LISTS[sha256]
    loaded = await asyncio.to_thread(_read_list, blobs, sha256)
    _LISTS[sha256] = loaded
    while len(_LISTS) > _LISTS_KEPT:
        _LISTS.popitem(last=False)
    return loaded


async def _upstream_hits(
    db: Database, blobs: BlobStore, mirrors: list[IndexView], name: str, limit: int
) -> list[Hit]:
    """Names on the mirrors' upstream project lists equal to or starting with `name`
    that are not cached (cached ones are rows already): what can be installed."""
    if not mirrors:
        return []
    async with db.read() as session:
        stored = {
            row.index_id: row.sha256
            for row in await session.execute(
                select(MirrorProjectList.index_id, MirrorProjectList.sha256).where(
                    MirrorProjectList.index_id.in_([m.id for m in mirrors])
                )
            )
        }
    hits: list[Hit] = []
    for mirror in mirrors:
        sha256 = stored.get(mirror.id)
        if sha256 is None or not blobs.exists(sha256):
            continue
        names, display = await _project_list(blobs, sha256)
        start = bisect.bisect_left(names, name)
        found: list[str] = []
        for candidate in names[start : start + limit]:
            if not candidate.startswith(name):
                break
            found.append(candidate)
        if not found:
            continue
        async with db.read() as session:
            cached = set(
                (
                    await session.execute(
                        select(search_entries.c.name).where(
                            search_entries.c.index_id == mirror.id,
                            search_entries.c.name.in_(found),
                        )
                    )
                ).scalars()
            )
        hits.extend(
            Hit(
                index=mirror.path,
                name=candidate,
                display_name=display[candidate],
                kind="upstream",
                version=None,
                summary="",
                tier=0 if candidate == name else 1,
            )
            for candidate in found
            if candidate not in cached
        )
    return hits


async def _index_count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(Index))).scalar_one())


async def search(
    db: Database,
    blobs: BlobStore,
    principal: Principal | None,
    raw_query: str,
    *,
    scope: str | None = None,
    page: int = 1,
) -> Results:
    """One page of results for `raw_query` over what the caller may read."""
    query = parse_query(raw_query)
    async with db.read() as session:
        indexes = await indexes_in_scope(session, principal, scope)
        paths = {index.id: index.path for index in indexes}
        upto = page * PER_PAGE
        if paths:
            # Every index in scope: no filter at all (the common case, and the cheapest).
            everything = scope is None and len(paths) == await _index_count(session)
            rows, total = await _database_hits(
                session, db.sqlite, query, None if everything else list(paths), upto
            )
        else:
            rows, total = [], 0
    hits = [
        Hit(
            index=paths[row["index_id"]],
            name=row["name"],
            display_name=row["display_name"],
            kind=row["kind"],
            version=row["latest"],
            summary=row["summary"],
            tier=row["tier"],
        )
        for row in rows
    ]
    if query.name:
        mirrors = [index for index in indexes if index.is_mirror]
        extra = await _upstream_hits(db, blobs, mirrors, query.name, upto)
        total += len(extra)
        # Cached rows first within a tier: they carry a version and text.
        hits = sorted(hits + extra, key=lambda hit: hit.tier)  # stable: keeps the rank
    shown = hits[(page - 1) * PER_PAGE : upto]
    by_key = {(paths[row["index_id"]], row["name"]): row["id"] for row in rows}
    page_ids = [by_key[(h.index, h.name)] for h in shown if (h.index, h.name) in by_key]
    async with db.read() as session:
        snippets = await _snippets(session, query, page_ids)
    for hit in shown:
        row_id = by_key.get((hit.index, hit.name))
        marked = snippets.get(row_id) if row_id is not None else None
        hit.snippet = highlight(marked) if marked else Markup()
    return Results(query, scope, page, total, shown)


async def rebuild(db: Database) -> RebuildCounts:
    """Empty the search table and refill it from the state tables, in one write
    transaction (writers wait; readers see the old rows until it commits)."""
    async with db.write() as session:
        return await session.run_sync(lambda sync: rebuild_sync(sync.connection()))
