"""Serving mirrored files and `.metadata`: from the blob store when cached, else
fetched from the upstream and streamed while cached (on a replica: streamed
from the primary, which caches them).

A Range request for a file not cached yet is answered 206 from the upstream's
own range support, or from the download in progress once its bytes are there
(docs/reliability.md MC-3). A client hanging up mid-transfer is ordinary: it is
logged as such, and the download carries on filling the cache (MC-2)."""

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
from lockgate.mirror.downloads import CHUNK, Download
from lockgate.mirror.files import ListedFile, MirrorFiles
from lockgate.mirror.services import MIRROR
from lockgate.mirror.upstream import RangeNotHonoured, UpstreamBadData, UpstreamUnavailable
from lockgate.replica.client import PRIMARY, PrimaryClient, PrimaryUnavailable
from lockgate.storage.blobs import BLOBS

log = structlog.get_logger("lockgate.mirror")

OCTETS = "application/octet-stream"
# A range of an uncached file is relayed from the upstream (read whole first, so a
# truncated answer becomes a clean 502) up to this size; larger ones wait for the download.
MAX_RELAYED_RANGE = 16 * 1024 * 1024


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
        if listed.synthesizable:
            # The upstream has none: lockgate reads the wheel's own (MC-5).
            return blob_response(request, await files.synthesize_metadata(index, listed), OCTETS)
        return blob_response(request, await files.fetch_metadata(index, listed), OCTETS)
    if (
        not want_metadata
        and listed.cached_sha256 is None
        and listed.sha256
        and request.app[BLOBS].exists(listed.sha256)
    ):
        # The blob named by the page's sha256 is that very file, verified, and its
        # entry is on its way (a small wheel cached while its `.metadata` was made):
        # serve it rather than fetch it a second time.
        return blob_response(request, listed.sha256, OCTETS)
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
        headers = {
            "Content-Type": OCTETS,
            "Cache-Control": FILE_CACHE_CONTROL,
            "Accept-Ranges": "bytes",
        }
        if listed.size is not None:
            headers["Content-Length"] = str(listed.size)
        return web.Response(headers=headers)
    if "Range" in request.headers:
        return await _serve_range(request, index, listed)
    return await _stream_from_upstream(request, index, listed)


def _file_headers(listed: ListedFile) -> dict[str, str]:
    headers = {
        "Content-Type": OCTETS,
        "Cache-Control": FILE_CACHE_CONTROL,
        "Accept-Ranges": "bytes",
    }
    if listed.sha256:
        headers["ETag"] = f'"{listed.sha256}"'
    return headers


def _unsatisfiable(size: int | None) -> web.Response:
    headers = {"Content-Range": f"bytes */{size}"} if size is not None else {}
    return web.Response(status=416, headers=headers, text="416: the range is not satisfiable\n")


def _span(wanted: slice, size: int | None) -> tuple[int, int] | None:
    """[start, end) of the file a parsed Range asks for; None when the size is needed
    but unknown. Raises ValueError when it cannot be satisfied."""
    start, stop = wanted.start, wanted.stop
    if start is not None and start < 0:  # a suffix: the last -start bytes
        if size is None:
            return None
        return max(0, size + start), size
    if size is None:
        return (start, stop) if stop is not None else None
    if start >= size:
        raise ValueError("range starts beyond the end of the file")
    return start, min(size, stop) if stop is not None else size


