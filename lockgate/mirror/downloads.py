"""Fetching mirrored files: one upstream download per file, however many clients
ask at once, streamed to all of them while it is written to the blob store.

The download runs as its own task, so a client that disconnects does not stop
it (the cache still fills). Clients read the growing temp file; the last bytes
are held back until the sha256 is verified, so a corrupt download never
reaches a client as a complete response. They are released once the verified
file is a durable blob (`verified`), without waiting for its entry's commit:
the client needs the bytes, not the row, and a request arriving meanwhile
still joins this download rather than starting another.
"""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from lockgate.errors import BadGateway
from lockgate.indexes.services import IndexView
from lockgate.mirror.upstream import UpstreamClient, UpstreamUnavailable
from lockgate.storage.blobs import BlobStore, HashingWriter

log = structlog.get_logger("lockgate.mirror")

CHUNK = 256 * 1024
MAX_METADATA_BYTES = 10 * 1024 * 1024
HOLD_BACK = 1  # bytes withheld from readers until the hash is verified
# An upstream that announces no size cannot send more than this (docs/reliability.md SS-6).
MAX_UNSIZED_FILE_BYTES = 16 * 1024 * 1024 * 1024


class DownloadFailed(BadGateway):
    """An upstream download failed or did not match its hash (502, or 504 on a timeout)."""


@dataclass
class Download:
    filename: str
    temp: Path
    expected_sha256: str | None
    expected_size: int | None = None  # from the upstream page
    size: int | None = None  # from Content-Length, once known
    written: int = 0
    started: bool = False
    done: bool = False
    verified: bool = False  # the whole file checked out and is a durable blob
    error: DownloadFailed | None = None
    sha256: str | None = None
    blob: Path | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self.changed:
            await self.changed.wait_for(predicate)

    @property
    def readable(self) -> int:
        """How many bytes readers may have: all once verified, else all but the last."""
        return self.written if self.done or self.verified else self.written - HOLD_BACK

    async def wait_past(self, offset: int) -> None:
        """Until readers may go beyond `offset`, or the download ended."""
        await self.wait_for(lambda: self.done or self.error is not None or self.readable > offset)


OnComplete = Callable[[str, int, Path], Awaitable[None]]


class DownloadCoordinator:
    def __init__(self, blobs: BlobStore, upstream: UpstreamClient) -> None:
        self.blobs = blobs
        self.upstream = upstream
        self._running: dict[tuple[str, str], Download] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def running(self, index: IndexView, filename: str) -> Download | None:
        """The download of this file in progress, if any."""
        return self._running.get((index.path, filename))

    def start(
        self,
        index: IndexView,
        url: str,
        filename: str,
        expected_sha256: str | None,
        on_complete: OnComplete,
        expected_size: int | None = None,
    ) -> Download:
        key = (index.path, filename)
        existing = self._running.get(key)
        if existing is not None:
            return existing
        handle, temp = self.blobs.new_temp()
        handle.close()
        download = Download(
            filename=filename,
            temp=temp,
            expected_sha256=expected_sha256,
            expected_size=expected_size,
        )
        self._running[key] = download
        task = asyncio.create_task(self._run(key, index, url, download, on_complete))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return download

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(
        self,
        key: tuple[str, str],
        index: IndexView,
        url: str,
        download: Download,
        on_complete: OnComplete,
    ) -> None:
        try:
            await self._fetch(index, url, download)
            assert download.sha256 is not None
            download.blob = await asyncio.to_thread(
                self.blobs.commit_temp, download.temp, download.sha256
            )
            download.verified = True
            await download.notify()
            await on_complete(download.sha256, download.written, download.blob)
            download.done = True
        except DownloadFailed as exc:
            download.error = exc
        except asyncio.CancelledError:
            download.error = DownloadFailed("the server is shutting down", 503)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure must reach the waiters
            log.exception("mirror download failed", filename=download.filename)
            download.error = DownloadFailed(f"download of {download.filename} failed: {exc}")
        finally:
            del self._running[key]
            if download.error is not None:
                # Readers that opened the temp file keep their handle; the
                # name goes now so a failed download leaves nothing behind.
                self.blobs.discard(download.temp)
                log.warning(
                    "mirror download failed",
                    filename=download.filename,
                    reason=download.error.message,
                )
            await download.notify()

    async def _fetch(self, index: IndexView, url: str, download: Download) -> None:
        try:
            async with self.upstream.get(index, url) as response:
                if response.status in (404, 410):
                    raise DownloadFailed(
                        f"{download.filename} is listed but the upstream answered "
                        f"{response.status} for it",
                        404,
                    )
                if response.status != 200:
                    raise DownloadFailed(
                        f"the upstream answered {response.status} for {download.filename}"
                    )
                download.size = response.content_length
                limit = download.expected_size or download.size or MAX_UNSIZED_FILE_BYTES
                download.started = True
                await download.notify()
                with download.temp.open("wb") as handle:
                    writer = HashingWriter(handle)
                    async for chunk in response.content.iter_chunked(CHUNK):
                        await asyncio.to_thread(writer.write, chunk)
                        download.written = writer.size
                        if writer.size > limit:
                            raise DownloadFailed(
                                f"the upstream sent more than the {limit} bytes expected "
                                f"for {download.filename}; transfer stopped"
                            )
                        await download.notify()
                    handle.flush()
                    await asyncio.to_thread(os.fsync, handle.fileno())
        except UpstreamUnavailable as exc:
            raise DownloadFailed(str(exc), 504 if "Timeout" in str(exc) else 502) from None
        digests = writer.digests()
        if download.size is not None and digests.size != download.size:
            raise DownloadFailed(
                f"the upstream sent {digests.size} bytes of {download.filename}, "
                f"not the {download.size} it announced"
            )
        if download.expected_sha256 and digests.sha256 != download.expected_sha256:
            raise DownloadFailed(
                f"{download.filename} from the upstream has sha256 {digests.sha256}, but the "
                f"upstream page says {download.expected_sha256}; refusing to serve or keep it"
            )
        download.sha256 = digests.sha256
        download.size = digests.size


def extract_wheel_metadata(path: Path, filename: str) -> bytes | None:
    """The METADATA bytes of a cached wheel, or None when it has none readable."""
    if not filename.endswith(".whl"):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                info
                for info in archive.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
            ]
            if len(candidates) != 1 or candidates[0].file_size > MAX_METADATA_BYTES:
                return None
            with archive.open(candidates[0]) as member:
                return member.read(MAX_METADATA_BYTES + 1)[:MAX_METADATA_BYTES]
    except (zipfile.BadZipFile, OSError, io.UnsupportedOperation):
        return None
