"""The search domain has no entry kinds of its own: it observes other domains' kinds
and recomputes the search rows they touch, in the transaction that applies them
(`changelog.registry` observers), so an upload is searchable when its upload returns,
on a replica when the entry is applied, and after an import with no re-index step."""

from __future__ import annotations

from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry
from lockgate.distfiles import project_from_filename
from lockgate.indexes.models import Index
from lockgate.search.index import drop_orphans, resync_project

# Kinds naming (user, index, project): the project's row is recomputed.
PROJECT_KINDS = (
    "file.add",
    "release.delete",
    "release.yank",
    "project.delete",
    "release.push",  # its applier adds the target's files through FileAdd's applier
    "mirror.page",
    "mirror.gone",
)
# Kinds naming a file only: its project is read from the file name (the file row is
# gone; a mirror's cached file or `.metadata` brings its version's metadata text).
FILE_KINDS = ("file.delete", "mirror.file", "mirror.metadata")
# The docs domain's kind (lockgate/docs, built beside this one): a release's
# documentation uploaded. Observed by its name, and its text read from that domain's
# `release_docs` table when it exists (search/index.py), so search imports nothing
# of it; a project's row carries its latest release's documentation text.
DOCS_KINDS = ("docs.put",)
# Kinds that remove indexes (a user's go with the user): their rows cascade.
INDEX_KINDS = ("index.delete", "user.delete")


def _index_id(sync: Session, user: str, index: str) -> int | None:
    return sync.execute(
        select(Index.id).where(Index.user_name == user, Index.name == index)
    ).scalar_one_or_none()


async def _resync(session: AsyncSession, user: str, index: str, project: str) -> None:
    await session.flush()  # the applier's pending ORM changes, before reading with Core

    def run(sync: Session) -> None:
        index_id = _index_id(sync, user, index)
        if index_id is not None:
            resync_project(sync.connection(), index_id, canonicalize_name(project))

    await session.run_sync(run)


async def on_project_entry(session: AsyncSession, payload: Payload) -> None:
    await _resync(
        session,
        payload.user,  # type: ignore[attr-defined]
        payload.index,  # type: ignore[attr-defined]
        payload.project,  # type: ignore[attr-defined]
    )


async def on_file_entry(session: AsyncSession, payload: Payload) -> None:
    filename: str = payload.filename  # type: ignore[attr-defined]
    await _resync(
        session,
        payload.user,  # type: ignore[attr-defined]
        payload.index,  # type: ignore[attr-defined]
        project_from_filename(filename),
    )


async def on_index_entry(session: AsyncSession, payload: Payload) -> None:
    await session.flush()
    await session.run_sync(lambda sync: drop_orphans(sync.connection()))


def register(registry: EntryRegistry) -> None:
    registry.observe(PROJECT_KINDS, on_project_entry)
    registry.observe(FILE_KINDS, on_file_entry)
    registry.observe(DOCS_KINDS, on_project_entry)
    registry.observe(INDEX_KINDS, on_index_entry)
