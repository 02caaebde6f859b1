"""The legacy upload API (`POST /{user}/{index}/`), as twine, uv and poetry speak it.

The body streams to a temp file while it is hashed (here); checking and storing
it is `uploads.services`. The temp file is removed on any refusal or broken
connection.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import IO

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.client_exceptions import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError, InvalidHeader

from lockgate.accounts.auth import WRONG_PASSWORD, authenticate
from lockgate.changelog.codec import Actor
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.docs.services import is_docs_upload
from lockgate.docs.views import upload_docs
from lockgate.errors import BadRequest, Forbidden, Unauthorized
from lockgate.http.basic_auth import DEVPI_AUTH
from lockgate.indexes.services import require_index
from lockgate.storage.blobs import BLOBS, BlobStore, Digests, HashingWriter
from lockgate.uploads.services import check_upload, require_stage, store_upload
from lockgate.uploads.validation import UploadRejected

CHUNK = 256 * 1024
MIB = 1024 * 1024
MAX_FORM_FIELD_BYTES = 16 * 1024 * 1024
MAX_FORM_FIELDS = 2000
# Room for the form fields around the file when judging a Content-Length.
FORM_OVERHEAD = 16 * 1024 * 1024

# Warehouse's wording (R4.11) for names refused before validation.py sees them.
NON_PRINTABLE_FILENAME = (
    "Cannot upload a file with non-printable characters (ordinals 0-31) "
    "or the DEL character (ordinal 127) in the name."
)
SLASH_IN_FILENAME = "Cannot upload a file with '/' or '\\' in the name."


async def _read_body(
    request: web.Request, blobs: BlobStore, limit: int, docs_limit: int
) -> tuple[dict[str, list[str]], str | None, Path | None, Digests | None]:
    """Read the multipart form: text fields into memory, `content` into a temp file."""
    fields: dict[str, list[str]] = {key: list(request.query.getall(key)) for key in request.query}
    filename: str | None = None
    temp: Path | None = None
    digests: Digests | None = None
    field_bytes = 0
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as exc:
        raise BadRequest(f"the upload must be multipart/form-data ({exc})") from None
    try:
        count = 0
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not supported")
            count += 1
            if count > MAX_FORM_FIELDS:
                raise BadRequest("too many form fields in the upload")
            if part.name == "content":
                if temp is not None:
                    raise BadRequest("the upload carries more than one 'content' file")
                if not part.filename:
                    raise BadRequest("Upload payload does not have a file.")
                # aiohttp unescapes quoted-pairs, so `filename="..\\x.whl"` would reach us
                # as "..x.whl"; no distribution name has a backslash (or a quote) in it.
                if "\\" in part.headers.get(hdrs.CONTENT_DISPOSITION, ""):
                    raise BadRequest(SLASH_IN_FILENAME)
                filename = part.filename
                handle, temp = blobs.new_temp()
                project = (fields.get("name") or [filename.split("-")[0]])[0]
                # devpi-client sends `:action` before the file: a documentation zip
                # has its own cap (docs/reliability.md DOC-6).
                if is_docs_upload(fields):
                    digests = await _stream_to_file(part, handle, docs_limit, project, "docs")
                else:
                    digests = await _stream_to_file(part, handle, limit, project)
            elif part.filename is not None and part.name != "gpg_signature":
                raise BadRequest(f"{part.name}: Should not be a tuple.")
            elif part.name == "gpg_signature":
                await part.release()
            else:
                value = await part.read(decode=False)
                field_bytes += len(value)
                if field_bytes > MAX_FORM_FIELD_BYTES:
                    raise BadRequest("the upload's metadata fields are too large")
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest(f"field {part.name!r} is not valid UTF-8") from None
                fields.setdefault(part.name or "", []).append(text)
    except InvalidHeader as exc:
        # aiohttp refuses a part header with a control character before we see the
        # filename; a raw NUL or DEL in the file name (requests sends it as is) lands here.
        if temp is not None:
            blobs.discard(temp)
        if "filename" in exc.hdr:
            raise BadRequest(NON_PRINTABLE_FILENAME) from None
        raise BadRequest(f"the upload body is malformed: invalid part header {exc.hdr!r}") from None
    except (
        ClientPayloadError,
        HttpProcessingError,
        ValueError,
        asyncio.IncompleteReadError,
        ConnectionError,
    ) as exc:
        if temp is not None:
            blobs.discard(temp)
        raise BadRequest(f"the upload body is malformed or was cut short ({exc})") from None
    except BaseException:
        if temp is not None:
            blobs.discard(temp)
        raise
    return fields, filename, temp, digests


def _format_limit(limit: int) -> str:
    return f"{limit // MIB} MB" if limit % MIB == 0 else f"{limit} bytes"


async def _stream_to_file(
    part: BodyPartReader, handle: IO[bytes], limit: int, project: str, what: str = "file"
) -> Digests:
    writer = HashingWriter(handle)
    with handle:
        while True:
            chunk = await part.read_chunk(CHUNK)
            if not chunk:
                break
            # Hashing and writing run off the event loop (three digests per chunk).
            await asyncio.to_thread(writer.write, chunk)
            if writer.size > limit:
                if what == "docs":
                    raise UploadRejected(
                        f"Documentation too large. Limit for documentation zips is "
                        f"{_format_limit(limit)}.",
                        413,
                    )
                raise BadRequest(
                    f"File too large. Limit for project '{project}' is {_format_limit(limit)}."
                )
        handle.flush()
        await asyncio.to_thread(os.fsync, handle.fileno())
    return writer.digests()


async def _authenticate(request: web.Request, index_path: str) -> Actor:
    """The uploader, in Warehouse's words when that fails (403 for bad credentials)."""
    try:
        principal = await authenticate(request)
    except Unauthorized as exc:
        detail = "wrong user or password" if exc.message == WRONG_PASSWORD else exc.message
        raise Forbidden(f"Invalid or non-existent authentication information: {detail}.") from None
    if principal is None:
        raise Unauthorized(
            "Invalid or non-existent authentication information: "
            "upload with your lockgate user name and password, or __token__ and a token."
        )
    principal.require("upload", index_path)
    return principal.actor


