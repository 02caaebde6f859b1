"""Sending stored blobs: sendfile, a strong ETag (the sha256), immutable caching,
conditional requests and ranges (aiohttp's FileResponse)."""

from __future__ import annotations

from aiohttp import web

from lockgate.errors import NotFound
from lockgate.server.keys import BLOBS

FILE_CACHE_CONTROL = "max-age=365000000, immutable, public"


def if_none_match(request: web.Request, etag: str) -> bool:
    """RFC 9110 §13.1.2: `*` or any listed tag, compared weakly (`W/` ignored)."""
    header = request.headers.get("If-None-Match", "").strip()
    if header == "*":
        return True
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return etag.removeprefix("W/") in tags


def blob_response(request: web.Request, sha256: str, content_type: str) -> web.StreamResponse:
    path = request.app[BLOBS].path(sha256)
    if not path.is_file():
        raise NotFound(f"the stored file for sha256 {sha256} is missing on this server")
    etag = f'"{sha256}"'
    headers = {"Cache-Control": FILE_CACHE_CONTROL, "Content-Type": content_type, "ETag": etag}
    if if_none_match(request, etag):
        return web.Response(status=304, headers=headers)
    return web.FileResponse(path, headers=headers)
