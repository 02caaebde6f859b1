"""Changelog entry kinds of the mirror cache: upstream pages cached or gone,
files and metadata cached, the upstream's project list, purges by `lockgate gc`.

Everything cached is an entry, so replicas and export bundles carry the cache;
freshness (when a page was last confirmed) is per node and lives in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload, to_plain
from lockgate.changelog.registry import EntryRegistry, row_values
from lockgate.distfiles import project_from_filename, version_from_filename
from lockgate.indexes.entries import index_paths, index_row
from lockgate.mirror.metatext import MetadataText
from lockgate.mirror.models import (
    MirrorCachedFile,
    MirrorLink,
    MirrorProject,
    MirrorProjectList,
    MirrorText,
)
from lockgate.mirror.pages import UpstreamLink


@dataclass(frozen=True)
class MirrorPage(Payload):
    """A cached upstream page replaced: the project row and all its links."""

    KIND = "mirror.page"
    CACHE_ONLY = True
    user: str
    index: str
    project: str
    display_name: str
    links: tuple[UpstreamLink, ...]
    status: str | None = None  # PEP 792 marker
    status_reason: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    upstream_serial: int | None = None

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        name = canonicalize_name(self.project)
        project = (
            await session.execute(
                select(MirrorProject).where(
                    MirrorProject.index_id == index.id, MirrorProject.name == name
                )
            )
        ).scalar_one_or_none()
        if project is None:
            project = MirrorProject(index_id=index.id, name=name, display_name=self.display_name)
            session.add(project)
        project.display_name = self.display_name
        project.status = self.status
        project.status_reason = self.status_reason
        project.etag = self.etag
        project.last_modified = self.last_modified
        project.upstream_serial = self.upstream_serial
        await session.execute(
            delete(MirrorLink).where(MirrorLink.index_id == index.id, MirrorLink.project == name)
        )
        # Another project's page may have listed the same filename before (renames
        # upstream); the newest page owns it.
        filenames = [link.filename for link in self.links]
        if filenames:
            await session.execute(
                delete(MirrorLink).where(
                    MirrorLink.index_id == index.id, MirrorLink.filename.in_(filenames)
                )
            )
        for link in self.links:
            session.add(MirrorLink(index_id=index.id, project=name, **to_plain(link)))
        await session.flush()


@dataclass(frozen=True)
class MirrorGone(Payload):
    """The upstream no longer has the project: its cached page goes (files stay for gc)."""

    KIND = "mirror.gone"
    CACHE_ONLY = True
    user: str
    index: str
    project: str

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        name = canonicalize_name(self.project)
        await session.execute(
            delete(MirrorLink).where(MirrorLink.index_id == index.id, MirrorLink.project == name)
        )
        await session.execute(
            delete(MirrorProject).where(
                MirrorProject.index_id == index.id, MirrorProject.name == name
            )
        )


async def _cached_file(session: AsyncSession, index_id: int, filename: str) -> MirrorCachedFile:
    row = (
        await session.execute(
            select(MirrorCachedFile).where(
                MirrorCachedFile.index_id == index_id, MirrorCachedFile.filename == filename
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = MirrorCachedFile(index_id=index_id, filename=filename)
        session.add(row)
    return row


def text_fields(text: MetadataText | None) -> dict[str, Any]:
    """The payload fields of a metadata text (none when there is no text)."""
    if not text:
        return {}
    return {
        "summary": text.summary,
        "description": text.description,
        "keywords": text.keywords,
        "classifiers": text.classifiers,
    }


def _text_of(payload: Any) -> MetadataText:
    return MetadataText(
        payload.summary, payload.description, payload.keywords, tuple(payload.classifiers)
    )


async def _keep_text(
    session: AsyncSession, index_id: int, filename: str, text: MetadataText | None
) -> None:
    """Store the searchable text of the file's version (the latest cached file of a
    version wins; every file of a version carries the same metadata)."""
    version = version_from_filename(filename)
    if not text or not version:
        return
    project = canonicalize_name(project_from_filename(filename))
    row = (
        await session.execute(
            select(MirrorText).where(
                MirrorText.index_id == index_id,
                MirrorText.project == project,
                MirrorText.version == version,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = MirrorText(index_id=index_id, project=project, version=version)
        session.add(row)
    row.summary = text.summary
    row.description = text.description
    row.keywords = text.keywords
    row.classifiers = "\n".join(text.classifiers)
    await session.flush()


@dataclass(frozen=True)
class MirrorFile(Payload):
    """A mirrored file's bytes are in the blob store (with metadata extracted from it)."""

    KIND = "mirror.file"
    CACHE_ONLY = True
    user: str
    index: str
    filename: str
    sha256: str
    size: int
    cached_at: str
    core_metadata_sha256: str | None = None
    # The metadata's searchable text (`metatext.py`; absent from older entries).
    summary: str = ""
    description: str = ""
    keywords: str = ""
    classifiers: tuple[str, ...] = ()

    def blobs(self) -> tuple[str, ...]:
        return tuple(sha for sha in (self.sha256, self.core_metadata_sha256) if sha)

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        row = await _cached_file(session, index.id, self.filename)
        row.sha256 = self.sha256
        row.size = self.size
        row.cached_at = self.cached_at
        if self.core_metadata_sha256:
            row.core_metadata_sha256 = self.core_metadata_sha256
            row.metadata_missing = False
        await session.flush()
        await _keep_text(session, index.id, self.filename, _text_of(self))


