"""Changelog entry kinds of the packages domain: files added to and removed from
stage indexes, releases yanked and deleted, projects deleted.

A deleted release leaves a mark (`DeletedRelease`: who, when) that the project page
shows; the appliers write it, so it is made in the entry's transaction on every node
(the primary, a replica, an import, a replay), and an upload of that version again
clears it. `packages/deleted.py` derives the same marks from an older changelog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload, current_entry
from lockgate.changelog.registry import EntryRegistry
from lockgate.changelog.writer import utcnow_iso
from lockgate.indexes.entries import index_paths, index_row
from lockgate.packages.models import DeletedRelease, Project, Release, ReleaseFile


async def _project(session: AsyncSession, index_id: int, project: str) -> Project | None:
    return (
        await session.execute(
            select(Project).where(
                Project.index_id == index_id, Project.name == canonicalize_name(project)
            )
        )
    ).scalar_one_or_none()


async def _release(session: AsyncSession, project_id: int, version: str) -> Release | None:
    return (
        await session.execute(
            select(Release).where(Release.project_id == project_id, Release.version == version)
        )
    ).scalar_one_or_none()


async def _find_release(
    session: AsyncSession, user: str, index: str, project: str, version: str
) -> Release | None:
    index_id = (await index_row(session, user, index)).id
    found = await _project(session, index_id, project)
    return await _release(session, found.id, version) if found else None


@dataclass(frozen=True)
class FileAdd(Payload):
    """A distribution file stored in a stage index (an upload, or an import)."""

    KIND = "file.add"
    user: str
    index: str
    project: str  # as uploaded; stored normalized with this display name
    version: str
    filename: str
    sha256: str
    size: int
    packagetype: str
    python_version: str
    upload_time: str
    blake2_256: str | None = None
    md5: str | None = None
    requires_python: str | None = None
    core_metadata_sha256: str | None = None
    uploader: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # core metadata, JSON API shape

    def blobs(self) -> tuple[str, ...]:
        return tuple(sha for sha in (self.sha256, self.core_metadata_sha256) if sha)

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        project = await _project(session, index.id, self.project)
        if project is None:
            project = Project(
                index_id=index.id, name=canonicalize_name(self.project), display_name=self.project
            )
            session.add(project)
            await session.flush()
        else:
            project.display_name = self.project
        await session.execute(
            delete(DeletedRelease).where(
                DeletedRelease.index_id == index.id,
                DeletedRelease.project == project.name,
                DeletedRelease.version == self.version,
            )
        )
        release = await _release(session, project.id, self.version)
        if release is None:
            release = Release(
                project_id=project.id,
                version=self.version,
                yanked=False,
                yanked_reason=None,
                metadata_json=json.dumps(self.metadata, sort_keys=True),
                created_at=self.upload_time,
            )
            session.add(release)
            await session.flush()
        await session.execute(
            delete(ReleaseFile).where(
                ReleaseFile.index_id == index.id, ReleaseFile.filename == self.filename
            )
        )
        session.add(
            ReleaseFile(
                release_id=release.id,
                index_id=index.id,
                filename=self.filename,
                sha256=self.sha256,
                blake2_256=self.blake2_256,
                md5=self.md5,
                size=self.size,
                packagetype=self.packagetype,
                python_version=self.python_version,
                requires_python=self.requires_python,
                core_metadata_sha256=self.core_metadata_sha256,
                upload_time=self.upload_time,
                uploader=self.uploader,
            )
        )
        await session.flush()


async def _drop_empty_release(
    session: AsyncSession, release_id: int, deleted_at: str | None
) -> None:
    """A release without files goes (marked deleted: its last file was); its project
    stays, even with no releases left, as a tombstone that keeps mirror releases of
    the name hidden (dependency confusion, docs/reliability.md DC-7) until
    `project.delete`."""
    left = (
        await session.execute(select(ReleaseFile.id).where(ReleaseFile.release_id == release_id))
    ).first()
    if left is None:
        release = await session.get(Release, release_id)
        project = await session.get(Project, release.project_id) if release else None
        if release is not None and project is not None:
            await _mark_deleted(session, project, release.version, deleted_at)
        await session.execute(delete(Release).where(Release.id == release_id))


async def _mark_deleted(
    session: AsyncSession, project: Project, version: str, deleted_at: str | None
) -> None:
    """Record `version` of `project` as deleted by the entry being applied (its actor;
    the time the service wrote into the payload, else the entry's own)."""
    entry = current_entry(session)
    at = deleted_at or (entry.created_at if entry is not None else utcnow_iso())
    mark = (
        await session.execute(
            select(DeletedRelease).where(
                DeletedRelease.index_id == project.index_id,
                DeletedRelease.project == project.name,
                DeletedRelease.version == version,
            )
        )
    ).scalar_one_or_none()
    if mark is None:
        mark = DeletedRelease(index_id=project.index_id, project=project.name, version=version)
        session.add(mark)
    mark.display_name = project.display_name
    mark.deleted_at = at
    mark.deleted_by = entry.actor if entry is not None else None


@dataclass(frozen=True)
class FileDelete(Payload):
    KIND = "file.delete"
    user: str
    index: str
    filename: str
    deleted_at: str | None = None  # as for `release.delete` (used when it was the last file)

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        file = (
            await session.execute(
                select(ReleaseFile).where(
                    ReleaseFile.index_id == index.id, ReleaseFile.filename == self.filename
                )
            )
        ).scalar_one_or_none()
        if file is None:
            return
        await session.execute(delete(ReleaseFile).where(ReleaseFile.id == file.id))
        await _drop_empty_release(session, file.release_id, self.deleted_at)


@dataclass(frozen=True)
class ReleaseDelete(Payload):
    KIND = "release.delete"
    user: str
    index: str
    project: str
    version: str
    # When it was deleted (written by the service; entries from before it existed use
    # the entry's time): an import re-records entries at its own time, the mark keeps
    # the original one.
    deleted_at: str | None = None

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        project = await _project(session, index.id, self.project)
        release = await _release(session, project.id, self.version) if project else None
        if project is None or release is None:
            return
        await _mark_deleted(session, project, release.version, self.deleted_at)
        await session.execute(delete(ReleaseFile).where(ReleaseFile.release_id == release.id))
        await session.execute(delete(Release).where(Release.id == release.id))


@dataclass(frozen=True)
class ProjectDelete(Payload):
    """A project, its releases and its tombstone removed: the name is released."""

    KIND = "project.delete"
    user: str
    index: str
    project: str
    deleted_at: str | None = None  # as for `release.delete`

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        project = await _project(session, index.id, self.project)
        if project is None:
            return
        versions = (
            await session.execute(select(Release.version).where(Release.project_id == project.id))
        ).scalars()
        for version in sorted(versions):
            await _mark_deleted(session, project, version, self.deleted_at)
        release_ids = select(Release.id).where(Release.project_id == project.id)
        await session.execute(delete(ReleaseFile).where(ReleaseFile.release_id.in_(release_ids)))
        await session.execute(delete(Release).where(Release.project_id == project.id))
        await session.execute(delete(Project).where(Project.id == project.id))


@dataclass(frozen=True)
class ReleaseYank(Payload):
    """A release yanked (with an optional reason) or unyanked (PEP 592)."""

    KIND = "release.yank"
    user: str
    index: str
    project: str
    version: str
    yanked: bool
    reason: str | None = None

    async def apply(self, session: AsyncSession) -> None:
        release = await _find_release(session, self.user, self.index, self.project, self.version)
        if release is None:
            return
        release.yanked = bool(self.yanked)
        release.yanked_reason = self.reason if self.yanked else None
        await session.flush()


async def digest(session: AsyncSession) -> dict[str, Any]:
    indexes = await index_paths(session)
    projects = {p.id: p for p in (await session.execute(select(Project))).scalars()}
    releases = {r.id: r for r in (await session.execute(select(Release))).scalars()}
    files = (await session.execute(select(ReleaseFile))).scalars()
    marks = (await session.execute(select(DeletedRelease))).scalars()
    return {
        "deleted_releases": sorted(
            (
                indexes[m.index_id],
                m.project,
                m.display_name,
                m.version,
                m.deleted_at,
                m.deleted_by or "",
            )
            for m in marks
        ),
        "projects": sorted(
            (indexes[p.index_id], p.name, p.display_name) for p in projects.values()
        ),
        "releases": sorted(
            (
                indexes[projects[r.project_id].index_id],
                projects[r.project_id].name,
                r.version,
                r.yanked,
                r.yanked_reason or "",
                r.metadata_json,
                r.created_at,
            )
            for r in releases.values()
        ),
        "files": sorted(
            (
                indexes[f.index_id],
                f.filename,
                projects[releases[f.release_id].project_id].name,
                releases[f.release_id].version,
                f.sha256,
                f.blake2_256 or "",
                f.md5 or "",
                f.size,
                f.packagetype,
                f.python_version,
                f.requires_python or "",
                f.core_metadata_sha256 or "",
                f.upload_time,
                f.uploader or "",
            )
            for f in files
        ),
    }


async def live_blobs(session: AsyncSession) -> set[str]:
    rows = (
        await session.execute(select(ReleaseFile.sha256, ReleaseFile.core_metadata_sha256))
    ).all()
    return {sha for row in rows for sha in row if sha}


def register(registry: EntryRegistry) -> None:
    registry.register(FileAdd, FileDelete, ReleaseDelete, ProjectDelete, ReleaseYank)
    registry.register_digest("packages", digest)
    registry.register_blob_refs("packages", live_blobs)
