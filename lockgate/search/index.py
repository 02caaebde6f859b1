"""Keeping the search table current: the row of one (index, project) recomputed from
the state tables, and the whole table rebuilt.

Everything here is synchronous on a `Connection`, so the same code serves the
changelog observers (through `AsyncSession.run_sync`, inside the transaction that
applies the entry), migration 0011 (which fills the table on an existing server) and
`lockgate reindex`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection, bindparam, delete, func, select, update

from lockgate.distfiles import version_from_filename
from lockgate.docs.models import ReleaseDocs
from lockgate.indexes.models import Index
from lockgate.mirror.models import MirrorLink, MirrorProject, MirrorText
from lockgate.packages.models import Project, Release
from lockgate.search.models import search_entries

# Long descriptions are cut: enough to find a README's words, bounded per row so one
# huge description cannot make every write (and the index) slow.
MAX_TEXT = 100_000
# Characters the snippet markers use (never stored, so a text cannot forge a <mark>)
# and NUL, which PostgreSQL refuses in text.
_FORBIDDEN = {0: None, 0xE000: None, 0xE001: None}


def clean(text: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(text, str):
        return ""
    return text.translate(_FORBIDDEN)[:limit]


def _version_key(version: str) -> tuple[int, Any]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def latest_version(versions: Iterable[str], yanked: Iterable[str] = ()) -> str | None:
    """The newest stable unyanked version, else the newest unyanked, else the newest
    (as the JSON API picks `info.version`)."""
    every = list(dict.fromkeys(versions))
    if not every:
        return None
    gone = set(yanked)
    unyanked = [v for v in every if v not in gone] or every
    stable = [v for v in unyanked if _version_key(v)[0] and not Version(v).is_prerelease]
    return max(stable or unyanked, key=_version_key)


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return clean("\n".join(str(item) for item in value))
    return clean(value)


@dataclass
class _Release:
    version: str
    yanked: bool
    metadata_json: str


# The docs domain's table (lockgate/docs: a release's documentation and its text).
_DOCS_TEXT = (
    select(Release.project_id, Release.version, ReleaseDocs.text)
    .join(Release, Release.id == ReleaseDocs.release_id)
    .where(Release.project_id.in_(bindparam("project_ids", expanding=True)))
)


def _docs_texts(conn: Connection, project_ids: list[int]) -> dict[int, dict[str, str]]:
    """project id → version → documentation text, for projects with uploaded docs."""
    if not project_ids:
        return {}
    found: dict[int, dict[str, str]] = {}
    for row in conn.execute(_DOCS_TEXT, {"project_ids": project_ids}):
        found.setdefault(row.project_id, {})[row.version] = row.text or ""
    return found


def _pick_docs(docs: dict[str, str], latest: str | None) -> str:
    """The latest release's documentation, else the newest version's that has some."""
    if not docs:
        return ""
    if latest in docs:
        return docs[latest]
    return docs[max(docs, key=_version_key)]


def _stage_values(
    index_id: int,
    name: str,
    display_name: str,
    releases: list[_Release],
    docs: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """The row of a stage project; None for a tombstone (no releases left)."""
    if not releases:
        return None
    versions = sorted({r.version for r in releases}, key=_version_key)
    latest = latest_version(versions, [r.version for r in releases if r.yanked])
    release = next(r for r in releases if r.version == latest)
    try:
        metadata = json.loads(release.metadata_json)
    except ValueError:
        metadata = {}
    if not isinstance(metadata, dict):
        metadata = {}
    keywords = metadata.get("keywords")
    return {
        "index_id": index_id,
        "name": name,
        "display_name": clean(display_name, 255),
        "kind": "stage",
        "latest": latest,
        "summary": clean(metadata.get("summary"), 2048),
        "description": clean(metadata.get("description")),
        "keywords": _joined(keywords.replace(",", " ") if isinstance(keywords, str) else keywords),
        "classifiers": _joined(metadata.get("classifiers")),
        "versions": " ".join(reversed(versions)),
        "docs": clean(_pick_docs(docs or {}, latest)),
    }


def _mirror_values(
    index_id: int,
    name: str,
    display_name: str,
    links: list[Any],
    texts: list[Any] | None = None,
) -> dict[str, Any]:
    """The row of a cached upstream page: its name and the versions it lists, and the
    metadata text of its latest version with a cached file or `.metadata` (else of the
    newest such version)."""
    versions: set[str] = set()
    yanked: set[str] = set()
    for link in links:
        version = version_from_filename(link.filename)
        if version:
            versions.add(version)
            if link.yanked:
                yanked.add(version)
    # A version is yanked only when all its files are.
    yanked -= {version_from_filename(link.filename) for link in links if not link.yanked}
    ordered = sorted(versions, key=_version_key)
    latest = latest_version(ordered, yanked)
    by_version = {text.version: text for text in texts or ()}
    text = by_version.get(latest) if latest else None
    if text is None and by_version:
        text = by_version[max(by_version, key=_version_key)]
    return {
        "index_id": index_id,
        "name": name,
        "display_name": clean(display_name, 255),
        "kind": "mirror",
        "latest": latest,
        "summary": clean(text.summary, 2048) if text else "",
        "description": clean(text.description) if text else "",
        "keywords": clean(text.keywords) if text else "",
        "classifiers": clean(text.classifiers) if text else "",
        "versions": clean(" ".join(reversed(ordered))),
        "docs": "",
    }


_TEXT_COLUMNS = (
    MirrorText.index_id,
    MirrorText.project,
    MirrorText.version,
    MirrorText.summary,
    MirrorText.description,
    MirrorText.keywords,
    MirrorText.classifiers,
)


def _stage_row(conn: Connection, index_id: int, name: str) -> dict[str, Any] | None:
    project = conn.execute(
        select(Project.id, Project.display_name).where(
            Project.index_id == index_id, Project.name == name
        )
    ).first()
    if project is None:
        return None
    releases = [
        _Release(row.version, row.yanked, row.metadata_json)
        for row in conn.execute(
            select(Release.version, Release.yanked, Release.metadata_json).where(
                Release.project_id == project.id
            )
        )
    ]
    docs = _docs_texts(conn, [project.id]).get(project.id)
    return _stage_values(index_id, name, project.display_name, releases, docs)


def _mirror_row(conn: Connection, index_id: int, name: str) -> dict[str, Any] | None:
    project = conn.execute(
        select(MirrorProject.display_name).where(
            MirrorProject.index_id == index_id, MirrorProject.name == name
        )
    ).first()
    if project is None:
        return None
    links = conn.execute(
        select(MirrorLink.filename, MirrorLink.yanked).where(
            MirrorLink.index_id == index_id, MirrorLink.project == name
        )
    ).all()
    texts = conn.execute(
        select(*_TEXT_COLUMNS).where(MirrorText.index_id == index_id, MirrorText.project == name)
    ).all()
    return _mirror_values(index_id, name, project.display_name, list(links), list(texts))


def _store(conn: Connection, index_id: int, name: str, values: dict[str, Any] | None) -> None:
    """Replace the row of (index, name) with `values`, or remove it (None)."""
    where = (search_entries.c.index_id == index_id) & (search_entries.c.name == name)
    existing = conn.execute(select(search_entries.c.id).where(where)).first()
    if values is None:
        if existing is not None:
            conn.execute(delete(search_entries).where(search_entries.c.id == existing.id))
        return
    if existing is None:
        conn.execute(search_entries.insert().values(**values))
        return
    conn.execute(update(search_entries).where(search_entries.c.id == existing.id).values(**values))


def resync_project(conn: Connection, index_id: int, name: str) -> None:
    """Recompute the row of (index, project) from the state tables."""
    kind = conn.execute(select(Index.type).where(Index.id == index_id)).scalar_one_or_none()
    if kind is None:
        _store(conn, index_id, name, None)
    elif kind == "mirror":
        _store(conn, index_id, name, _mirror_row(conn, index_id, name))
    else:
        _store(conn, index_id, name, _stage_row(conn, index_id, name))


def drop_orphans(conn: Connection) -> int:
    """Rows of indexes that no longer exist (the foreign key cascades on PostgreSQL and
    on SQLite with foreign keys on; this also covers a connection without them)."""
    result = conn.execute(
        delete(search_entries).where(search_entries.c.index_id.not_in(select(Index.id)))
    )
    return int(result.rowcount or 0)


def _stage_rows(conn: Connection, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every stage project's row, reading projects and their releases in batches
    (bounded memory on a big server)."""
    last = 0
    while True:
        projects = conn.execute(
            select(Project.id, Project.index_id, Project.name, Project.display_name)
            .where(Project.id > last)
            .order_by(Project.id)
            .limit(batch)
        ).all()
        if not projects:
            return
        last = projects[-1].id
        releases: dict[int, list[_Release]] = {}
        for row in conn.execute(
            select(
                Release.project_id, Release.version, Release.yanked, Release.metadata_json
            ).where(Release.project_id.in_([p.id for p in projects]))
        ):
            releases.setdefault(row.project_id, []).append(
                _Release(row.version, row.yanked, row.metadata_json)
            )
        docs = _docs_texts(conn, [p.id for p in projects])
        for project in projects:
            values = _stage_values(
                project.index_id,
                project.name,
                project.display_name,
                releases.get(project.id, []),
                docs.get(project.id),
            )
            if values is not None:
                yield values


