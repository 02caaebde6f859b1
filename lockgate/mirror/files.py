"""Mirrored files and their `.metadata`: what the cache knows of one file, and
filling the cache from the upstream (one download per file, recorded as a
`mirror.file` entry once its hash checked out; `.metadata` as `mirror.metadata`).

A wheel whose upstream offers no `.metadata` still gets one (docs/reliability.md
MC-5): on first request its METADATA is read with two range requests (the zip's
central directory, then the member), or from the cached or downloading file, once
for everyone, and recorded like upstream metadata. A wheel with no readable
METADATA is recorded as such (`mirror.nometadata`) and no longer advertised."""

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
from lockgate.mirror.entries import MirrorFile, MirrorMetadata, MirrorNoMetadata, text_fields
from lockgate.mirror.metatext import read_text
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProject
from lockgate.mirror.upstream import (
    RangeNotHonoured,
    UpstreamBadData,
    UpstreamClient,
    UpstreamUnavailable,
)
from lockgate.mirror.zipmeta import TAIL_BYTES, Tail, Unreadable, decompress_member, read_metadata
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
    metadata_missing: bool = False  # a wheel known to have no readable METADATA

    @property
    def key(self) -> str:
        """The `+f/{key}/` segment of its URL."""
        return file_key(self.sha256, self.url)

    def key_matches(self, prefix: str) -> bool:
        return len(prefix) >= 8 and self.key.startswith(prefix.lower())

    @property
    def synthesizable(self) -> bool:
        """lockgate makes its `.metadata` itself (the upstream has none for this wheel)."""
        return (
            not self.core_metadata and self.filename.endswith(".whl") and not self.metadata_missing
        )