@dataclass(frozen=True)
class MirrorMetadata(Payload):
    """A mirrored file's `.metadata` (PEP 658) is in the blob store."""

    KIND = "mirror.metadata"
    CACHE_ONLY = True
    user: str
    index: str
    filename: str
    sha256: str
    cached_at: str
    summary: str = ""  # the searchable text, as MirrorFile's
    description: str = ""
    keywords: str = ""
    classifiers: tuple[str, ...] = ()

    def blobs(self) -> tuple[str, ...]:
        return (self.sha256,)

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        row = await _cached_file(session, index.id, self.filename)
        row.core_metadata_sha256 = self.sha256
        row.metadata_missing = False
        if row.cached_at is None:
            row.cached_at = self.cached_at
        await session.flush()
        await _keep_text(session, index.id, self.filename, _text_of(self))


@dataclass(frozen=True)
class MirrorNoMetadata(Payload):
    """A mirrored wheel without upstream metadata has no readable METADATA of its own:
    pages stop advertising a synthesized `.metadata` for it (docs/reliability.md MC-6)."""

    KIND = "mirror.nometadata"
    CACHE_ONLY = True
    user: str
    index: str
    filename: str
    reason: str
    checked_at: str

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        row = await _cached_file(session, index.id, self.filename)
        row.metadata_missing = True
        if row.cached_at is None:
            row.cached_at = self.checked_at
        await session.flush()


@dataclass(frozen=True)
class MirrorProjectListSet(Payload):
    """The upstream's project list, a blob of newline-separated names."""

    KIND = "mirror.projectlist"
    CACHE_ONLY = True
    user: str
    index: str
    sha256: str
    count: int
    fetched_at: str

    def blobs(self) -> tuple[str, ...]:
        return (self.sha256,)

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        row = await session.get(MirrorProjectList, index.id)
        if row is None:
            row = MirrorProjectList(index_id=index.id)
            session.add(row)
        row.sha256 = self.sha256
        row.count = self.count
        row.fetched_at = self.fetched_at
        await session.flush()


@dataclass(frozen=True)
class MirrorPurge(Payload):
    """Cached files the upstream no longer lists are forgotten (`lockgate gc`)."""

    KIND = "mirror.purge"
    user: str
    index: str
    filenames: tuple[str, ...]

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        await session.execute(
            delete(MirrorCachedFile).where(
                MirrorCachedFile.index_id == index.id,
                MirrorCachedFile.filename.in_(self.filenames),
            )
        )


async def digest(session: AsyncSession) -> dict[str, Any]:
    indexes = await index_paths(session)
    return {
        table.__tablename__: sorted(
            (indexes[getattr(row, "index_id")], *row_values(row, "id", "index_id"))  # noqa: B009
            for row in (await session.execute(select(table))).scalars()
        )
        for table in (MirrorProject, MirrorLink, MirrorCachedFile, MirrorProjectList, MirrorText)
    }


async def live_blobs(session: AsyncSession) -> set[str]:
    files = (
        await session.execute(
            select(MirrorCachedFile.sha256, MirrorCachedFile.core_metadata_sha256)
        )
    ).all()
    lists = (await session.execute(select(MirrorProjectList.sha256))).scalars()
    return {sha for row in files for sha in row if sha} | {sha for sha in lists if sha}


def register(registry: EntryRegistry) -> None:
    registry.register(
        MirrorPage,
        MirrorGone,
        MirrorFile,
        MirrorMetadata,
        MirrorNoMetadata,
        MirrorProjectListSet,
        MirrorPurge,
    )
    registry.register_digest("mirror", digest)
    registry.register_blob_refs("mirror", live_blobs)
