"""Reading what an index offers through its inheritance chain.

The rules (ARCHITECTURE "Indexes and inheritance"):
- the chain is the index, then its bases depth first; the nearest index wins
  for the same file name, and versions are merged;
- dependency-confusion guard: when any stage index in the chain holds a
  project, files of that name from mirror indexes are hidden unless every
  stage holding it lists the name (or '*') in its `mirror_whitelist`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.indexes.services import IndexView
from lockgate.packages.models import Project, Release, ReleaseFile


@dataclass(frozen=True)
class VisibleFile:
    index: IndexView  # the index that holds the file
    project: str  # display name
    version: str
    filename: str
    sha256: str
    blake2_256: str | None
    md5: str | None
    size: int
    packagetype: str
    python_version: str
    requires_python: str | None
    core_metadata_sha256: str | None
    upload_time: str
    yanked: bool
    yanked_reason: str | None
    metadata: dict[str, Any]

    @property
    def url_path(self) -> str:
        """Server-absolute path of the file (files are served by the index holding them)."""
        return f"/{self.index.path}/+f/{self.sha256[:16]}/{self.filename}"


@dataclass(frozen=True)
class ProjectView:
    name: str  # normalized
    display_name: str
    files: list[VisibleFile]
    versions: list[str]  # every version with files, merged over the chain


async def project_files(
    session: AsyncSession, chain: list[IndexView], project: str
) -> ProjectView | None:
    """Files of `project` visible from chain[0], or None when no index has it."""
    normalized = canonicalize_name(project)
    by_id = {index.id: index for index in chain}
    rows = (
        await session.execute(
            select(Project, Release, ReleaseFile)
            .join(Release, Release.project_id == Project.id)
            .join(ReleaseFile, ReleaseFile.release_id == Release.id)
            .where(Project.index_id.in_(by_id), Project.name == normalized)
        )
    ).all()
    holders = set(
        (
            await session.execute(
                select(Project.index_id).where(
                    Project.index_id.in_(by_id), Project.name == normalized
                )
            )
        )
        .scalars()
        .all()
    )
    if not holders:
        return None
    stage_holders = [by_id[i] for i in holders if not by_id[i].is_mirror]
    mirrors_allowed = all(stage.whitelists(normalized) for stage in stage_holders)
    order = {index.id: position for position, index in enumerate(chain)}
    chosen: dict[str, tuple[int, VisibleFile]] = {}
    display_name = normalized
    best_display_rank = len(chain)
    for proj, release, file in rows:
        index = by_id[proj.index_id]
        if index.is_mirror and not mirrors_allowed:
            continue
        rank = order[proj.index_id]
        if rank < best_display_rank:
            best_display_rank, display_name = rank, proj.display_name
        current = chosen.get(file.filename)
        if current is not None and current[0] <= rank:
            continue
        chosen[file.filename] = (
            rank,
            VisibleFile(
                index=index,
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
                upload_time=file.upload_time,
                yanked=release.yanked,
                yanked_reason=release.yanked_reason,
                metadata=json.loads(release.metadata_json),
            ),
        )
    if not chosen and not any(not by_id[i].is_mirror for i in holders):
        return None
    files = sorted((entry for _, entry in chosen.values()), key=lambda f: f.filename)
    versions = sorted({f.version for f in files})
    return ProjectView(normalized, display_name, files, versions)


async def project_names(session: AsyncSession, chain: list[IndexView]) -> list[tuple[str, str]]:
    """(normalized, display) names of every project visible from the chain."""
    rows = (
        await session.execute(
            select(Project.name, Project.display_name, Project.index_id).where(
                Project.index_id.in_([index.id for index in chain])
            )
        )
    ).all()
    order = {index.id: position for position, index in enumerate(chain)}
    names: dict[str, tuple[int, str]] = {}
    for name, display, index_id in rows:
        rank = order[index_id]
        if name not in names or rank < names[name][0]:
            names[name] = (rank, display)
    return sorted((name, display) for name, (_, display) in names.items())


async def find_own_file(
    session: AsyncSession, index: IndexView, filename: str
) -> tuple[ReleaseFile, Release, Project] | None:
    """A file held by this very index (file URLs are served by their holder)."""
    row = (
        await session.execute(
            select(ReleaseFile, Release, Project)
            .join(Release, Release.id == ReleaseFile.release_id)
            .join(Project, Project.id == Release.project_id)
            .where(ReleaseFile.index_id == index.id, ReleaseFile.filename == filename)
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


async def find_release(
    session: AsyncSession, index: IndexView, project: str, version: str
) -> tuple[Project, Release] | None:
    row = (
        await session.execute(
            select(Project, Release)
            .join(Release, Release.project_id == Project.id)
            .where(
                Project.index_id == index.id,
                Project.name == canonicalize_name(project),
                Release.version == version,
            )
        )
    ).first()
    return (row[0], row[1]) if row else None
