"""What the index, project and release pages show, gathered in a handful of queries.

Nothing here renders: the services return plain dataclasses that the page handlers pass
to templates. Every list on a page comes from one query (never a query per row):
provenance, test results, what mirrors have cached and download counts are each read
for all the page's files at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.metadata import parse_email
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.catalog.lookup import Lookup
from lockgate.catalog.services import ProjectView, VisibleFile, project_origins
from lockgate.docs.services import releases_with_docs
from lockgate.downloads.services import daily_downloads, file_downloads
from lockgate.indexes.services import IndexView, resolve_chain
from lockgate.mirror.models import MirrorCachedFile
from lockgate.packages.services import DeletedMark, deleted_releases
from lockgate.storage.blobs import BlobStore
from lockgate.workflow.services import provenance_of_releases, results_of_files

PROJECTS_PER_PAGE = 100
# The metadata fields the pages show (absent ones are None, so templates need no checks).
META_KEYS = (
    "summary",
    "description",
    "description_content_type",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "license",
    "license_expression",
    "home_page",
    "requires_python",
    "requires_dist",
    "provides_extra",
    "classifiers",
    "project_urls",
    "keywords",
)
# A METADATA file larger than this is not parsed for a page (real ones are a few KiB).
MAX_METADATA_BYTES = 4 * 1024 * 1024


def version_key(version: str) -> tuple[int, Any]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def latest_version(versions: list[str], yanked: set[str]) -> str | None:
    """PyPI's choice: the highest stable, unyanked version; else the highest unyanked;
    else the highest."""
    if not versions:
        return None
    unyanked = [v for v in versions if v not in yanked] or list(versions)
    stable = [v for v in unyanked if version_key(v)[0] and not Version(v).is_prerelease]
    return max(stable or unyanked, key=version_key)


def file_tags(filename: str) -> list[tuple[str, str, str]]:
    """(python, abi, platform) of a wheel; an sdist has none."""
    if not filename.endswith(".whl"):
        return []
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return []
    return sorted((tag.interpreter, tag.abi, tag.platform) for tag in tags)


@dataclass(frozen=True)
class Origin:
    """Where a release's files on a page came from."""

    index: str  # the index holding them
    mirrored: bool
    uploaders: tuple[str, ...] = ()
    pushed_from: str | None = None
    pushed_by: str | None = None
    pushed_at: str | None = None


@dataclass(frozen=True)
class FileDetails:
    file: VisibleFile
    tags: list[tuple[str, str, str]]
    cached: bool | None  # mirror files: whether the bytes are on this server
    downloads: int  # in the last 30 days
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class VersionSummary:
    version: str
    yanked: bool
    yanked_reason: str | None
    upload_time: str | None
    origins: list[Origin]
    files: list[FileDetails]
    docs_url: str | None = None  # the release's uploaded documentation, where it is
    deleted: DeletedMark | None = None  # a deleted release: only this, no files

    @property
    def cached_files(self) -> int:
        return sum(1 for f in self.files if f.cached)


@dataclass
class ProjectDetails:
    index: IndexView
    view: ProjectView
    versions: list[VersionSummary]  # newest first
    latest: str | None
    metadata: dict[str, Any]  # the shown version's core metadata (JSON API shape)
    daily: list[tuple[str, int]]  # downloads per day, oldest first
    stale: list[str]
    unavailable: list[str]
    deleted: list[VersionSummary] = field(default_factory=list)  # not live anywhere seen
    project_deleted: bool = False  # the project itself is gone (`project.delete`)

    @property
    def listed(self) -> list[VersionSummary]:
        """Live and deleted versions together, newest first (the project page's rows)."""
        return sorted(
            [*self.versions, *self.deleted], key=lambda v: version_key(v.version), reverse=True
        )

    def deleted_version(self, wanted: str) -> VersionSummary | None:
        return next((v for v in self.deleted if v.version == wanted), None)

    def version(self, wanted: str) -> VersionSummary | None:
        exact = [v for v in self.versions if v.version == wanted]
        if exact:
            return exact[0]
        try:
            parsed = Version(wanted)
        except InvalidVersion:
            return None
        comparable = (v for v in self.versions if version_key(v.version)[0])
        return next((v for v in comparable if Version(v.version) == parsed), None)


