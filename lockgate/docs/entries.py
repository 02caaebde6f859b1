"""Changelog entry kind of the docs domain: a release's documentation zip stored
(`docs.put`), replacing any earlier one of that release.

The zip is a blob the entry names, so replicas fetch it, bundles carry it, gc keeps
it and fsck checks it (all through the registry). The extracted text travels in the
entry itself (capped, `archive.TEXT_CAP`): an applier has no blob store to read it
from, and every node must end with the same state (INV-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.docs.models import ReleaseDocs
from lockgate.indexes.entries import index_paths, index_row
from lockgate.packages.models import Project, Release


async def release_id_of(
    session: AsyncSession, index_id: int, project: str, version: str
) -> int | None:
    return (
        await session.execute(
            select(Release.id)
            .join(Project, Project.id == Release.project_id)
            .where(
                Project.index_id == index_id,
                Project.name == canonicalize_name(project),
                Release.version == version,
            )
        )
    ).scalar_one_or_none()


@dataclass(frozen=True)
class DocsPut(Payload):
    """A release's documentation zip (its sha256 names the blob)."""

    KIND = "docs.put"
    user: str
    index: str
    project: str
    version: str
    sha256: str
    size: int
    members: int
    unpacked_bytes: int
    uploaded_at: str
    uploader: str
    text: str = ""
    text_truncated: bool = False

    def blobs(self) -> tuple[str, ...]:
        return (self.sha256,)

    async def apply(self, session: AsyncSession) -> None:
        index = await index_row(session, self.user, self.index)
        release_id = await release_id_of(session, index.id, self.project, self.version)
        if release_id is None:
            return  # the service found the release under the lock; nothing to attach to
        docs = await session.get(ReleaseDocs, release_id)
        if docs is None:
            docs = ReleaseDocs(release_id=release_id)
            session.add(docs)
        docs.sha256 = self.sha256
        docs.size = self.size
        docs.members = self.members
        docs.unpacked_bytes = self.unpacked_bytes
        docs.uploaded_at = self.uploaded_at
        docs.uploader = self.uploader
        docs.text = self.text
        docs.text_truncated = self.text_truncated
        await session.flush()


async def digest(session: AsyncSession) -> dict[str, Any]:
    indexes = await index_paths(session)
    rows = (
        await session.execute(
            select(
                ReleaseDocs.sha256,
                ReleaseDocs.size,
                ReleaseDocs.members,
                ReleaseDocs.unpacked_bytes,
                ReleaseDocs.uploaded_at,
                ReleaseDocs.uploader,
                ReleaseDocs.text,
                ReleaseDocs.text_truncated,
                Release.version,
                Project.name,
                Project.index_id,
            )
            .join(Release, Release.id == ReleaseDocs.release_id)
            .join(Project, Project.id == Release.project_id)
        )
    ).all()
    return {
        "release_docs": sorted(
            (
                indexes[row.index_id],
                row.name,
                row.version,
                row.sha256,
                row.size,
                row.members,
                row.unpacked_bytes,
                row.uploaded_at,
                row.uploader,
                row.text,
                row.text_truncated,
            )
            for row in rows
        )
    }


async def live_blobs(session: AsyncSession) -> set[str]:
    return set((await session.execute(select(ReleaseDocs.sha256))).scalars())


def register(registry: EntryRegistry) -> None:
    registry.register(DocsPut)
    registry.register_digest("docs", digest)
    registry.register_blob_refs("docs", live_blobs)
