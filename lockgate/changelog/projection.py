"""The projection: how each changelog entry kind changes the state tables.

Entries name things by natural keys (user, index, project, version, filename),
never by row ids, so the same entry applies on another node or after an import.
Appliers are idempotent upserts where that is natural, so replaying is safe.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.models import User
from lockgate.indexes.models import Index
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProject, MirrorProjectList
from lockgate.packages.models import Project, Release, ReleaseFile
from lockgate.transfer.models import ImportMark

Applier = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]
APPLIERS: dict[str, Applier] = {}


class UnknownEntryKind(ValueError):
    pass


def applier(kind: str) -> Callable[[Applier], Applier]:
    def register(func: Applier) -> Applier:
        APPLIERS[kind] = func
        return func

    return register


async def apply_entry(session: AsyncSession, kind: str, payload: dict[str, Any]) -> None:
    try:
        func = APPLIERS[kind]
    except KeyError:
        raise UnknownEntryKind(f"unknown changelog entry kind {kind!r}") from None
    await func(session, payload)


async def _index(session: AsyncSession, user: str, name: str) -> Index:
    return (
        await session.execute(select(Index).where(Index.user_name == user, Index.name == name))
    ).scalar_one()


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


@applier("user.put")
async def _user_put(session: AsyncSession, p: dict[str, Any]) -> None:
    user = (await session.execute(select(User).where(User.name == p["name"]))).scalar_one_or_none()
    if user is None:
        session.add(
            User(
                name=p["name"],
                password_hash=p["password_hash"],
                email=p.get("email"),
                created_at=p["created_at"],
            )
        )
    else:
        user.password_hash = p["password_hash"]
        user.email = p.get("email")
    await session.flush()


@applier("user.delete")
async def _user_delete(session: AsyncSession, p: dict[str, Any]) -> None:
    index_ids = select(Index.id).where(Index.user_name == p["name"])
    await _delete_index_contents(session, index_ids)
    await session.execute(delete(Index).where(Index.user_name == p["name"]))
    await session.execute(delete(User).where(User.name == p["name"]))


@applier("index.put")
async def _index_put(session: AsyncSession, p: dict[str, Any]) -> None:
    existing = (
        await session.execute(
            select(Index).where(Index.user_name == p["user"], Index.name == p["name"])
        )
    ).scalar_one_or_none()
    config = json.dumps(p["config"], sort_keys=True)
    if existing is None:
        session.add(Index(user_name=p["user"], name=p["name"], type=p["type"], config=config))
    else:
        existing.type = p["type"]
        existing.config = config
    await session.flush()


async def _delete_index_contents(session: AsyncSession, index_ids: Any) -> None:
    # Explicit deletes rather than relying on ON DELETE CASCADE, which SQLite
    # only honours with foreign_keys=ON on every connection.
    project_ids = select(Project.id).where(Project.index_id.in_(index_ids))
    release_ids = select(Release.id).where(Release.project_id.in_(project_ids))
    await session.execute(delete(ReleaseFile).where(ReleaseFile.release_id.in_(release_ids)))
    await session.execute(delete(Release).where(Release.project_id.in_(project_ids)))
    await session.execute(delete(Project).where(Project.index_id.in_(index_ids)))
    for table in (MirrorLink, MirrorProject, MirrorCachedFile, MirrorProjectList):
        await session.execute(delete(table).where(table.index_id.in_(index_ids)))


@applier("index.delete")
async def _index_delete(session: AsyncSession, p: dict[str, Any]) -> None:
    index_ids = select(Index.id).where(Index.user_name == p["user"], Index.name == p["name"])
    await _delete_index_contents(session, index_ids)
    await session.execute(
        delete(Index).where(Index.user_name == p["user"], Index.name == p["name"])
    )


@applier("file.add")
async def _file_add(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    project = await _project(session, index.id, p["project"])
    if project is None:
        project = Project(
            index_id=index.id, name=canonicalize_name(p["project"]), display_name=p["project"]
        )
        session.add(project)
        await session.flush()
    else:
        project.display_name = p["project"]
    release = await _release(session, project.id, p["version"])
    if release is None:
        release = Release(
            project_id=project.id,
            version=p["version"],
            yanked=False,
            yanked_reason=None,
            metadata_json=json.dumps(p.get("metadata", {}), sort_keys=True),
            created_at=p["upload_time"],
        )
        session.add(release)
        await session.flush()
    await session.execute(
        delete(ReleaseFile).where(
            ReleaseFile.index_id == index.id, ReleaseFile.filename == p["filename"]
        )
    )
    session.add(
        ReleaseFile(
            release_id=release.id,
            index_id=index.id,
            filename=p["filename"],
            sha256=p["sha256"],
            blake2_256=p.get("blake2_256"),
            md5=p.get("md5"),
            size=p["size"],
            packagetype=p["packagetype"],
            python_version=p["python_version"],
            requires_python=p.get("requires_python"),
            core_metadata_sha256=p.get("core_metadata_sha256"),
            upload_time=p["upload_time"],
            uploader=p.get("uploader"),
        )
    )
    await session.flush()


async def _drop_empty_release(session: AsyncSession, release_id: int) -> None:
    """A release without files goes; its project stays, even with no releases
    left, as a tombstone that keeps mirror releases of the name hidden
    (dependency confusion, RELIABILITY DC-7) until `project.delete`."""
    left = (
        await session.execute(select(ReleaseFile.id).where(ReleaseFile.release_id == release_id))
    ).first()
    if left is None:
        await session.execute(delete(Release).where(Release.id == release_id))


@applier("file.delete")
async def _file_delete(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    file = (
        await session.execute(
            select(ReleaseFile).where(
                ReleaseFile.index_id == index.id, ReleaseFile.filename == p["filename"]
            )
        )
    ).scalar_one_or_none()
    if file is None:
        return
    await session.execute(delete(ReleaseFile).where(ReleaseFile.id == file.id))
    await _drop_empty_release(session, file.release_id)


@applier("release.delete")
async def _release_delete(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    project = await _project(session, index.id, p["project"])
    if project is None:
        return
    release = await _release(session, project.id, p["version"])
    if release is None:
        return
    await session.execute(delete(ReleaseFile).where(ReleaseFile.release_id == release.id))
    await session.execute(delete(Release).where(Release.id == release.id))


@applier("project.delete")
async def _project_delete(session: AsyncSession, p: dict[str, Any]) -> None:
    """Remove a project, its releases and its tombstone: the name is released."""
    index = await _index(session, p["user"], p["index"])
    project = await _project(session, index.id, p["project"])
    if project is None:
        return
    release_ids = select(Release.id).where(Release.project_id == project.id)
    await session.execute(delete(ReleaseFile).where(ReleaseFile.release_id.in_(release_ids)))
    await session.execute(delete(Release).where(Release.project_id == project.id))
    await session.execute(delete(Project).where(Project.id == project.id))


@applier("release.yank")
async def _release_yank(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    project = await _project(session, index.id, p["project"])
    release = await _release(session, project.id, p["version"]) if project else None
    if release is None:
        return
    release.yanked = bool(p["yanked"])
    release.yanked_reason = p.get("reason") if p["yanked"] else None
    await session.flush()


# --- the mirror cache -------------------------------------------------------


@applier("mirror.page")
async def _mirror_page(session: AsyncSession, p: dict[str, Any]) -> None:
    """Replace a cached upstream page (project row and all its links)."""
    index = await _index(session, p["user"], p["index"])
    name = canonicalize_name(p["project"])
    project = (
        await session.execute(
            select(MirrorProject).where(
                MirrorProject.index_id == index.id, MirrorProject.name == name
            )
        )
    ).scalar_one_or_none()
    if project is None:
        project = MirrorProject(index_id=index.id, name=name, display_name=p["display_name"])
        session.add(project)
    project.display_name = p["display_name"]
    project.status = p.get("status")
    project.status_reason = p.get("status_reason")
    project.etag = p.get("etag")
    project.last_modified = p.get("last_modified")
    project.upstream_serial = p.get("upstream_serial")
    await session.execute(
        delete(MirrorLink).where(MirrorLink.index_id == index.id, MirrorLink.project == name)
    )
    # Another project's page may have listed the same filename before (renames
    # upstream); the newest page owns it.
    filenames = [link["filename"] for link in p["links"]]
    if filenames:
        await session.execute(
            delete(MirrorLink).where(
                MirrorLink.index_id == index.id, MirrorLink.filename.in_(filenames)
            )
        )
    for link in p["links"]:
        session.add(MirrorLink(index_id=index.id, project=name, **link))
    await session.flush()


@applier("mirror.gone")
async def _mirror_gone(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    name = canonicalize_name(p["project"])
    await session.execute(
        delete(MirrorLink).where(MirrorLink.index_id == index.id, MirrorLink.project == name)
    )
    await session.execute(
        delete(MirrorProject).where(MirrorProject.index_id == index.id, MirrorProject.name == name)
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


@applier("mirror.file")
async def _mirror_file(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    row = await _cached_file(session, index.id, p["filename"])
    row.sha256 = p["sha256"]
    row.size = p["size"]
    row.cached_at = p["cached_at"]
    if p.get("core_metadata_sha256"):
        row.core_metadata_sha256 = p["core_metadata_sha256"]
    await session.flush()


@applier("mirror.metadata")
async def _mirror_metadata(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    row = await _cached_file(session, index.id, p["filename"])
    row.core_metadata_sha256 = p["sha256"]
    if row.cached_at is None:
        row.cached_at = p["cached_at"]
    await session.flush()


@applier("mirror.projectlist")
async def _mirror_projectlist(session: AsyncSession, p: dict[str, Any]) -> None:
    index = await _index(session, p["user"], p["index"])
    row = await session.get(MirrorProjectList, index.id)
    if row is None:
        row = MirrorProjectList(index_id=index.id)
        session.add(row)
    row.sha256 = p["sha256"]
    row.count = p["count"]
    row.fetched_at = p["fetched_at"]
    await session.flush()


@applier("mirror.purge")
async def _mirror_purge(session: AsyncSession, p: dict[str, Any]) -> None:
    """Forget cached files the upstream no longer lists (`lockgate gc`)."""
    index = await _index(session, p["user"], p["index"])
    await session.execute(
        delete(MirrorCachedFile).where(
            MirrorCachedFile.index_id == index.id,
            MirrorCachedFile.filename.in_(p["filenames"]),
        )
    )


@applier("import.mark")
async def _import_mark(session: AsyncSession, p: dict[str, Any]) -> None:
    """How far the bundles from one source server have been imported."""
    mark = await session.get(ImportMark, p["source_server_id"])
    if mark is None:
        mark = ImportMark(source_server_id=p["source_server_id"])
        session.add(mark)
    mark.serial = p["serial"]
    mark.hash = p["hash"]
    mark.imported_at = p["imported_at"]
    await session.flush()
