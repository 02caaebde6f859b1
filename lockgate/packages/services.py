"""Releases held by stage indexes: finding them, and yanking and deleting them
through the changelog (uploads, which add files, live in `uploads/`)."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.services import require_self_or_root
from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.errors import Forbidden, NotFound
from lockgate.indexes.models import Index
from lockgate.indexes.services import IndexView, require_index, require_upload_permission
from lockgate.packages.entries import (
    FileDelete,
    ProjectDelete,
    ReleaseDelete,
    ReleaseYank,
)
from lockgate.packages.models import DeletedRelease, Project, Release, ReleaseFile


@dataclass(frozen=True)
class OwnFile:
    """A file held by one stage index."""

    filename: str
    sha256: str
    core_metadata_sha256: str | None
    project: str  # normalized
    version: str


async def find_own_file(session: AsyncSession, index: IndexView, filename: str) -> OwnFile | None:
    """A file held by this very index (file URLs are served by their holder)."""
    row = (
        await session.execute(
            select(ReleaseFile, Release.version, Project.name)
            .join(Release, Release.id == ReleaseFile.release_id)
            .join(Project, Project.id == Release.project_id)
            .where(ReleaseFile.index_id == index.id, ReleaseFile.filename == filename)
        )
    ).first()
    if row is None:
        return None
    file, version, project = row
    return OwnFile(file.filename, file.sha256, file.core_metadata_sha256, project, version)


async def release_exists(
    session: AsyncSession, index: IndexView, project: str, version: str
) -> bool:
    row = (
        await session.execute(
            select(Release.id)
            .join(Project, Release.project_id == Project.id)
            .where(
                Project.index_id == index.id,
                Project.name == canonicalize_name(project),
                Release.version == version,
            )
        )
    ).first()
    return row is not None


async def project_releases(
    session: AsyncSession, index: IndexView, project: str
) -> list[str] | None:
    """Versions of a project held by this index; None when it holds no such project
    ([] for a tombstone: all releases deleted, name still held)."""
    row = (
        await session.execute(
            select(Project.id).where(
                Project.index_id == index.id, Project.name == canonicalize_name(project)
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return list(
        (await session.execute(select(Release.version).where(Release.project_id == row)))
        .scalars()
        .all()
    )


async def _writable_release(
    session: AsyncSession, actor: Actor, user: str, name: str, project: str, version: str
) -> IndexView:
    index = await require_index(session, user, name)
    require_upload_permission(actor.name, index, project)
    if not await release_exists(session, index, project, version):
        raise NotFound(f"release {project} {version} not found on index {index.path}")
    return index


async def yank_release(
    session: AsyncSession,
    actor: Actor,
    user: str,
    name: str,
    project: str,
    version: str,
    *,
    yanked: bool,
    reason: str | None,
) -> None:
    """Yank (PEP 592, with an optional reason) or unyank a release."""
    index = await _writable_release(session, actor, user, name, project, version)
    await record(
        session,
        ReleaseYank(
            user=index.user,
            index=index.name,
            project=project,
            version=version,
            yanked=yanked,
            reason=reason if yanked else None,
        ),
        actor,
    )


async def delete_release(
    session: AsyncSession, actor: Actor, user: str, name: str, project: str, version: str
) -> None:
    index = await _writable_release(session, actor, user, name, project, version)
    if not index.volatile:
        raise Forbidden(f"index {index.path} is not volatile: releases cannot be deleted from it")
    await record(
        session,
        ReleaseDelete(
            user=index.user,
            index=index.name,
            project=project,
            version=version,
            deleted_at=utcnow_iso(),
        ),
        actor,
    )


async def delete_file(
    session: AsyncSession, actor: Actor, user: str, name: str, key: str, filename: str
) -> None:
    index = await require_index(session, user, name)
    found = await find_own_file(session, index, filename)
    if found is None or not found.sha256.startswith(key.lower()):
        raise NotFound(f"file {filename!r} not found on index {index.path}")
    require_upload_permission(actor.name, index, found.project)
    if not index.volatile:
        raise Forbidden(f"index {index.path} is not volatile: files cannot be deleted from it")
    await record(
        session,
        FileDelete(user=index.user, index=index.name, filename=filename, deleted_at=utcnow_iso()),
        actor,
    )


async def delete_project(
    session: AsyncSession, actor: Actor, user: str, name: str, project: str
) -> IndexView:
    """Delete a project and release its name (its tombstone goes too).

    Only the index owner or root: while the name is held, mirror releases of it
    stay hidden from everything that inherits this index.
    """
    require_self_or_root(actor.name, user)
    index = await require_index(session, user, name)
    releases = await project_releases(session, index, project)
    if releases is None:
        raise NotFound(f"project {project} not found on index {index.path}")
    if releases and not index.volatile:
        raise Forbidden(
            f"index {index.path} is not volatile: project {project} still has "
            f"{len(releases)} release(s) and cannot be deleted"
        )
    await record(
        session,
        ProjectDelete(user=index.user, index=index.name, project=project, deleted_at=utcnow_iso()),
        actor,
    )
    return index


async def release_files(
    session: AsyncSession, user: str, name: str, project: str, version: str
) -> list[tuple[str, str]]:
    """(filename, sha256) of a release's files on one index, sdists first."""
    rows = (
        await session.execute(
            select(ReleaseFile.filename, ReleaseFile.sha256)
            .join(Release, Release.id == ReleaseFile.release_id)
            .join(Project, Project.id == Release.project_id)
            .join(Index, Index.id == Project.index_id)
            .where(
                Index.user_name == user,
                Index.name == name,
                Project.name == canonicalize_name(project),
                Release.version == version,
            )
        )
    ).all()
    return sorted(((f, s) for f, s in rows), key=lambda row: (row[0].endswith(".whl"), row[0]))