async def upload(request: web.Request) -> web.Response:
    settings, blobs, db = request.app[SETTINGS], request.app[BLOBS], request.app[DATABASE]
    user, index_name = request.match_info["user"], request.match_info["index"]
    actor = await _authenticate(request, f"{user}/{index_name}")
    async with db.read() as session:
        index = await require_index(session, user, index_name)
    require_stage(index)
    limit = max(settings.max_upload_bytes, settings.docs_max_upload_bytes)
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD:
        # Refuse before reading a byte of a body that cannot fit (clients sending
        # `Expect: 100-continue` never send it at all).
        raise UploadRejected(
            f"File too large. Limit for uploads to {index.path} is "
            f"{_format_limit(settings.max_upload_bytes)} (documentation zips: "
            f"{_format_limit(settings.docs_max_upload_bytes)}).",
            413,
        )
    fields, filename, temp, digests = await _read_body(
        request, blobs, settings.max_upload_bytes, settings.docs_max_upload_bytes
    )
    try:
        if is_docs_upload(fields):
            # devpi's `:action=doc_upload` (devpi upload --with-docs): lockgate/docs.
            return await upload_docs(request, actor, index, fields, temp, digests)
        # devpi-client (logged in with X-Devpi-Auth) sends no digest of the file.
        digest_required = DEVPI_AUTH not in request.headers
        _, checked = await check_upload(
            db, actor, index, fields, filename, temp, digests, digest_required
        )
        assert filename is not None and temp is not None and digests is not None
        stored = await store_upload(db, blobs, index, actor, filename, temp, digests, checked)
    finally:
        if temp is not None:
            blobs.discard(temp)
    return web.Response(text="", headers={"X-Lockgate-Serial": str(stored.serial)})