def _mirror_rows(conn: Connection, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every cached mirror project's row, in batches of projects (their links and
    texts read per batch: bounded memory on a big mirror)."""
    last = 0
    while True:
        projects = conn.execute(
            select(
                MirrorProject.id,
                MirrorProject.index_id,
                MirrorProject.name,
                MirrorProject.display_name,
            )
            .where(MirrorProject.id > last)
            .order_by(MirrorProject.id)
            .limit(batch)
        ).all()
        if not projects:
            return
        last = projects[-1].id
        index_ids = sorted({p.index_id for p in projects})
        names = sorted({p.name for p in projects})
        links: dict[tuple[int, str], list[Any]] = {}
        for link in conn.execute(
            select(
                MirrorLink.index_id, MirrorLink.project, MirrorLink.filename, MirrorLink.yanked
            ).where(MirrorLink.index_id.in_(index_ids), MirrorLink.project.in_(names))
        ):
            links.setdefault((link.index_id, link.project), []).append(link)
        texts: dict[tuple[int, str], list[Any]] = {}
        for text in conn.execute(
            select(*_TEXT_COLUMNS).where(
                MirrorText.index_id.in_(index_ids), MirrorText.project.in_(names)
            )
        ):
            texts.setdefault((text.index_id, text.project), []).append(text)
        for project in projects:
            key = (project.index_id, project.name)
            yield _mirror_values(
                project.index_id,
                project.name,
                project.display_name,
                links.get(key, []),
                texts.get(key, []),
            )


@dataclass
class RebuildCounts:
    before: int
    stage: int
    mirror: int


def rebuild_sync(conn: Connection) -> RebuildCounts:
    """Empty the search table and fill it from the current state."""
    before = conn.execute(select(func.count()).select_from(search_entries)).scalar_one()
    conn.execute(delete(search_entries))
    counts = RebuildCounts(before, 0, 0)
    for kind, rows in (("stage", _stage_rows(conn)), ("mirror", _mirror_rows(conn))):
        batch: list[dict[str, Any]] = []
        for values in rows:
            batch.append(values)
            if len(batch) >= 500:
                conn.execute(search_entries.insert(), batch)
                batch = []
            setattr(counts, kind, getattr(counts, kind) + 1)
        if batch:
            conn.execute(search_entries.insert(), batch)
    return counts