async def _serve_range(
    request: web.Request, index: IndexView, listed: ListedFile
) -> web.StreamResponse:
    """206 for a file not cached yet (docs/reliability.md MC-3)."""
    try:
        wanted = request.http_range
        span = _span(wanted, listed.size)
    except ValueError:
        return _unsatisfiable(listed.size)
    files = request.app[MIRROR].files
    running = files.downloads.running(index, listed.filename)
    relay = span is None or span[1] - span[0] <= MAX_RELAYED_RANGE
    if running is None and relay and not files.upstream.ranges_unsupported(index):
        if wanted.start < 0:
            header = f"bytes=-{-wanted.start}"
        elif wanted.stop is None:
            header = f"bytes={wanted.start}-"
        else:
            header = f"bytes={wanted.start}-{wanted.stop - 1}"
        try:
            answer = await files.upstream.fetch_range(index, listed.url, header, MAX_RELAYED_RANGE)
        except RangeNotHonoured:
            pass  # served from the download below
        except (UpstreamUnavailable, UpstreamBadData) as exc:
            raise BadGateway(f"cannot read a range of {listed.filename} upstream: {exc}") from None
        else:
            if listed.size is not None and answer.total != listed.size:
                raise BadGateway(
                    f"the upstream says {listed.filename} has {answer.total} bytes, "
                    f"its page says {listed.size}"
                )
            headers = _file_headers(listed)
            last = answer.start + len(answer.data) - 1
            headers["Content-Range"] = f"bytes {answer.start}-{last}/{answer.total}"
            return web.Response(status=206, body=answer.data, headers=headers)
    return await _range_from_download(request, files, index, listed, wanted)


async def _range_from_download(
    request: web.Request, files: MirrorFiles, index: IndexView, listed: ListedFile, wanted: slice
) -> web.StreamResponse:
    """Join (or start) the download and answer once the range's bytes are written
    (the last byte only once the whole file's hash checked out)."""
    download = files.start_download(index, listed)
    await download.wait_for(lambda: download.started or download.done or download.error is not None)
    if download.error is not None:
        raise _failure(download)
    total = download.size if download.size is not None else listed.size
    if total is None:
        await download.wait_for(lambda: download.done or download.error is not None)
        if download.error is not None:
            raise _failure(download)
        total = download.written
    try:
        span = _span(wanted, total)
    except ValueError:
        return _unsatisfiable(total)
    assert span is not None
    start, end = span
    await download.wait_for(
        lambda: download.done or download.error is not None or download.readable >= end
    )
    if download.error is not None and download.readable < end:
        raise _failure(download)
    headers = _file_headers(listed)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    response = web.StreamResponse(status=206, headers=headers)
    response.content_length = end - start
    with _open_download(download) as handle:
        await asyncio.to_thread(handle.seek, start)
        sent = start
        try:
            await response.prepare(request)
            while sent < end:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, end - sent))
                if not chunk:
                    break
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except ConnectionError:
            _client_left(listed.filename, sent - start)
    return response


def _client_left(filename: str, sent: int) -> None:
    """A client hanging up mid-transfer is ordinary (uv reads what it needs and goes)."""
    log.info("client disconnected", filename=filename, sent_bytes=sent)


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
    response = web.StreamResponse(headers=_file_headers(listed))
    if download.size is not None:
        response.content_length = download.size
    try:
        handle = _open_download(download)
    except FileNotFoundError:
        if download.error is not None:
            raise _failure(download) from None
        raise
    try:
        with handle:
            await response.prepare(request)
            await _send_growing(request, response, handle, download, listed)
    except ConnectionError:
        # The download is its own task: it goes on filling the cache (MC-2).
        _client_left(listed.filename, response.body_length)
    return response


async def _send_growing(
    request: web.Request,
    response: web.StreamResponse,
    handle: IO[bytes],
    download: Download,
    listed: ListedFile,
) -> None:
    """Send the download's bytes as they arrive, the last only once verified."""
    sent = 0
    while True:
        available = download.readable
        if sent < available:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, available - sent))
            if not chunk:
                break
            await response.write(chunk)
            sent += len(chunk)
            continue
        if download.verified and sent >= download.written:
            break  # everything sent and checked; recording the entry is not our business
        if download.error is not None:
            # Never let a failed or corrupt transfer look complete.
            log.warning(
                "aborting mirror transfer",
                filename=listed.filename,
                reason=download.error.message,
            )
            if request.transport is not None:
                request.transport.close()
            return
        if download.done:
            break
        await download.wait_past(sent)
    await response.write_eof()


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
