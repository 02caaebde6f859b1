"""Storing a release's documentation zip, finding it to serve it, and its text for search.

An upload (devpi's `:action=doc_upload` with `name`, `version` and a `content` zip) is
checked completely before the write transaction: the form, the uploader's rights, the
release, then the archive in a thread (`archive.inspect_docs_zip`: names, links, caps,
every member read through, the text extracted). Inside the transaction only the
release is looked up again, the blob renamed into place and one `docs.put` recorded.

Like devpi: documentation belongs to a release of the index it is uploaded to (an
empty `version` means the project's newest release there); on a non-volatile index
the same zip again is a no-op and a different one is refused (409). Unlike devpi,
lockgate does not create a release for documentation alone: releases come from files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import lock_serial, record, utcnow_iso
from lockgate.db.session import Database
from lockgate.docs.archive import DocsLimits, DocsRejected, InspectedDocs, inspect_docs_zip
from lockgate.docs.entries import DocsPut, release_id_of
from lockgate.docs.models import ReleaseDocs
from lockgate.errors import Conflict
from lockgate.indexes.models import Index
from lockgate.indexes.services import IndexView, require_index, require_upload_permission
from lockgate.packages.models import Project, Release
from lockgate.storage.blobs import BlobStore, Digests

log = structlog.get_logger("lockgate.docs")

DOC_UPLOAD = "doc_upload"
LATEST = "latest"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True)
class DocsForm:
    name: str
    version: str  # "" when the uploader left it to the server (devpi's rule)


@dataclass(frozen=True)
class CheckedDocs:
    project: str  # as the index holds it (display name)
    version: str  # the release's version as stored
    inspected: InspectedDocs


@dataclass(frozen=True)
class StoredDocs:
    serial: int
    identical: bool


@dataclass(frozen=True)
class ServedDocs:
    """Where a release's documentation is, to serve members from it."""

    project: str  # normalized
    version: str
    sha256: str
    uploaded_at: str
    holder: str = ""  # user/index holding the release and its docs (a base, maybe)


@dataclass(frozen=True, order=True)
class DocsText:
    """A release's documentation as the search index takes it."""

    index: str  # user/index
    project: str  # normalized
    version: str
    text: str
    truncated: bool


def is_docs_upload(fields: Mapping[str, list[str]]) -> bool:
    return DOC_UPLOAD in fields.get(":action", [])


def parse_docs_form(fields: Mapping[str, list[str]]) -> DocsForm:
    """The form devpi-client posts: `:action`, `protocol_version`, `name`, `version`."""
    if any(value != "1" for value in fields.get("protocol_version", [])):
        raise DocsRejected("Unknown protocol version.")
    names = [value.strip() for value in fields.get("name", []) if value.strip()]
    if not names:
        raise DocsRejected("name: This field is required (the project the documentation is for).")
    if len(set(names)) > 1:
        raise DocsRejected("name: more than one value given")
    name = names[0]
    if not set(name) <= _NAME_OK or not name[0].isalnum() or not name[-1].isalnum():
        raise DocsRejected(f"name: {name!r} is not a valid project name")
    versions = {value.strip() for value in fields.get("version", []) if value.strip()}
    if len(versions) > 1:
        raise DocsRejected("version: more than one value given")
    version = versions.pop() if versions else ""
    if version:
        try:
            Version(version)
        except InvalidVersion:
            raise DocsRejected(f"version: {version!r} is not a valid version") from None
    return DocsForm(name, version)


async def _release(
    session: AsyncSession, index: IndexView, project: str, version: str
) -> tuple[str, str] | None:
    """(display name, stored version) of the release `version` names ('' = newest)."""
    found = (
        await session.execute(
            select(Project.id, Project.display_name).where(
                Project.index_id == index.id, Project.name == canonicalize_name(project)
            )
        )
    ).first()
    if found is None:
        return None
    versions = list(
        (await session.execute(select(Release.version).where(Release.project_id == found.id)))
        .scalars()
        .all()
    )
    if not version:
        ordered = sorted(versions, key=_version_key, reverse=True)
        return (found.display_name, ordered[0]) if ordered else None
    wanted = _version_key(version)
    for stored in versions:
        if stored == version or _version_key(stored) == wanted:
            return found.display_name, stored
    return None


