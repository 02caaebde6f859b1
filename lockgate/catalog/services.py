"""Reading what an index offers through its inheritance chain.

The rules (docs/architecture.md, "Indexes and inheritance"):
- the chain is the index, then its bases depth first; the nearest index wins
  for the same file name, and versions are merged;
- dependency-confusion guard: when any stage index in the chain holds a
  project, files of that name from mirror indexes are hidden unless every
  stage holding it lists the name (or '*') in its `mirror_whitelist`;
- reserved namespaces (docs/reliability.md DC-6): a name in one is never taken
  from a mirror, held privately or not, unless the index looked up or a stage
  holding the name lists that very name in its `mirror_whitelist` ('*' is not
  enough). A mirror index looked up directly never serves such names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.distfiles import packagetype_of, version_from_filename
from lockgate.indexes.services import IndexView
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProject
from lockgate.namespaces.services import covers, namespace_of, reserved_names
from lockgate.packages.models import Project, Release, ReleaseFile
from lockgate.urls import file_key, file_path


@dataclass(frozen=True)
class VisibleFile:
    index: IndexView  # the index that holds the file
    project: str  # display name
    version: str
    filename: str
    sha256: str | None
    blake2_256: str | None
    md5: str | None
    size: int | None
    packagetype: str
    python_version: str
    requires_python: str | None
    core_metadata_sha256: str | None
    upload_time: str | None
    yanked: bool
    yanked_reason: str | None
    metadata: dict[str, Any]
    core_metadata: bool = False  # metadata available (with or without a known hash)
    url_key: str | None = None  # the `+f/{key}/` segment when there is no sha256
    uploader: str | None = None  # who uploaded it (stage files)

    @property
    def url_path(self) -> str:
        """Server-absolute path of the file (files are served by the index holding them)."""
        key = file_key(self.sha256) if self.sha256 else self.url_key
        return file_path(self.index.path, key or "", self.filename)


@dataclass(frozen=True)
class ProjectView:
    name: str  # normalized
    display_name: str
    files: list[VisibleFile]
    versions: list[str]  # every version with files, merged over the chain
    status: str | None = None  # PEP 792 marker passed on from a mirror
    status_reason: str | None = None


async def mirrors_to_consult(
    session: AsyncSession, chain: list[IndexView], project: str
) -> list[IndexView]:
    """Mirror indexes whose upstream may be asked about `project`.

    None when a stage index in the chain holds the project and has not
    allowed the name from mirrors, or when the name lies in a reserved
    namespace that is not explicitly allowed: a private name must not even
    be sent to the upstream.
    """
    mirrors = [index for index in chain if index.is_mirror]
    if not mirrors:
        return []
    stages = {index.id: index for index in chain if not index.is_mirror}
    holders = (
        [
            stages[index_id]
            for index_id in (
                await session.execute(
                    select(Project.index_id).where(
                        Project.index_id.in_(stages), Project.name == canonicalize_name(project)
                    )
                )
            ).scalars()
        ]
        if stages
        else []  # a mirror alone: no stage can hold the name (no query)
    )
    if not all(holder.whitelists(project) for holder in holders):
        return []
    if await namespace_of(session, project) is not None and not reserved_name_allowed(
        chain, holders, project
    ):
        return []
    return mirrors


def reserved_name_allowed(chain: list[IndexView], holders: list[IndexView], project: str) -> bool:
    """Whether a name in a reserved namespace may come from the chain's mirrors: the
    index looked up (chain[0]), or a stage holding the name, lists it by name."""
    return any(index.names_in_whitelist(project) for index in (chain[0], *holders))


async def project_files(
    session: AsyncSession,
    chain: list[IndexView],
    project: str,
    consult: list[IndexView] | None = None,
) -> ProjectView | None:
    """Files of `project` visible from chain[0], or None when no index has it.
    `consult`: `mirrors_to_consult` as the caller already answered it."""
    normalized = canonicalize_name(project)
    order = {index.id: position for position, index in enumerate(chain)}
    stages = {index.id: index for index in chain if not index.is_mirror}
    rows = (
        (
            await session.execute(
                select(Project, Release, ReleaseFile)
                .join(Release, Release.project_id == Project.id)
                .join(ReleaseFile, ReleaseFile.release_id == Release.id)
                .where(Project.index_id.in_(stages), Project.name == normalized)
            )
        ).all()
        if stages
        else []
    )
    candidates: list[tuple[int, VisibleFile]] = []
    names: list[tuple[int, str]] = []
    for proj, release, file in rows:
        names.append((order[proj.index_id], proj.display_name))
        candidates.append(
            (
                order[proj.index_id],
                VisibleFile(
                    index=stages[proj.index_id],
                    project=proj.display_name,
                    version=release.version,
                    filename=file.filename,
                    sha256=file.sha256,
                    blake2_256=file.blake2_256,
                    md5=file.md5,
                    size=file.size,
                    packagetype=file.packagetype,
                    python_version=file.python_version,
                    requires_python=file.requires_python,
                    core_metadata_sha256=file.core_metadata_sha256,
                    core_metadata=file.core_metadata_sha256 is not None,
                    upload_time=file.upload_time,
                    yanked=release.yanked,
                    yanked_reason=release.yanked_reason,
                    metadata=json.loads(release.metadata_json),
                    uploader=file.uploader,
                ),
            )
        )
    status = status_reason = None
    held = (
        (
            await session.execute(
                select(Project.index_id, Project.display_name).where(
                    Project.index_id.in_(stages), Project.name == normalized
                )
            )
        ).all()
        if stages
        else []
    )
    names.extend((order[index_id], display) for index_id, display in held)
    found = bool(held)
    if consult is None:
        consult = await mirrors_to_consult(session, chain, normalized)
    for mirror in consult:
        page = await _mirror_page(session, mirror, normalized)
        if page is None:
            continue
        found = True
        display, page_status, page_reason, files = page
        names.append((order[mirror.id], display))
        if status is None:
            status, status_reason = page_status, page_reason
        candidates.extend((order[mirror.id], f) for f in files)
    if not found:
        return None
    chosen: dict[str, tuple[int, VisibleFile]] = {}
    for rank, visible in candidates:
        current = chosen.get(visible.filename)
        if current is None or rank < current[0]:
            chosen[visible.filename] = (rank, visible)
    files = sorted((entry for _, entry in chosen.values()), key=lambda f: f.filename)
    if status == "quarantined":
        files = []
    versions = sorted({f.version for f in files if f.version})
    display_name = min(names)[1] if names else normalized
    return ProjectView(normalized, display_name, files, versions, status, status_reason)


async def _mirror_page(
    session: AsyncSession, mirror: IndexView, project: str
) -> tuple[str, str | None, str | None, list[VisibleFile]] | None:
    page = (
        await session.execute(
            select(MirrorProject).where(
                MirrorProject.index_id == mirror.id, MirrorProject.name == project
            )
        )
    ).scalar_one_or_none()
    if page is None:
        return None
    rows = (
        await session.execute(
            select(MirrorLink, MirrorCachedFile)
            .outerjoin(
                MirrorCachedFile,
                (MirrorCachedFile.index_id == MirrorLink.index_id)
                & (MirrorCachedFile.filename == MirrorLink.filename),
            )
            .where(MirrorLink.index_id == mirror.id, MirrorLink.project == project)
        )
    ).all()
    files = []
    for link, cached in rows:
        metadata_sha256 = (cached.core_metadata_sha256 if cached else None) or (
            link.core_metadata_sha256
        )
        packagetype, python_version = packagetype_of(link.filename)
        # A wheel without upstream metadata gets lockgate's own `.metadata`, made on
        # first request: advertised as `true` until its hash is known, and not at all
        # once the wheel is known to have no readable METADATA (reliability MC-5, MC-6).
        synthesized = link.filename.endswith(".whl") and not (
            cached is not None and cached.metadata_missing
        )
        files.append(
            VisibleFile(
                index=mirror,
                project=page.display_name,
                version=version_from_filename(link.filename),
                filename=link.filename,
                sha256=link.sha256,
                blake2_256=None,
                md5=None,
                size=link.size if link.size is not None else (cached.size if cached else None),
                packagetype=packagetype,
                python_version=python_version,
                requires_python=link.requires_python,
                core_metadata_sha256=metadata_sha256,
                core_metadata=link.core_metadata or metadata_sha256 is not None or synthesized,
                upload_time=link.upload_time,
                yanked=link.yanked,
                yanked_reason=link.yanked_reason,
                metadata={},
                url_key=None if link.sha256 else file_key(None, link.url),
            )
        )
    return page.display_name, page.status, page.status_reason, files


async def project_names(session: AsyncSession, chain: list[IndexView]) -> list[tuple[str, str]]:
    """(normalized, display) names of every project visible from the chain:
    stage projects, and the pages its mirrors have cached (but not those in a
    reserved namespace, unless chain[0] lists them in its `mirror_whitelist`)."""
    return [(name, display) for name, display, _ in await project_origins(session, chain)]


async def project_origins(
    session: AsyncSession, chain: list[IndexView]
) -> list[tuple[str, str, str]]:
    """`project_names`, each with the path of the nearest index in the chain holding it
    (where a browser page says an inherited project comes from)."""
    order = {index.id: position for position, index in enumerate(chain)}
    paths = {index.id: index.path for index in chain}
    mirror_ids = {index.id for index in chain if index.is_mirror}
    reserved = await reserved_names(session)
    rows = list(
        (
            await session.execute(
                select(Project.name, Project.display_name, Project.index_id).where(
                    Project.index_id.in_(order)
                )
            )
        ).all()
    )
    rows += (
        await session.execute(
            select(MirrorProject.name, MirrorProject.display_name, MirrorProject.index_id).where(
                MirrorProject.index_id.in_(order)
            )
        )
    ).all()
    names: dict[str, tuple[int, str, int]] = {}
    for name, display, index_id in rows:
        if (
            index_id in mirror_ids
            and any(covers(namespace, name) for namespace in reserved)
            and not chain[0].names_in_whitelist(name)
        ):
            continue  # not served from the mirror here (a stage holding it lists it itself)
        rank = order[index_id]
        if name not in names or rank < names[name][0]:
            names[name] = (rank, display, index_id)
    return sorted(
        (name, display, paths[index_id]) for name, (_, display, index_id) in names.items()
    )
