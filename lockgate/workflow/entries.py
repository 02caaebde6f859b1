"""Changelog entry kinds of the release workflow: a test result posted for a
release file (`test.result`), and a release pushed from one stage index to
another (`release.push`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.indexes.entries import index_paths, index_row
from lockgate.packages.entries import FileAdd
from lockgate.packages.models import Project, Release, ReleaseFile
from lockgate.workflow.models import ReleaseProvenance, ResultRow


async def _file(session: AsyncSession, index_id: int, filename: str) -> ReleaseFile | None:
    return (
        await session.execute(
            select(ReleaseFile).where(
                ReleaseFile.index_id == index_id, ReleaseFile.filename == filename
            )
        )
    ).scalar_one_or_none()


@dataclass(frozen=True)
class ResultPost(Payload):
    """One test environment's outcome for a release file of a stage index."""

    KIND = "test.result"
    user: str
    index: str
    filename: str
    sha256: str  # of the file the result is about
    environment: str
    outcome: str  # "passed" or "failed"
    posted_at: str
    poster: str
    python: str | None = None
    platform: str | None = None
    duration: float | None = None
    url: str | None = None
    log_sha256: str | None = None
    log_size: int = 0
    log_truncated: bool = False

    def blobs(self) -> tuple[str, ...]:
        return (self.log_sha256,) if self.log_sha256 else ()

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        file = await _file(session, index.id, self.filename)
        if file is None or file.sha256 != self.sha256:
            return  # the service checked both under the lock; nothing to attach to
        session.add(
            ResultRow(
                file_id=file.id,
                environment=self.environment,
                outcome=self.outcome,
                python=self.python,
                platform=self.platform,
                duration=self.duration,
                url=self.url,
                log_sha256=self.log_sha256,
                log_size=self.log_size,
                log_truncated=self.log_truncated,
                posted_at=self.posted_at,
                poster=self.poster,
                origin=f"{self.user}/{self.index}",
            )
        )
        await session.flush()


@dataclass(frozen=True)
class PushedFile:
    filename: str
    sha256: str
    core_metadata_sha256: str | None = None


@dataclass(frozen=True)
class ReleasePush(Payload):
    """A release's files copied from a stage index to another (`user`/`index`),
    by reference: the same blobs, the same upload time and uploader, with the
    source files' test results and the release's provenance."""

    KIND = "release.push"
    user: str  # the target index
    index: str
    source_user: str
    source_index: str
    project: str
    version: str
    files: tuple[PushedFile, ...]  # the files the target did not hold yet
    pushed_at: str
    pushed_by: str

    def blobs(self) -> tuple[str, ...]:
        return tuple(sha for f in self.files for sha in (f.sha256, f.core_metadata_sha256) if sha)

    async def apply(self, session: AsyncSession) -> None:
        source = await index_row(session, self.source_user, self.source_index)
        target = await index_row(session, self.user, self.index)
        release_id = None
        for pushed in self.files:
            row = (
                await session.execute(
                    select(ReleaseFile, Release, Project)
                    .join(Release, Release.id == ReleaseFile.release_id)
                    .join(Project, Project.id == Release.project_id)
                    .where(
                        ReleaseFile.index_id == source.id,
                        ReleaseFile.filename == pushed.filename,
                        ReleaseFile.sha256 == pushed.sha256,
                    )
                )
            ).first()
            if row is None:
                continue  # the service found every file under the lock
            file, release, project = row
            await FileAdd(
                user=self.user,
                index=self.index,
                project=project.display_name,
                version=release.version,
                filename=file.filename,
                sha256=file.sha256,
                size=file.size,
                packagetype=file.packagetype,
                python_version=file.python_version,
                upload_time=file.upload_time,
                blake2_256=file.blake2_256,
                md5=file.md5,
                requires_python=file.requires_python,
                core_metadata_sha256=file.core_metadata_sha256,
                uploader=file.uploader,
                metadata=json.loads(release.metadata_json),
            ).apply(session)
            copy = await _file(session, target.id, file.filename)
            assert copy is not None
            release_id = copy.release_id
            results = (
                await session.execute(
                    select(ResultRow).where(ResultRow.file_id == file.id).order_by(ResultRow.id)
                )
            ).scalars()
            for result in results:
                session.add(
                    ResultRow(
                        file_id=copy.id,
                        environment=result.environment,
                        outcome=result.outcome,
                        python=result.python,
                        platform=result.platform,
                        duration=result.duration,
                        url=result.url,
                        log_sha256=result.log_sha256,
                        log_size=result.log_size,
                        log_truncated=result.log_truncated,
                        posted_at=result.posted_at,
                        poster=result.poster,
                        origin=result.origin,
                    )
                )
        if release_id is None:
            return
        provenance = await session.get(ReleaseProvenance, release_id)
        source_path = f"{self.source_user}/{self.source_index}"
        if provenance is None:
            session.add(
                ReleaseProvenance(
                    release_id=release_id,
                    pushed_from=source_path,
                    pushed_at=self.pushed_at,
                    pushed_by=self.pushed_by,
                )
            )
        else:
            provenance.pushed_from = source_path
            provenance.pushed_at = self.pushed_at
            provenance.pushed_by = self.pushed_by
        await session.flush()


async def digest(session: AsyncSession) -> dict[str, Any]:
    indexes = await index_paths(session)
    files = {
        f.id: (indexes[f.index_id], f.filename)
        for f in (await session.execute(select(ReleaseFile))).scalars()
    }
    results = (await session.execute(select(ResultRow).order_by(ResultRow.id))).scalars().all()
    # Per file, the order results arrived in matters (the latest one per environment
    # counts for gates), so each row carries its position among its file's rows.
    position: dict[int, int] = {}
    rows = []
    for r in results:
        position[r.file_id] = position.get(r.file_id, 0) + 1
        rows.append(
            (
                *files[r.file_id],
                position[r.file_id],
                r.environment,
                r.outcome,
                r.python or "",
                r.platform or "",
                repr(r.duration),
                r.url or "",
                r.log_sha256 or "",
                r.log_size,
                r.log_truncated,
                r.posted_at,
                r.poster,
                r.origin,
            )
        )
    provenance = (
        await session.execute(
            select(ReleaseProvenance, Release.version, Project.name, Project.index_id)
            .join(Release, Release.id == ReleaseProvenance.release_id)
            .join(Project, Project.id == Release.project_id)
        )
    ).all()
    return {
        "test_results": sorted(rows),
        "release_provenance": sorted(
            (indexes[index_id], name, version, p.pushed_from, p.pushed_at, p.pushed_by)
            for p, version, name, index_id in provenance
        ),
    }


async def live_blobs(session: AsyncSession) -> set[str]:
    rows = (await session.execute(select(ResultRow.log_sha256))).scalars()
    return {sha for sha in rows if sha}


def register(registry: EntryRegistry) -> None:
    registry.register(ResultPost, ReleasePush)
    registry.register_digest("workflow", digest)
    registry.register_blob_refs("workflow", live_blobs)