def _version_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0.dev0")


async def check_docs(
    db: Database,
    actor: Actor,
    index: IndexView,
    form: DocsForm,
    temp: Path,
    limits: DocsLimits,
) -> CheckedDocs:
    """Rights, release and archive, in that order; the archive in a thread."""
    require_upload_permission(actor.name, index, form.name)
    async with db.read() as session:
        release = await _release(session, index, form.name, form.version)
    if release is None:
        if form.version:
            raise DocsRejected(
                f"release {form.name} {form.version} does not exist on index {index.path}: "
                "upload its files first, then its documentation"
            )
        raise DocsRejected(
            f"the documentation has no version and {form.name!r} has no releases on index "
            f"{index.path} to derive one from"
        )
    inspected = await asyncio.to_thread(inspect_docs_zip, temp, limits)
    return CheckedDocs(release[0], release[1], inspected)


async def store_docs(
    db: Database,
    blobs: BlobStore,
    index: IndexView,
    actor: Actor,
    temp: Path,
    digests: Digests,
    checked: CheckedDocs,
) -> StoredDocs:
    """Record the checked zip as the release's documentation (one `docs.put`)."""
    async with db.write() as session:
        await lock_serial(session)
        index = await require_index(session, index.user, index.name)
        release_id = await release_id_of(session, index.id, checked.project, checked.version)
        if release_id is None:  # deleted while the archive was being checked
            raise DocsRejected(
                f"release {checked.project} {checked.version} no longer exists on index "
                f"{index.path}"
            )
        existing = await session.get(ReleaseDocs, release_id)
        if existing is not None:
            if existing.sha256 == digests.sha256:
                return StoredDocs(db.serial, identical=True)
            if not index.volatile:
                raise Conflict(
                    f"documentation of {checked.project} {checked.version} already exists on "
                    f"index {index.path}, which is not volatile, so it cannot be replaced"
                )
        # The blob first (fsynced, renamed), the row second: a crash in between leaves
        # only an unreferenced blob, which gc removes (INV-2).
        await asyncio.to_thread(blobs.commit_temp, temp, digests.sha256)
        inspected = checked.inspected
        serial = await record(
            session,
            DocsPut(
                user=index.user,
                index=index.name,
                project=checked.project,
                version=checked.version,
                sha256=digests.sha256,
                size=digests.size,
                members=inspected.members,
                unpacked_bytes=inspected.unpacked_bytes,
                uploaded_at=utcnow_iso(),
                uploader=actor.name,
                text=inspected.text,
                text_truncated=inspected.text_truncated,
            ),
            actor,
        )
    log.info(
        "documentation stored",
        index=index.path,
        project=canonicalize_name(checked.project),
        version=checked.version,
        serial=serial,
    )
    return StoredDocs(serial, identical=False)


async def find_docs(
    session: AsyncSession, chain: list[IndexView], project: str, version: str
) -> ServedDocs | None:
    """The documentation `version` of `project` as `chain[0]` sees it: from the nearest
    stage index of its inheritance chain (`resolve_chain`: the index, then its bases,
    depth first) whose release of that version has docs, as releases are inherited
    (devpi serves docs of the index itself only; lockgate's derived indexes show what
    their bases hold). `latest` is the newest non-yanked version among them. Mirrors
    hold no docs. The caller checks that the holder may be read (its `acl_read`)."""
    stages = [index for index in chain if not index.is_mirror]
    if not stages:
        return None
    order = {index.id: position for position, index in enumerate(stages)}
    paths = {index.id: index.path for index in stages}
    name = canonicalize_name(project)
    rows = (
        await session.execute(
            select(
                Project.index_id,
                Release.version,
                Release.yanked,
                ReleaseDocs.sha256,
                ReleaseDocs.uploaded_at,
            )
            .join(Project, Project.id == Release.project_id)
            .join(ReleaseDocs, ReleaseDocs.release_id == Release.id)
            .where(Project.index_id.in_(order), Project.name == name)
        )
    ).all()
    # Per version, the nearest index's docs (the release a derived index shows first).
    nearest: dict[str, Any] = {}
    for row in sorted(rows, key=lambda r: order[r.index_id]):
        nearest.setdefault(row.version, row)

    def served(row: Any) -> ServedDocs:
        return ServedDocs(name, row.version, row.sha256, row.uploaded_at, paths[row.index_id])

    if version == LATEST:
        candidates = [row for row in nearest.values() if not row.yanked]
        if not candidates:
            return None
        return served(max(candidates, key=lambda r: _version_key(r.version)))
    wanted = _version_key(version) if _valid(version) else None
    for row in sorted(nearest.values(), key=lambda r: order[r.index_id]):
        if row.version == version or (wanted is not None and _version_key(row.version) == wanted):
            return served(row)
    return None


