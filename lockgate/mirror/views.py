"""Serving mirrored files and `.metadata`: from the blob store when cached, else
fetched from the upstream and streamed while cached; plus the mirror's
project list."""

from __future__ import annotations

import asyncio
import hashlib
from typing import IO

import structlog
from aiohttp import web
from sqlalchemy import select

from lockgate.changelog.writer import record, utcnow_iso
from lockgate.errors import LockgateError, NotFound
from lockgate.indexes.services import IndexView
from lockgate.mirror.downloads import CHUNK, HOLD_BACK, Download, extract_wheel_metadata
from lockgate.mirror.models import MirrorCachedFile, MirrorLink, MirrorProject
from lockgate.mirror.upstream import UpstreamBadData, UpstreamUnavailable
from lockgate.packages.services import url_key
from lockgate.replica.client import PrimaryClient, PrimaryUnavailable
from lockgate.server.files import FILE_CACHE_CONTROL, StoredFile, blob_response, file_memo_key
from lockgate.server.keys import BLOBS, DATABASE, FILES, MIRROR, PRIMARY

log = structlog.get_logger("lockgate.mirror")

MAX_METADATA_BYTES = 10 * 1024 * 1024


class UpstreamFailure(LockgateError):
    status = 502


async def _load(
    request: web.Request, index: IndexView, filename: str
) -> tuple[MirrorLink | None, MirrorCachedFile | None, MirrorProject | None]:
    async with request.app[DATABASE].read() as session:
        link = (
            await session.execute(
                select(MirrorLink).where(
                    MirrorLink.index_id == index.id, MirrorLink.filename == filename
                )
            )
        ).scalar_one_or_none()
        cached = (
            await session.execute(
                select(MirrorCachedFile).where(
                    MirrorCachedFile.index_id == index.id, MirrorCachedFile.filename == filename
                )
            )
        ).scalar_one_or_none()
        project = None
        if link is not None:
            project = (
                await session.execute(
                    select(MirrorProject).where(
                        MirrorProject.index_id == index.id, MirrorProject.name == link.project
                    )
                )
            ).scalar_one_or_none()
    return link, cached, project


def _key_matches(prefix: str, link: MirrorLink) -> bool:
    key = link.sha256[:16] if link.sha256 else url_key(link.url)
    return len(prefix) >= 8 and key.startswith(prefix.lower())


async def serve_mirror_file(
    request: web.Request, index: IndexView, prefix: str, filename: str, want_metadata: bool
) -> web.StreamResponse:
    serial = request.app[DATABASE].serial  # read before the rows: a memo never outlives them
    link, cached, project = await _load(request, index, filename)
    # Files the upstream no longer lists are kept for audit but not served.
    if link is None or not _key_matches(prefix, link):
        raise NotFound(f"file {filename!r} is not listed on mirror {index.path}")
    if project is not None and project.status == "quarantined":
        raise NotFound(f"{filename!r} belongs to a project quarantined upstream")
    if want_metadata and cached is not None and cached.core_metadata_sha256:
        return blob_response(request, cached.core_metadata_sha256, "application/octet-stream")
    primary = request.app.get(PRIMARY)
    if want_metadata and primary is None:
        return await _serve_metadata(request, index, link, cached)
    if (
        not want_metadata
        and cached is not None
        and cached.sha256
        and request.app[BLOBS].exists(cached.sha256)
    ):
        path_key = link.sha256[:16] if link.sha256 else url_key(link.url)
        request.app[FILES].put(
            file_memo_key(index.user, index.name, filename),
            serial,
            StoredFile(path_key, cached.sha256, cached.core_metadata_sha256),
        )
        return blob_response(request, cached.sha256, "application/octet-stream")
    if primary is not None:
        suffix = ".metadata" if want_metadata else ""
        return await _proxy_from_primary(
            request, primary, f"/{index.path}/+f/{prefix}/{filename}{suffix}"
        )
    if request.method == "HEAD":
        # Never fill the cache for a HEAD (RELIABILITY CP-8): describe the file.
        headers = {"Content-Type": "application/octet-stream", "Cache-Control": FILE_CACHE_CONTROL}
        if link.size is not None:
            headers["Content-Length"] = str(link.size)
        return web.Response(headers=headers)
    return await _stream_from_upstream(request, index, link)


