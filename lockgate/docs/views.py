"""Documentation: stored from devpi's `:action=doc_upload` (the upload view hands such
a form here once it has streamed the zip to a temp file), served out of the zip under
`/{user}/{index}/{project}/{version}/+doc/{path}` (`latest` for the newest non-yanked
release with documentation). A derived index serves the docs of releases it inherits
from its bases (the nearest base holding them), to those who may read that base.

Doc pages are untrusted HTML uploaded by any uploader of an index. Every answer on a
doc path carries `Content-Security-Policy: sandbox allow-scripts allow-popups
allow-forms`: without `allow-same-origin` the page runs in an opaque origin, so its
scripts read no cookie, storage or authenticated page of lockgate (docs/reliability.md
DOC-7). With the `docs_url` setting, doc requests arriving on any other host are
redirected to that origin, so the pages never even share lockgate's host.
"""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from lockgate.changelog.codec import Actor
from lockgate.config import SETTINGS, Settings
from lockgate.db.session import DATABASE
from lockgate.docs.archive import DocsLimits, DocsRejected, find_member, iter_member, read_member
from lockgate.docs.services import check_docs, find_docs, parse_docs_form, store_docs
from lockgate.errors import LockgateError, NotFound
from lockgate.http.files import if_none_match
from lockgate.indexes.access import require_read
from lockgate.indexes.services import IndexView, require_index, resolve_chain
from lockgate.storage.blobs import BLOBS, Digests

SANDBOX_CSP = "sandbox allow-scripts allow-popups allow-forms"
DOC_HEADERS = {"Content-Security-Policy": SANDBOX_CSP, "X-Content-Type-Options": "nosniff"}
# Members up to this size are answered from memory; bigger ones are streamed.
STREAM_FROM = 1024 * 1024
_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml", "application/xml")


async def upload_docs(
    request: web.Request,
    actor: Actor,
    index: IndexView,
    fields: dict[str, list[str]],
    temp: Path | None,
    digests: Digests | None,
) -> web.Response:
    """Store a documentation zip for a release (the caller removes the temp file)."""
    settings, blobs, db = request.app[SETTINGS], request.app[BLOBS], request.app[DATABASE]
    form = parse_docs_form(fields)
    if temp is None or digests is None:
        raise DocsRejected("content file field not found: post the documentation zip as 'content'")
    limits = DocsLimits(settings.docs_max_unpacked_bytes, settings.docs_max_members)
    checked = await check_docs(db, actor, index, form, temp, limits)
    stored = await store_docs(db, blobs, index, actor, temp, digests, checked)
    return web.Response(text="", headers={"X-Lockgate-Serial": str(stored.serial)})


def _docs_origin_redirect(request: web.Request, settings: Settings) -> web.Response | None:
    """With `docs_url`, a doc request on any other host goes there (same path)."""
    if not settings.docs_url:
        return None
    wanted = urlsplit(settings.docs_url)
    if request.host.lower() == wanted.netloc.lower():
        return None
    return _redirect(settings.docs_url + request.path_qs)


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, **DOC_HEADERS})


async def serve_docs(request: web.Request) -> web.StreamResponse:
    """A file of a release's documentation (see the module docstring)."""
    try:
        return await _serve(request)
    except LockgateError as exc:
        # Errors on doc paths are plain text or JSON, but say the same about sniffing.
        exc.headers.update(DOC_HEADERS)
        raise


async def _serve(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    elsewhere = _docs_origin_redirect(request, settings)
    if elsewhere is not None:
        return elsewhere
    user, name = request.match_info["user"], request.match_info["index"]
    project, version = request.match_info["project"], request.match_info["version"]
    await require_read(request, user, name)
    relpath = request.match_info.get("relpath")
    if relpath is None:  # `+doc` itself: relative links in index.html need the slash
        return _redirect(
            request.path + "/" + (f"?{request.query_string}" if request.query_string else "")
        )
    db = request.app[DATABASE]
    async with db.read() as session:
        index = await require_index(session, user, name)
        chain = [] if index.is_mirror else await resolve_chain(session, index)
        docs = await find_docs(session, chain, project, version)
    if docs is None:
        raise NotFound(f"no documentation for {project} {version} on index {user}/{name}")
    if docs.holder != index.path:
        # Inherited from a base: whoever may not read that base does not read its docs
        # through a derived index either (401/403 naming the base).
        holder_user, holder_name = docs.holder.split("/", 1)
        await require_read(request, holder_user, holder_name)
    path = request.app[BLOBS].path(docs.sha256)
    if not path.is_file():
        raise NotFound(f"the documentation of {project} {docs.version} is missing on this server")
    member, is_dir = await asyncio.to_thread(find_member, path, relpath)
    if member is None:
        if is_dir:
            return _redirect(request.path + "/")
        raise NotFound(f"{relpath!r} is not in the documentation of {docs.project} {docs.version}")
    last_modified = _parse_time(docs.uploaded_at)
    etag = f'"{docs.sha256[:40]}-{member.crc:08x}-{member.size:x}"'
    headers = {
        **DOC_HEADERS,
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified, usegmt=True),
        # `latest` moves and a volatile index may replace docs: revalidate (cheaply).
        "Cache-Control": "no-cache",
    }
    if _not_modified(request, etag, last_modified):
        return web.Response(status=304, headers=headers)
    content_type, encoding = mimetypes.guess_type(member.name, strict=False)
    if encoding is not None or content_type is None:
        content_type = "application/octet-stream"  # never let a browser unpack or guess
    charset = "utf-8" if content_type.startswith("text/") or content_type in _TEXT_TYPES else None
    if request.method == "HEAD":
        head = web.StreamResponse(headers=headers)
        head.content_type = content_type
        if charset:
            head.charset = charset
        head.content_length = member.size
        await head.prepare(request)
        await head.write_eof()
        return head
    if member.size <= STREAM_FROM:
        body = await asyncio.to_thread(read_member, path, member.name)
        return web.Response(body=body, content_type=content_type, charset=charset, headers=headers)
    return await _stream(request, path, member.name, member.size, content_type, charset, headers)


async def _stream(
    request: web.Request,
    path: Path,
    name: str,
    size: int,
    content_type: str,
    charset: str | None,
    headers: dict[str, str],
) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    response.content_type = content_type
    if charset:
        response.charset = charset
    response.content_length = size
    chunks = iter_member(path, name)
    try:
        await response.prepare(request)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            await response.write(chunk)
        await response.write_eof()
    finally:
        await asyncio.to_thread(chunks.close)
    return response


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC).replace(microsecond=0)
    return parsed.astimezone(UTC).replace(microsecond=0)


def _not_modified(request: web.Request, etag: str, last_modified: datetime) -> bool:
    if "If-None-Match" in request.headers:
        return if_none_match(request, etag)  # RFC 9110 §13.2.2: it wins over the date
    since = request.headers.get("If-Modified-Since")
    if not since:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return last_modified <= when
