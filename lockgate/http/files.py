"""Sending stored blobs: sendfile, a strong ETag (the sha256), immutable caching,
conditional requests and ranges (aiohttp's FileResponse)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.helpers import ETag

from lockgate.errors import NotFound
from lockgate.storage.blobs import BLOBS

FILE_CACHE_CONTROL = "max-age=365000000, immutable, public"


@dataclass(frozen=True)
class StoredFile:
    """What a file URL resolves to, when its bytes are in the blob store."""

    path_key: str  # the `+f/{key}/` segment the URL must match (a prefix of it)
    sha256: str
    metadata_sha256: str | None


def file_memo_key(user: str, index: str, filename: str) -> tuple[str, ...]:
    return ("file", user, index, filename)


def if_none_match(request: web.Request, etag: str) -> bool:
    """RFC 9110 §13.1.2: `*` or any listed tag, compared weakly (`W/` ignored)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False  # the common case, answered without parsing
    header = header.strip()
    if header == "*":
        return True
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return etag.removeprefix("W/") in tags


class BlobFileResponse(web.FileResponse):
    """A FileResponse whose ETag is the blob's sha256 (strong, stable across
    servers and restores), not aiohttp's mtime-and-size tag."""

    def __init__(self, path: Path, etag: str, **kwargs: Any) -> None:
        self._blob_etag = etag
        super().__init__(path, **kwargs)

    @property
    def etag(self) -> ETag | None:
        return super().etag

    @etag.setter
    def etag(self, value: Any) -> None:
        # aiohttp sets its own tag while preparing; keep ours instead.
        web.StreamResponse.etag.fset(self, self._blob_etag)  # type: ignore[attr-defined]


def blob_response(request: web.Request, sha256: str, content_type: str) -> web.StreamResponse:
    path = request.app[BLOBS].path(sha256)
    if not path.is_file():
        raise NotFound(f"the stored file for sha256 {sha256} is missing on this server")
    etag = f'"{sha256}"'
    headers = {"Cache-Control": FILE_CACHE_CONTROL, "Content-Type": content_type, "ETag": etag}
    if if_none_match(request, etag):
        return web.Response(status=304, headers=headers)
    return BlobFileResponse(path, sha256, headers=headers)
