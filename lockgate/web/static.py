"""The pages' own stylesheet and images, served from the package at `/+static/{name}`.

They are few and small, so they are read once into memory. Their URLs carry a content
hash (`?v=…`), which lets browsers keep them for a year and still see a new release's.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from lockgate.errors import NotFound


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def _load() -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for entry in resources.files("lockgate.web").joinpath("static").iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        content_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
        files[entry.name] = StaticFile(body, content_type, hashlib.sha256(body).hexdigest()[:16])
    return files


STATIC_FILES = _load()


def static_url(name: str) -> str:
    return f"/+static/{name}?v={STATIC_FILES[name].etag}"


async def serve_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = STATIC_FILES.get(name)
    if found is None:
        raise NotFound(f"no static file {name!r}")
    etag = f'"{found.etag}"'
    cache = "public, max-age=31536000, immutable" if request.query.get("v") else "no-cache"
    headers = {"ETag": etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, content_type=found.content_type, headers=headers)