async def _serve_metadata(
    request: web.Request,
    index: IndexView,
    link: MirrorLink,
    cached: MirrorCachedFile | None,
) -> web.StreamResponse:
    if cached is not None and cached.core_metadata_sha256:
        return blob_response(request, cached.core_metadata_sha256, "application/octet-stream")
    if not link.core_metadata:
        raise NotFound(f"no core metadata is available for {link.filename!r} yet")
    mirror = request.app[MIRROR]
    try:
        async with mirror.upstream.get(index, link.url + ".metadata") as response:
            if response.status != 200:
                raise NotFound(
                    f"the upstream answered {response.status} for {link.filename}.metadata"
                )
            body = await mirror.upstream._read_limited(response, MAX_METADATA_BYTES)
    except (UpstreamUnavailable, UpstreamBadData) as exc:
        raise UpstreamFailure(f"cannot fetch {link.filename}.metadata: {exc}", 504) from None
    digest = hashlib.sha256(body).hexdigest()
    if link.core_metadata_sha256 and digest != link.core_metadata_sha256:
        raise UpstreamFailure(
            f"{link.filename}.metadata from the upstream does not match its advertised hash; "
            "refusing to serve or keep it"
        )
    sha256 = await asyncio.to_thread(request.app[BLOBS].put_bytes, body)
    async with request.app[DATABASE].write() as session:
        await record(
            session,
            "mirror.metadata",
            {
                "user": index.user,
                "index": index.name,
                "filename": link.filename,
                "sha256": sha256,
                "cached_at": utcnow_iso(),
            },
        )
    return blob_response(request, sha256, "application/octet-stream")


async def _stream_from_upstream(
    request: web.Request, index: IndexView, link: MirrorLink
) -> web.StreamResponse:
    app = request.app
    mirror, blobs, db = app[MIRROR], app[BLOBS], app[DATABASE]
    needs_metadata = not link.core_metadata and link.filename.endswith(".whl")
    filename = link.filename

    async def on_complete(sha256: str, size: int, path: object) -> None:
        metadata_sha256 = None
        if needs_metadata:
            metadata = await asyncio.to_thread(extract_wheel_metadata, path, filename)  # type: ignore[arg-type]
            if metadata is not None:
                metadata_sha256 = await asyncio.to_thread(blobs.put_bytes, metadata)
        async with db.write() as session:
            await record(
                session,
                "mirror.file",
                {
                    "user": index.user,
                    "index": index.name,
                    "filename": filename,
                    "sha256": sha256,
                    "size": size,
                    "core_metadata_sha256": metadata_sha256,
                    "cached_at": utcnow_iso(),
                },
            )
        log.info("mirror file cached", index=index.path, filename=filename, size=size)

    download = mirror.downloads.start(
        index, link.url, filename, link.sha256, on_complete, expected_size=link.size
    )
    await download.wait_for(lambda: download.started or download.done or download.error is not None)
    if download.error is not None and not download.started:
        raise UpstreamFailure(download.error.message, download.error.status)
    if download.error is not None and download.written == 0:
        raise UpstreamFailure(download.error.message, download.error.status)
    headers = {"Content-Type": "application/octet-stream", "Cache-Control": FILE_CACHE_CONTROL}
    if link.sha256:
        headers["ETag"] = f'"{link.sha256}"'
    response = web.StreamResponse(headers=headers)
    if download.size is not None:
        response.content_length = download.size
    try:
        handle = _open_download(download)
    except FileNotFoundError:
        if download.error is not None:
            raise UpstreamFailure(download.error.message, download.error.status) from None
        raise
    with handle:
        await response.prepare(request)
        sent = 0
        while True:
            available = download.written if download.done else download.written - HOLD_BACK
            if sent < available:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, available - sent))
                if not chunk:
                    break
                await response.write(chunk)
                sent += len(chunk)
                continue
            if download.error is not None:
                # Never let a failed or corrupt transfer look complete.
                log.warning(
                    "aborting mirror transfer", filename=filename, reason=download.error.message
                )
                if request.transport is not None:
                    request.transport.close()
                return response
            if download.done:
                break
            await download.wait_past(sent)
    await response.write_eof()
    return response


def _open_download(download: Download) -> IO[bytes]:
    """The growing temp file, or the blob it became if the download just finished."""
    for path in (download.temp, download.blob):
        if path is None:
            continue
        try:
            return path.open("rb")
        except FileNotFoundError:
            continue
    raise FileNotFoundError(download.temp)


async def _proxy_from_primary(
    request: web.Request, primary: PrimaryClient, path: str
) -> web.StreamResponse:
    """A replica's cache miss: stream the file from the primary, which fetches and
    caches it (the follower then brings the blob here through the changelog)."""
    try:
        async with primary.get(path, read_timeout=120) as upstream:
            if upstream.status != 200:
                text = (await upstream.text())[:500].strip()
                raise UpstreamFailure(
                    text or f"the primary answered {upstream.status}", upstream.status
                )
            response = web.StreamResponse(
                headers={
                    "Content-Type": "application/octet-stream",
                    "Cache-Control": FILE_CACHE_CONTROL,
                    **({"ETag": upstream.headers["ETag"]} if "ETag" in upstream.headers else {}),
                }
            )
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(256 * 1024):
                await response.write(chunk)
    except PrimaryUnavailable as exc:
        raise UpstreamFailure(f"not cached on this replica, and {exc}", 502) from None
    await response.write_eof()
    return response
