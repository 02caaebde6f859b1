"""Checking and storing an upload whose body has been streamed to a temp file.

Nothing is stored under `blobs/` or in the database until every check has
passed. The slow parts (reading the archive, hashing metadata) run before the
write transaction; inside it only the duplicate check, the blob rename and the
`file.add` entry happen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import structlog
from packaging.utils import canonicalize_name
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import lock_serial, record, utcnow_iso
from lockgate.db.session import Database
from lockgate.errors import Conflict, Forbidden
from lockgate.indexes.config import StageConfig
from lockgate.indexes.services import IndexView, require_index, require_upload_permission
from lockgate.namespaces.services import require_may_create
from lockgate.packages.entries import FileAdd
from lockgate.packages.services import find_own_file, project_releases
from lockgate.storage.blobs import BlobStore, Digests
from lockgate.uploads.validation import (
    CheckedDistribution,
    UploadForm,
    UploadRejected,
    check_distribution,
    check_filename,
    parse_upload_form,
)

log = structlog.get_logger("lockgate.upload")


@dataclass(frozen=True)
class StoredUpload:
    serial: int
    identical: bool  # the same bytes were already stored under this name: nothing changed


def require_stage(index: IndexView) -> None:
    if index.is_mirror:
        raise Forbidden(f"index {index.path} is a mirror: upload to a stage index instead")


async def require_namespace_rights(
    session: AsyncSession, actor: str, index: IndexView, project: str
) -> None:
    """A project new to this index must not lie in another owner's reserved namespace
    (docs/reliability.md DC-6); projects the index already holds keep taking uploads."""
    if await project_releases(session, index, project) is None:
        await require_may_create(session, actor, project)


async def check_upload(
    db: Database,
    actor: Actor,
    index: IndexView,
    fields: dict[str, list[str]],
    filename: str | None,
    temp: Path | None,
    digests: Digests | None,
    digest_required: bool = True,
) -> tuple[UploadForm, CheckedDistribution]:
    """Validate the form, the permissions and the file (in a thread), in Warehouse's order."""
    form = parse_upload_form(fields, digest_required)
    if temp is None or filename is None or digests is None:
        raise UploadRejected("Upload payload does not have a file.")
    require_upload_permission(actor.name, index, form.name)
    async with db.read() as session:
        await require_namespace_rights(session, actor.name, index, form.name)
    check_filename(form, filename)
    strict = isinstance(index.config, StageConfig) and index.config.strict_filenames
    checked = await asyncio.to_thread(
        partial(check_distribution, strict_filenames=strict),
        form,
        filename,
        temp,
        {"sha256": digests.sha256, "blake2_256": digests.blake2_256, "md5": digests.md5},
    )
    return form, checked


async def store_upload(
    db: Database,
    blobs: BlobStore,
    index: IndexView,
    actor: Actor,
    filename: str,
    temp: Path,
    digests: Digests,
    checked: CheckedDistribution,
) -> StoredUpload:
    # The blobs' fsyncs (the file's rename and directory, the metadata's bytes, rename
    # and directory: three or four, each several milliseconds) used to run under the
    # write lock, so concurrent uploaders queued behind each other's disk flushes. When
    # no file of that name is stored yet (the usual case) they are made durable first,
    # outside the lock; the check below, under the lock, still decides (docs/reliability.md
    # F-K10: a refusal that raced another upload of the same name leaves an
    # unreferenced blob, which gc removes).
    async with db.read() as session:
        early = await find_own_file(session, index, filename) is None
    metadata_sha256 = None
    if early:
        await asyncio.to_thread(blobs.commit_temp, temp, digests.sha256)
        if checked.core_metadata is not None:
            metadata_sha256 = await asyncio.to_thread(blobs.put_bytes, checked.core_metadata)
    async with db.write() as session:
        # Serialize with other writers before looking for the file: otherwise two
        # uploads of one filename both find nothing and both record a `file.add`
        # (duplicate entries; on a non-volatile index the later one silently replaced
        # the earlier one's bytes). The lock is held only for the blob rename and the
        # few statements below, as SQLite's write lock already is.
        await lock_serial(session)
        index = await require_index(session, index.user, index.name)
        # Again under the lock: a namespace reserved (or a project deleted) meanwhile counts.
        await require_namespace_rights(session, actor.name, index, checked.project)
        existing = await find_own_file(session, index, filename)
        if existing is not None:
            if existing.sha256 == digests.sha256:
                log.info("upload identical to stored file", filename=filename)
                return StoredUpload(db.serial, identical=True)
            if not index.volatile:
                raise Conflict(
                    f"File already exists ('{filename}', with sha256 hash "
                    f"'{existing.sha256}'). Index {index.path} is not volatile, so files "
                    "cannot be overwritten: upload a new version."
                )
        # Blobs first (fsynced and renamed), the row second, and, for a name already
        # stored, only once the upload is known to be stored: a refused duplicate leaves
        # no blob behind, and a crash or rollback from here on leaves only an
        # unreferenced blob, which gc removes.
        if not early:
            await asyncio.to_thread(blobs.commit_temp, temp, digests.sha256)
            if checked.core_metadata is not None:
                metadata_sha256 = await asyncio.to_thread(blobs.put_bytes, checked.core_metadata)
        serial = await record(
            session,
            FileAdd(
                user=index.user,
                index=index.name,
                project=checked.project,
                version=checked.version,
                filename=filename,
                sha256=digests.sha256,
                blake2_256=digests.blake2_256,
                md5=digests.md5,
                size=digests.size,
                packagetype=checked.packagetype,
                python_version=checked.python_version,
                requires_python=checked.requires_python,
                core_metadata_sha256=metadata_sha256,
                upload_time=utcnow_iso(),
                uploader=actor.name,
                metadata=checked.metadata,
            ),
            actor,
        )
    log.info(
        "uploaded",
        index=index.path,
        project=canonicalize_name(checked.project),
        filename=filename,
        serial=serial,
    )
    return StoredUpload(serial, identical=False)