def _valid(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


async def copy_docs_on_push(
    session: AsyncSession,
    source: IndexView,
    target: IndexView,
    project: str,
    version: str,
    actor: Actor,
) -> int | None:
    """A pushed release takes its documentation along, as devpi's push does (inside the
    caller's write transaction, after the push's entry): one `docs.put` naming the same
    zip, unless the target already has those docs, or other docs it may not replace."""
    source_id = await release_id_of(session, source.id, project, version)
    target_id = await release_id_of(session, target.id, project, version)
    if source_id is None or target_id is None:
        return None
    docs = (
        await session.execute(
            select(ReleaseDocs)
            .options(undefer(ReleaseDocs.text))
            .where(ReleaseDocs.release_id == source_id)
        )
    ).scalar_one_or_none()
    if docs is None:
        return None
    held = await session.get(ReleaseDocs, target_id)
    if held is not None and (held.sha256 == docs.sha256 or not target.volatile):
        return None
    return await record(
        session,
        DocsPut(
            user=target.user,
            index=target.name,
            project=project,
            version=version,
            sha256=docs.sha256,
            size=docs.size,
            members=docs.members,
            unpacked_bytes=docs.unpacked_bytes,
            uploaded_at=docs.uploaded_at,
            uploader=docs.uploader,
            text=docs.text,
            text_truncated=docs.text_truncated,
        ),
        actor,
    )


async def releases_with_docs(
    session: AsyncSession, releases: AbstractSet[tuple[int, str, str]]
) -> set[tuple[int, str, str]]:
    """Of (index id, normalized project, version) keys, those whose release has docs."""
    if not releases:
        return set()
    index_ids = {index_id for index_id, _, _ in releases}
    rows = (
        await session.execute(
            select(Project.index_id, Project.name, Release.version)
            .join(Release, Release.project_id == Project.id)
            .join(ReleaseDocs, ReleaseDocs.release_id == Release.id)
            .where(Project.index_id.in_(index_ids))
        )
    ).all()
    return {key for row in rows if (key := (row.index_id, row.name, row.version)) in releases}


# --- for search -------------------------------------------------------------------


async def release_docs_text(
    session: AsyncSession, index: IndexView, project: str, version: str
) -> DocsText | None:
    """(project, version, text) of one release's documentation, or None."""
    release_id = await release_id_of(session, index.id, project, version)
    if release_id is None:
        return None
    row = (
        await session.execute(
            select(ReleaseDocs.text, ReleaseDocs.text_truncated).where(
                ReleaseDocs.release_id == release_id
            )
        )
    ).first()
    if row is None:
        return None
    return DocsText(index.path, canonicalize_name(project), version, row.text, row.text_truncated)


async def docs_texts(session: AsyncSession, index: IndexView | None = None) -> list[DocsText]:
    """Every release's documentation text (of one index, or of all), for indexing."""
    query = (
        select(
            Index.user_name,
            Index.name.label("index_name"),
            Project.name,
            Release.version,
            ReleaseDocs.text,
            ReleaseDocs.text_truncated,
        )
        .join(Release, Release.id == ReleaseDocs.release_id)
        .join(Project, Project.id == Release.project_id)
        .join(Index, Index.id == Project.index_id)
    )
    if index is not None:
        query = query.where(Project.index_id == index.id)
    rows = (await session.execute(query)).all()
    return sorted(
        DocsText(
            f"{row.user_name}/{row.index_name}", row.name, row.version, row.text, row.text_truncated
        )
        for row in rows
    )
