"""Serving mirrored files and `.metadata`: from the blob store when cached, else
fetched from the upstream and streamed while cached (on a replica: streamed
from the primary, which caches them)."""

from __future__ import annotations

import asyncio
from typing import IO

import structlog
from aiohttp import web

from lockgate.db.session import DATABASE
from lockgate.errors import BadGateway, NotFound
from lockgate.http.files import FILE_CACHE_CONTROL, StoredFile, blob_response, file_memo_key
from lockgate.http.pagecache import FILES
from lockgate.indexes.services import IndexView
from lockgate.mirror.downloads import CHUNK, HOLD_BACK, Download
from lockgate.mirror.files import ListedFile
from lockgate.mirror.services import MIRROR
from lockgate.replica.client import PRIMARY, PrimaryClient, PrimaryUnavailable
from lockgate.storage.blobs import BLOBS

log = structlog.get_logger("lockgate.mirror")

OCTETS = "application/octet-stream"


async def serve_mirror_file(
    request: web.Request, index: IndexView, prefix: str, filename: str, want_metadata: bool
) -> web.StreamResponse:
    serial = request.app[DATABASE].serial  # read before the rows: a memo never outlives them
    files = request.app[MIRROR].files
    listed = await files.listed_file(index, filename)
    # Files the upstream no longer lists are kept for audit but not served.
    if listed is None or not listed.key_matches(prefix):
        raise NotFound(f"file {filename!r} is not listed on mirror {index.path}")
    if listed.quarantined:
        raise NotFound(f"{filename!r} belongs to a project quarantined upstream")
    if want_metadata and listed.cached_metadata_sha256:
        return blob_response(request, listed.cached_metadata_sha256, OCTETS)
    primary = request.app.get(PRIMARY)
    if want_metadata and primary is None:
        return blob_response(request, await files.fetch_metadata(index, listed), OCTETS)
    if (
        not want_metadata
        and listed.cached_sha256
        and request.app[BLOBS].exists(listed.cached_sha256)
    ):
        request.app[FILES].put(
            file_memo_key(index.user, index.name, filename),
            serial,
            StoredFile(listed.key, listed.cached_sha256, listed.cached_metadata_sha256),
        )
        return blob_response(request, listed.cached_sha256, OCTETS)
    if primary is not None:
        suffix = ".metadata" if want_metadata else ""
        return await _proxy_from_primary(
            request, primary, f"/{index.path}/+f/{prefix}/{filename}{suffix}"
        )
    if request.method == "HEAD":
        # Never fill the cache for a HEAD (docs/reliability.md CP-8): describe the file.
        headers = {"Content-Type": OCTETS, "Cache-Control": FILE_CACHE_CONTROL}
        if listed.size is not None:
            headers["Content-Length"] = str(listed.size)
        return web.Response(headers=headers)
    return await _stream_from_upstream(request, index, listed)


def _failure(download: Download) -> BadGateway:
    assert download.error is not None
    return BadGateway(download.error.message, download.error.status)


async def _stream_from_upstream(
    request: web.Request, index: IndexView, listed: ListedFile
) -> web.StreamResponse:
    download = request.app[MIRROR].files.start_download(index, listed)
    await download.wait_for(lambda: download.started or download.done or download.error is not None)
    if download.error is not None and (not download.started or download.written == 0):
        raise _failure(download)
    headers = {"Content-Type": OCTETS, "Cache-Control": FILE_CACHE_CONTROL}
    if listed.sha256:
        headers["ETag"] = f'"{listed.sha256}"'
    response = web.StreamResponse(headers=headers)
    if download.size is not None:
        response.content_length = download.size
    try:
        handle = _open_download(download)
    except FileNotFoundError:
        if download.error is not None:
            raise _failure(download) from None
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
                    "aborting mirror transfer",
                    filename=listed.filename,
                    reason=download.error.message,
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
                raise BadGateway(text or f"the primary answered {upstream.status}", upstream.status)
            response = web.StreamResponse(
                headers={
                    "Content-Type": OCTETS,
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
        raise BadGateway(f"not cached on this replica, and {exc}", 502) from None
    await response.write_eof()
    return response