@dataclass(frozen=True)
class ReleaseState:
    """A release on one index, as its management page shows it."""

    index: IndexView
    project: str  # normalized
    version: str
    yanked: bool
    yanked_reason: str | None
    files: list[tuple[str, str]]  # (filename, sha256), sdists first


async def release_state(
    session: AsyncSession, user: str, name: str, project: str, version: str
) -> ReleaseState:
    """404 when the index does not hold that release."""
    index = await require_index(session, user, name)
    row = (
        await session.execute(
            select(Release.yanked, Release.yanked_reason)
            .join(Project, Release.project_id == Project.id)
            .where(
                Project.index_id == index.id,
                Project.name == canonicalize_name(project),
                Release.version == version,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"release {project} {version} not found on index {index.path}")
    files = await release_files(session, user, name, project, version)
    return ReleaseState(index, canonicalize_name(project), version, bool(row[0]), row[1], files)


@dataclass(frozen=True)
class DeletedMark:
    """A release deleted from a stage index, as the project page shows it."""

    index: str  # user/index
    index_id: int
    project: str  # normalized
    display_name: str
    version: str
    deleted_at: str
    deleted_by: str | None


async def deleted_releases(
    session: AsyncSession, indexes: list[IndexView], project: str
) -> list[DeletedMark]:
    """The deleted-release marks of `project` on these indexes (one query), in the
    order of `indexes` (nearest first), each index's newest deletion first."""
    stage = {index.id: index for index in indexes if not index.is_mirror}
    if not stage:
        return []
    rows = (
        (
            await session.execute(
                select(DeletedRelease).where(
                    DeletedRelease.index_id.in_(stage),
                    DeletedRelease.project == canonicalize_name(project),
                )
            )
        )
        .scalars()
        .all()
    )
    order = {index_id: position for position, index_id in enumerate(stage)}
    rows = sorted(rows, key=lambda row: row.deleted_at, reverse=True)
    return [
        DeletedMark(
            stage[row.index_id].path,
            row.index_id,
            row.project,
            row.display_name,
            row.version,
            row.deleted_at,
            row.deleted_by,
        )
        for row in sorted(rows, key=lambda row: order[row.index_id])
    ]
