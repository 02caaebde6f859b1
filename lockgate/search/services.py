"""Searching: a query parsed into words and a name, the indexes in scope (every index
the caller may read, or one index and its bases), the database's full-text search
(SQLite FTS5 with bm25; PostgreSQL tsvector with GIN and ts_rank, pg_trgm for name
prefixes), snippets cut for the page's rows, and the mirrors' upstream project lists.

Ranking (the issue's order): the exact name, then names starting with the query,
then projects whose summary holds every word, then the rest; within each tier by the
backend's relevance score, then by name.
"""

from __future__ import annotations

import asyncio
import bisect
import html
import re
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
        """False when counting stopped at COUNT_CAP (shown as "10000+")."""
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


COLUMNS = "e.id, e.index_id, e.name, e.display_name, e.kind, e.latest, e.summary"
# {filter} is "" or "AND e.index_id IN :ids" (left out when every index is in scope).
_NAME_ROWS = {
    # Normalized names are [a-z0-9-]; those starting with `name` sort in
    # [name, name + "~"), which the index on name finds.
    "sqlite": "SELECT {cols} FROM search_entries e WHERE e.name >= :lo AND e.name < :hi {filter}",
    # pg_trgm's GIN index serves LIKE 'prefix%' whatever the database's collation.
    "postgresql": "SELECT {cols} FROM search_entries e WHERE e.name LIKE :prefix {filter}",
}
_NAME_ROWS_ORDER = " ORDER BY (e.name = :name) DESC, e.name, e.index_id LIMIT :limit"
# Counting stops here ("10000+"): the count of a word in every description costs
# more than the page, and nobody pages that far (MAX_PAGE).
COUNT_CAP = 10_000
# The best `limit` rows matching a full-text query. {order} is the backend's
# relevance, or the newest rows first when the query matches more than COUNT_CAP rows
# (ranking them all would cost more than the goal allows, and relevance among
# thousands of matches of a common word means little).
_TOP = {
    "sqlite": """
        SELECT {cols}, bm25(search_fts, 10.0, 5.0, 1.0, 3.0, 2.0, 1.0, 1.0) AS score
        FROM search_fts JOIN search_entries e ON e.id = search_fts.rowid
        WHERE search_fts MATCH :fts {filter}
        ORDER BY {order} LIMIT :limit""",
    "postgresql": """
        SELECT {cols}, ts_rank(e.head, to_tsquery('simple', :tsq)) AS score
        FROM search_entries e
        WHERE e.{column} @@ to_tsquery('simple', :match) {filter}
        ORDER BY {order} LIMIT :limit""",
}
_ORDER = {
    ("sqlite", True): "score, e.name, e.index_id",
    ("postgresql", True): "score DESC, e.name, e.index_id",
    ("sqlite", False): "e.id DESC",
    ("postgresql", False): "e.id DESC",
}
# Without an index filter SQLite orders inside the FTS table and joins only the rows
# kept (joining every match of a common word costs more than ranking it).
_TOP_UNFILTERED_SQLITE = """
    SELECT {cols}, t.score FROM (
        SELECT rowid AS id, bm25(search_fts, 10.0, 5.0, 1.0, 3.0, 2.0, 1.0, 1.0) AS score
        FROM search_fts WHERE search_fts MATCH :fts ORDER BY {inner_order} LIMIT :limit
    ) t JOIN search_entries e ON e.id = t.id
    ORDER BY {outer_order}"""
_COUNT = {
    "sqlite": """
        SELECT count(*) FROM (SELECT 1 FROM search_fts
            JOIN search_entries e ON e.id = search_fts.rowid
            WHERE search_fts MATCH :fts {filter} LIMIT :cap)""",
    "postgresql": """
        SELECT count(*) FROM (SELECT 1 FROM search_entries e
            WHERE e.document @@ to_tsquery('simple', :tsq) {filter} LIMIT :cap) c""",
}
_COUNT_UNFILTERED_SQLITE = """
    SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH :fts LIMIT :cap)"""
