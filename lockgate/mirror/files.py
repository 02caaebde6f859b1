"""Mirrored files and their `.metadata`: what the cache knows of one file, and
filling the cache from the upstream (one download per file, recorded as a
`mirror.file` entry once its hash checked out; `.metadata` as `mirror.metadata`)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import select

from lockgate.changelog.codec import SYSTEM
from lockgate.changelog.writer import record_alone, utcnow_iso
from lockgate.db.session import Database
from lockgate.errors import BadGateway, NotFound
from lockgate.indexes.services import IndexView
from lockgate.mirror.downloads import (
    MAX_METADATA_BYTES,
    Download,
    DownloadCoordinator,
    extract_wheel_metadata,
)
from lockgate.mirror.entries import MirrorFile, MirrorMetadata
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProject
from lockgate.mirror.upstream import UpstreamBadData, UpstreamClient, UpstreamUnavailable
from lockgate.storage.blobs import BlobStore
from lockgate.urls import file_key

log = structlog.get_logger("lockgate.mirror")


@dataclass(frozen=True)
class ListedFile:
    """A file the mirror's cached upstream page lists, and what is cached of it."""

    filename: str
    url: str  # upstream URL
    sha256: str | None  # as the upstream page gives it
    size: int | None
    core_metadata: bool  # the upstream serves `<url>.metadata`
    core_metadata_sha256: str | None
    cached_sha256: str | None  # the file's blob, once cached
    cached_metadata_sha256: str | None  # the `.metadata` blob, once cached or extracted
    quarantined: bool  # the project is quarantined upstream (PEP 792)

    @property
    def key(self) -> str:
        """The `+f/{key}/` segment of its URL."""
        return file_key(self.sha256, self.url)

    def key_matches(self, prefix: str) -> bool:
        return len(prefix) >= 8 and self.key.startswith(prefix.lower())


class MirrorFiles:
    def __init__(self, db: Database, upstream: UpstreamClient, blobs: BlobStore) -> None:
        self.db = db
        self.upstream = upstream
        self.blobs = blobs
        self.downloads = DownloadCoordinator(blobs, upstream)

    async def close(self) -> None:
        await self.downloads.close()

    async def listed_file(self, index: IndexView, filename: str) -> ListedFile | None:
        """None when the upstream page no longer lists it (cached bytes stay for audit)."""
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(MirrorLink, MirrorCachedFile, MirrorProject.status)
                    .outerjoin(
                        MirrorCachedFile,
                        (MirrorCachedFile.index_id == MirrorLink.index_id)
                        & (MirrorCachedFile.filename == MirrorLink.filename),
                    )
                    .outerjoin(
                        MirrorProject,
                        (MirrorProject.index_id == MirrorLink.index_id)
                        & (MirrorProject.name == MirrorLink.project),
                    )
                    .where(MirrorLink.index_id == index.id, MirrorLink.filename == filename)
                )
            ).first()
        if row is None:
            return None
        link, cached, status = row
        return ListedFile(
            filename=link.filename,
            url=link.url,
            sha256=link.sha256,
            size=link.size,
            core_metadata=link.core_metadata,
            core_metadata_sha256=link.core_metadata_sha256,
            cached_sha256=cached.sha256 if cached is not None else None,
            cached_metadata_sha256=cached.core_metadata_sha256 if cached is not None else None,
            quarantined=status == "quarantined",
        )

    async def fetch_metadata(self, index: IndexView, listed: ListedFile) -> str:
        """Fetch, verify and cache the upstream's `.metadata` of a file; its blob sha256."""
        if not listed.core_metadata:
            raise NotFound(f"no core metadata is available for {listed.filename!r} yet")
        try:
            async with self.upstream.get(index, listed.url + ".metadata") as response:
                if response.status != 200:
                    raise NotFound(
                        f"the upstream answered {response.status} for {listed.filename}.metadata"
                    )
                body = await self.upstream.read_limited(response, MAX_METADATA_BYTES)
        except (UpstreamUnavailable, UpstreamBadData) as exc:
            raise BadGateway(f"cannot fetch {listed.filename}.metadata: {exc}", 504) from None
        digest = hashlib.sha256(body).hexdigest()
        if listed.core_metadata_sha256 and digest != listed.core_metadata_sha256:
            raise BadGateway(
                f"{listed.filename}.metadata from the upstream does not match its advertised "
                "hash; refusing to serve or keep it"
            )
        sha256 = await asyncio.to_thread(self.blobs.put_bytes, body)
        await record_alone(
            self.db,
            MirrorMetadata(
                user=index.user,
                index=index.name,
                filename=listed.filename,
                sha256=sha256,
                cached_at=utcnow_iso(),
            ),
            SYSTEM,
        )
        return sha256

    def start_download(self, index: IndexView, listed: ListedFile) -> Download:
        """Start (or join) the upstream download of a file; it records itself when done."""
        needs_metadata = not listed.core_metadata and listed.filename.endswith(".whl")
        filename = listed.filename

        async def on_complete(sha256: str, size: int, path: Path) -> None:
            metadata_sha256 = None
            if needs_metadata:
                metadata = await asyncio.to_thread(extract_wheel_metadata, path, filename)
                if metadata is not None:
                    metadata_sha256 = await asyncio.to_thread(self.blobs.put_bytes, metadata)
            await record_alone(
                self.db,
                MirrorFile(
                    user=index.user,
                    index=index.name,
                    filename=filename,
                    sha256=sha256,
                    size=size,
                    core_metadata_sha256=metadata_sha256,
                    cached_at=utcnow_iso(),
                ),
                SYSTEM,
            )
            log.info("mirror file cached", index=index.path, filename=filename, size=size)

        return self.downloads.start(
            index, listed.url, filename, listed.sha256, on_complete, expected_size=listed.size
        )