async def _cached_mirror_files(
    session: AsyncSession, files: list[VisibleFile]
) -> dict[tuple[int, str], MirrorCachedFile]:
    mirrored = [f for f in files if f.index.is_mirror]
    if not mirrored:
        return {}
    rows = (
        await session.execute(
            select(MirrorCachedFile).where(
                MirrorCachedFile.index_id.in_({f.index.id for f in mirrored}),
                MirrorCachedFile.filename.in_({f.filename for f in mirrored}),
            )
        )
    ).scalars()
    return {(row.index_id, row.filename): row for row in rows}


def _is_cached(row: MirrorCachedFile | None) -> bool:
    """The file's bytes are here (a row may hold only its `.metadata`)."""
    return row is not None and row.sha256 is not None


def parse_metadata_file(path: Path) -> dict[str, Any]:
    """A cached METADATA file in the JSON API's shape (for mirrored releases, whose
    metadata is not stored as rows)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        return {}
    raw, _ = parse_email(data)
    shown: dict[str, Any] = {key: value for key, value in raw.items() if key != "project_urls"}
    urls = raw.get("project_urls")
    if isinstance(urls, dict):
        shown["project_urls"] = [f"{label}, {url}" for label, url in urls.items()]
    keywords = raw.get("keywords")
    if isinstance(keywords, list):
        shown["keywords"] = ",".join(keywords)
    return shown


async def project_details(
    session: AsyncSession,
    blobs: BlobStore,
    found: Lookup,
    project: str,
    version: str | None = None,
) -> ProjectDetails:
    """Everything the project page (or, with `version`, the release page) shows;
    404 when the index cannot see the project (nor any deleted release of it)."""
    chain = await resolve_chain(session, found.index)
    marks = await deleted_releases(session, chain, project)
    if found.view is None and marks:
        # Every release deleted and the project with them (`project.delete`): the page
        # still tells what was there, and who deleted it when.
        view = ProjectView(canonicalize_name(project), marks[0].display_name, [], [])
    else:
        view = found.require(project)
    stage_files = [f for f in view.files if not f.index.is_mirror]
    provenance = await provenance_of_releases(
        session, {(f.index.id, canonicalize_name(f.project), f.version) for f in stage_files}
    )
    cached = await _cached_mirror_files(session, view.files)
    documented = await releases_with_docs(
        session, {(f.index.id, canonicalize_name(f.project), f.version) for f in stage_files}
    )
    holders = sorted({f.index.path for f in view.files} | {found.index.path})
    downloads = await file_downloads(session, holders, view.name)
    daily = await daily_downloads(session, holders, view.name)
    shown_version = version
    yanked = {f.version for f in view.files if f.yanked}
    latest = latest_version(view.versions, yanked)
    if shown_version is None:
        shown_version = latest
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    if version is not None:
        wanted = [f for f in stage_files if f.version == version]
        results = await results_of_files(session, {(f.index.id, f.filename) for f in wanted})

    by_version: dict[str, list[VisibleFile]] = {}
    for f in view.files:
        by_version.setdefault(f.version, []).append(f)
    summaries = []
    for ver in sorted(by_version, key=version_key, reverse=True):
        files = sorted(by_version[ver], key=lambda f: (f.filename.endswith(".whl"), f.filename))
        origins: dict[str, Origin] = {}
        for f in files:
            if f.index.path in origins:
                continue
            if f.index.is_mirror:
                origins[f.index.path] = Origin(f.index.path, mirrored=True)
                continue
            pushed = provenance.get((f.index.id, canonicalize_name(f.project), f.version))
            uploaders = sorted(
                {g.uploader for g in files if g.index.path == f.index.path and g.uploader}
            )
            origins[f.index.path] = Origin(
                f.index.path,
                mirrored=False,
                uploaders=tuple(uploaders),
                pushed_from=pushed["pushed_from"] if pushed else None,
                pushed_by=pushed["pushed_by"] if pushed else None,
                pushed_at=pushed["pushed_at"] if pushed else None,
            )
        details = [
            FileDetails(
                file=f,
                tags=file_tags(f.filename),
                cached=_is_cached(cached.get((f.index.id, f.filename)))
                if f.index.is_mirror
                else None,
                downloads=downloads.get((f.index.path, f.filename), 0),
                results=results.get((f.index.id, f.filename), []),
            )
            for f in files
        ]
        times = [f.upload_time for f in files if f.upload_time]
        # Docs of a release inherited from a base are served under this index's path
        # too (docs/services.find_docs: the nearest index of the chain holding them).
        has_docs = any(
            (f.index.id, canonicalize_name(f.project), f.version) in documented for f in files
        )
        docs_at = f"/{found.index.path}/{view.name}/{ver}/+doc/" if has_docs else None
        summaries.append(
            VersionSummary(
                version=ver,
                yanked=any(f.yanked for f in files),
                yanked_reason=next((f.yanked_reason for f in files if f.yanked_reason), None),
                upload_time=min(times) if times else None,
                origins=list(origins.values()),
                files=details,
                docs_url=docs_at,
            )
        )
    live = {summary.version for summary in summaries}
    deleted: dict[str, VersionSummary] = {}
    for mark in marks:  # nearest index first: its mark is the one shown
        if mark.version not in live and mark.version not in deleted:
            deleted[mark.version] = VersionSummary(
                version=mark.version,
                yanked=False,
                yanked_reason=None,
                upload_time=None,
                origins=[],
                files=[],
                deleted=mark,
            )
    details_of = ProjectDetails(
        index=found.index,
        view=view,
        versions=summaries,
        latest=latest,
        metadata={},
        daily=daily,
        stale=found.stale,
        unavailable=found.unavailable,
        deleted=list(deleted.values()),
        project_deleted=found.view is None,
    )
    shown = details_of.version(shown_version) if shown_version else None
    found_metadata = await _metadata_of(blobs, shown, cached) if shown is not None else {}
    details_of.metadata = {key: found_metadata.get(key) for key in META_KEYS}
    return details_of


async def _metadata_of(
    blobs: BlobStore, shown: VersionSummary, cached: dict[tuple[int, str], MirrorCachedFile]
) -> dict[str, Any]:
    """The release's core metadata: stored with uploads; for a mirrored release, read
    from a cached METADATA file when there is one (in a thread: it is a file read)."""
    for details in shown.files:
        if details.file.metadata:
            return details.file.metadata
    for details in shown.files:
        row = cached.get((details.file.index.id, details.file.filename))
        if row is not None and row.core_metadata_sha256 and blobs.exists(row.core_metadata_sha256):
            path = blobs.path(row.core_metadata_sha256)
            try:
                return await asyncio.to_thread(parse_metadata_file, path)
            except (OSError, ValueError):
                continue
    return {}


@dataclass(frozen=True)
class ProjectEntry:
    name: str  # normalized
    display: str
    origin: str  # the nearest index holding it


@dataclass(frozen=True)
class ProjectListing:
    entries: list[ProjectEntry]  # this page's
    total: int  # matching the filter
    page: int
    pages: int
    own: int  # of all matching, held by the index itself


async def project_listing(
    session: AsyncSession, chain: list[IndexView], query: str, page: int
) -> ProjectListing:
    """The projects visible from chain[0], filtered by `query` (a substring of the name,
    compared normalized), `PROJECTS_PER_PAGE` a page."""
    everything = await project_origins(session, chain)
    needle = canonicalize_name(query) if query.strip() else ""
    matching = [
        ProjectEntry(name, display, origin)
        for name, display, origin in everything
        if not needle or needle in name or query.strip().lower() in display.lower()
    ]
    pages = max(1, -(-len(matching) // PROJECTS_PER_PAGE))
    page = min(max(1, page), pages)
    start = (page - 1) * PROJECTS_PER_PAGE
    own = sum(1 for entry in matching if entry.origin == chain[0].path)
    return ProjectListing(
        matching[start : start + PROJECTS_PER_PAGE], len(matching), page, pages, own
    )