class MirrorFiles:
    def __init__(self, db: Database, upstream: UpstreamClient, blobs: BlobStore) -> None:
        self.db = db
        self.upstream = upstream
        self.blobs = blobs
        self.downloads = DownloadCoordinator(blobs, upstream)
        self._synthesizing: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
            metadata_missing=cached.metadata_missing if cached is not None else False,
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
        text = await asyncio.to_thread(read_text, body)
        await record_alone(
            self.db,
            MirrorMetadata(
                user=index.user,
                index=index.name,
                filename=listed.filename,
                sha256=sha256,
                cached_at=utcnow_iso(),
                **text_fields(text),
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
            text = None
            if filename.endswith(".whl"):
                # Read for its text even when the upstream offers its own `.metadata`.
                metadata = await asyncio.to_thread(extract_wheel_metadata, path, filename)
                if metadata is not None:
                    text = await asyncio.to_thread(read_text, metadata)
                if needs_metadata and metadata is not None:
                    metadata_sha256 = await asyncio.to_thread(self.blobs.put_bytes, metadata)
                    await self._check_synthesized(index, filename, metadata_sha256)
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
                    **text_fields(text),
                ),
                SYSTEM,
            )
            log.info("mirror file cached", index=index.path, filename=filename, size=size)

        return self.downloads.start(
            index, listed.url, filename, listed.sha256, on_complete, expected_size=listed.size
        )

    async def _check_synthesized(self, index: IndexView, filename: str, verified: str) -> None:
        """The METADATA of the verified wheel replaces one read earlier by ranges
        (unverified bytes); a difference means the upstream served inconsistent bytes."""
        async with self.db.read() as session:
            earlier = (
                await session.execute(
                    select(MirrorCachedFile.core_metadata_sha256).where(
                        MirrorCachedFile.index_id == index.id,
                        MirrorCachedFile.filename == filename,
                    )
                )
            ).scalar_one_or_none()
        if earlier is not None and earlier != verified:
            log.error(
                "integrity alarm",
                index=index.path,
                filename=filename,
                detail="METADATA read by range requests differs from the verified wheel's; "
                "the verified one replaces it",
            )

    async def synthesize_metadata(self, index: IndexView, listed: ListedFile) -> str:
        """The sha256 of a wheel's `.metadata` made by lockgate (the upstream has none);
        one run per file however many clients ask, and it outlives a client leaving.

        Callers get the sha256 as soon as the blob is durable; the run then records
        its entry (and stays the one run for this file until it has)."""
        key = (index.path, listed.filename)
        ready = self._synthesizing.get(key)
        if ready is None:
            ready = asyncio.get_running_loop().create_future()
            ready.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._synthesizing[key] = ready
            task = asyncio.create_task(self._synthesis_run(index, listed, ready))
            self._tasks.add(task)

            def finished(task: asyncio.Task[None]) -> None:
                self._tasks.discard(task)
                self._synthesizing.pop(key, None)

            task.add_done_callback(finished)
        return await asyncio.shield(ready)

    async def _synthesis_run(
        self, index: IndexView, listed: ListedFile, ready: asyncio.Future[str]
    ) -> None:
        try:
            sha256 = await self._synthesize(index, listed, ready)
        except asyncio.CancelledError:
            ready.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the callers, or logged
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning(
                    "recording synthesized metadata failed",
                    filename=listed.filename,
                    reason=str(exc),
                )
            return
        if not ready.done():
            ready.set_result(sha256)

    async def _synthesize(
        self, index: IndexView, listed: ListedFile, ready: asyncio.Future[str]
    ) -> str:
        filename = listed.filename
        if listed.cached_sha256 and self.blobs.exists(listed.cached_sha256):
            path = self.blobs.path(listed.cached_sha256)
            metadata = await asyncio.to_thread(extract_wheel_metadata, path, filename)
            return await self._keep_metadata(index, filename, metadata, ready)
        if self.downloads.running(index, filename) is None and not (
            self.upstream.ranges_unsupported(index)
        ):
            try:
                return await self._metadata_by_ranges(index, listed, ready)
            except RangeNotHonoured:
                pass
            except Unreadable as exc:
                log.info("reading METADATA by ranges failed", filename=filename, reason=str(exc))
            except (UpstreamUnavailable, UpstreamBadData) as exc:
                log.warning(
                    "range requests to the upstream failed", filename=filename, reason=str(exc)
                )
        # Fall back to the whole wheel: its download extracts the METADATA (the same
        # code as for every mirrored wheel), and the cache fills on the way.
        sha256 = await self._metadata_from_download(index, listed)
        if sha256 is not None:
            return sha256
        return await self._keep_metadata(index, filename, None, ready)

    async def _keep_metadata(
        self,
        index: IndexView,
        filename: str,
        metadata: bytes | None,
        ready: asyncio.Future[str],
    ) -> str:
        """Record the METADATA read (its blob sha256), or that there is none (NotFound).
        Waiting clients are answered once the blob is durable, before the commit."""
        if metadata is None:
            await record_alone(
                self.db,
                MirrorNoMetadata(
                    user=index.user,
                    index=index.name,
                    filename=filename,
                    reason="the wheel has no single readable .dist-info/METADATA",
                    checked_at=utcnow_iso(),
                ),
                SYSTEM,
            )
            log.warning("mirrored wheel has no readable METADATA", filename=filename)
            raise NotFound(f"{filename} has no readable METADATA, so no .metadata is available")
        sha256 = await asyncio.to_thread(self.blobs.put_bytes, metadata)
        if not ready.done():
            ready.set_result(sha256)
        text = await asyncio.to_thread(read_text, metadata)
        await record_alone(
            self.db,
            MirrorMetadata(
                user=index.user,
                index=index.name,
                filename=filename,
                sha256=sha256,
                cached_at=utcnow_iso(),
                **text_fields(text),
            ),
            SYSTEM,
        )
        return sha256

    async def _metadata_from_download(self, index: IndexView, listed: ListedFile) -> str | None:
        download = self.start_download(index, listed)
        await download.wait_for(lambda: download.done or download.error is not None)
        if download.error is not None:
            raise BadGateway(
                f"cannot read the METADATA of {listed.filename}: {download.error.message}",
                download.error.status,
            )
        async with self.db.read() as session:
            return (
                await session.execute(
                    select(MirrorCachedFile.core_metadata_sha256).where(
                        MirrorCachedFile.index_id == index.id,
                        MirrorCachedFile.filename == listed.filename,
                    )
                )
            ).scalar_one_or_none()

    async def _metadata_by_ranges(
        self, index: IndexView, listed: ListedFile, ready: asyncio.Future[str]
    ) -> str:
        """METADATA from the upstream's range support, recorded (its blob sha256); a
        small wheel arrives whole in the first answer and is verified and cached."""
        url = listed.url
        first = await self.upstream.fetch_range(index, url, f"bytes=-{TAIL_BYTES}", TAIL_BYTES)
        if listed.size is not None and first.total != listed.size:
            raise UpstreamBadData(
                f"the upstream says {listed.filename} has {first.total} bytes, "
                f"its page says {listed.size}"
            )
        if first.start == 0 and len(first.data) == first.total:
            return await self._cache_whole(index, listed, first.data, ready)

        async def read(start: int, end: int) -> bytes:
            answer = await self.upstream.fetch_range(
                index, url, f"bytes={start}-{end - 1}", MAX_METADATA_BYTES + 64 * 1024
            )
            if answer.start != start or answer.total != first.total:
                raise UpstreamBadData("the upstream answered a different range than asked")
            return answer.data

        async def decompress(data: bytes, method: int, size: int, crc: int) -> bytes:
            return await asyncio.to_thread(decompress_member, data, method, size, crc)

        tail = Tail(first.data, first.start, first.total)
        metadata = await read_metadata(tail, read, decompress, MAX_METADATA_BYTES)
        return await self._keep_metadata(index, listed.filename, metadata, ready)

    async def _cache_whole(
        self, index: IndexView, listed: ListedFile, data: bytes, ready: asyncio.Future[str]
    ) -> str:
        """The whole (small) wheel came with the first range answer: check it as a
        download would be checked, keep it, and read its METADATA from it."""
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        if listed.sha256 and digest != listed.sha256:
            raise UpstreamBadData(
                f"{listed.filename} from the upstream has sha256 {digest}, but the upstream "
                f"page says {listed.sha256}; refusing to serve or keep it"
            )
        sha256 = await asyncio.to_thread(self.blobs.put_bytes, data)
        metadata = await asyncio.to_thread(
            extract_wheel_metadata, self.blobs.path(sha256), listed.filename
        )
        metadata_sha256 = None
        text = None
        if metadata is not None:
            metadata_sha256 = await asyncio.to_thread(self.blobs.put_bytes, metadata)
            ready.set_result(metadata_sha256)
            text = await asyncio.to_thread(read_text, metadata)
        await record_alone(
            self.db,
            MirrorFile(
                user=index.user,
                index=index.name,
                filename=listed.filename,
                sha256=sha256,
                size=len(data),
                core_metadata_sha256=metadata_sha256,
                cached_at=utcnow_iso(),
                **text_fields(text),
            ),
            SYSTEM,
        )
        log.info("mirror file cached", index=index.path, filename=listed.filename, size=len(data))
        if metadata_sha256 is None:
            return await self._keep_metadata(index, listed.filename, None, ready)
        return metadata_sha256