# The texts a snippet is cut from, in the order they are tried.
_SNIPPET_COLUMNS = ("description", "docs", "keywords", "classifiers")
_SNIPPET_WORDS = 24
_SNIPPET_SCAN = 200_000  # characters of a text searched for a first match
_TRAILING = re.compile(r"[^\w\s]{0,3}")


def _expanding(sql: str, *names: str) -> Any:
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in names))


async def _database_hits(
    session: AsyncSession, sqlite: bool, query: Query, ids: list[int] | None, upto: int
) -> tuple[list[dict[str, Any]], int]:
    """(the first `upto` rows in rank order, each with its tier; how many match, at
    most COUNT_CAP + 1).

    Tier by tier, each asking only for as many rows as the page still needs: the
    names (exact, then prefix) from the name index, then the summary matches, then
    the rest, skipping rows an earlier tier took."""
    backend = "sqlite" if sqlite else "postgresql"
    where = "AND e.index_id IN :ids" if ids is not None else ""
    fts = _fts5_expression(query.words)
    name = query.name or ""
    params: dict[str, Any] = {
        "fts": fts,
        "tsq": _tsquery(query.words),
        "name": name,
        "lo": name,
        "hi": name + "~",
        "prefix": f"{name}%",
        "ids": ids or [],
        "cap": COUNT_CAP + 1,
    }

    def statement(sql: str, **parts: str) -> Any:
        sql = sql.format(cols=COLUMNS, filter=where, **parts)
        return _expanding(sql, "ids") if ids is not None else text(sql)

    if not sqlite:
        # The planner prices `@@` on a TOASTed tsvector as cheap and scans the whole
        # table for a common word; the GIN bitmap is 4-5x faster (bench/search.py).
        # SET LOCAL ends with this read transaction.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
    count_sql = _COUNT_UNFILTERED_SQLITE if sqlite and ids is None else _COUNT[backend]
    total = int((await session.execute(statement(count_sql), params)).scalar_one())
    ranked = total <= COUNT_CAP
    order = _ORDER[(backend, ranked)]

    taken: dict[int, dict[str, Any]] = {}
    if query.name:
        sql = _NAME_ROWS[backend] + _NAME_ROWS_ORDER
        for row in await session.execute(statement(sql), {**params, "limit": upto}):
            taken[row.id] = {**row._mapping, "tier": 0 if row.name == name else 1}
    name_ids = list(taken)
    for tier, match in ((2, "summary"), (3, "all")):
        if len(taken) >= upto or total == 0:
            break
        limit = upto + len(taken)
        if sqlite:
            expression = f"summary : ({fts})" if match == "summary" else fts
            if ids is None:
                inner, outer = (
                    ("score", "t.score, e.name, e.index_id")
                    if ranked
                    else (
                        "rowid DESC",
                        "e.id DESC",
                    )
                )
                sql_statement = statement(
                    _TOP_UNFILTERED_SQLITE, inner_order=inner, outer_order=outer
                )
            else:
                sql_statement = statement(_TOP["sqlite"], order=order)
            rows = await session.execute(
                sql_statement, {**params, "fts": expression, "limit": limit}
            )
        else:
            column, tsq = (
                ("head", _tsquery(query.words, "B"))
                if match == "summary"
                else (
                    "document",
                    params["tsq"],
                )
            )
            rows = await session.execute(
                statement(_TOP["postgresql"], order=order, column=column),
                {**params, "match": tsq, "limit": limit},
            )
        for row in rows:
            if row.id not in taken and len(taken) < upto:
                values = dict(row._mapping)
                values.pop("score", None)
                taken[row.id] = {**values, "tier": tier}
    # A name row is a full-text match too (its name is indexed, split into words that
    # the query's words are prefixes of), so the count already holds it; this only
    # guards the odd name the tokenizers split otherwise.
    total = max(total, len(name_ids))
    ranked_rows = sorted(taken.values(), key=lambda row: row["tier"])  # stable in a tier
    return ranked_rows, total


def _fold(word: str) -> str:
    """Case and accents folded, as FTS5's unicode61 (remove_diacritics) folds them."""
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
