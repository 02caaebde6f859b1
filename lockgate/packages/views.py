"""Handlers for release files (`+f`), their `.metadata`, and release delete/yank."""

from __future__ import annotations

from aiohttp import web
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockgate.accounts.auth import require_login
from lockgate.changelog.codec import Actor
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest, NotFound
from lockgate.http.files import StoredFile, blob_response, file_memo_key
from lockgate.http.pagecache import FILES
from lockgate.http.requests import api_response, read_json_object
from lockgate.indexes.access import index_and_chain, require_read
from lockgate.mirror.views import serve_mirror_file
from lockgate.packages.services import (
    delete_file,
    delete_project,
    delete_release,
    find_own_file,
    yank_release,
)

METADATA_SUFFIX = ".metadata"
MAX_REASON_CHARS = 1000


async def serve_file(request: web.Request) -> web.StreamResponse:
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    prefix, filename = request.match_info["hash"], request.match_info["filename"]
    want_metadata = filename.endswith(METADATA_SUFFIX)
    if want_metadata:
        filename = filename[: -len(METADATA_SUFFIX)]
    db = request.app[DATABASE]
    known: StoredFile | None = request.app[FILES].get(
        file_memo_key(user, name, filename), db.serial
    )
    if known is None or (want_metadata and not known.metadata_sha256):
        index, _ = await index_and_chain(request, user, name)
        if index.is_mirror:
            return await serve_mirror_file(request, index, prefix, filename, want_metadata)
        async with db.read() as session:
            found = await find_own_file(session, index, filename)
        if found is None:
            raise NotFound(f"file {filename!r} not found on index {user}/{name}")
        known = StoredFile(found.sha256, found.sha256, found.core_metadata_sha256)
        request.app[FILES].put(file_memo_key(user, name, filename), db.serial, known)
    if len(prefix) < 8 or not known.path_key.startswith(prefix.lower()):
        raise NotFound(f"file {filename!r} not found on index {user}/{name}")
    if want_metadata:
        if not known.metadata_sha256:
            raise NotFound(f"no core metadata file is available for {filename!r}")
        return blob_response(request, known.metadata_sha256, "application/octet-stream")
    return blob_response(request, known.sha256, "application/octet-stream")


async def _releaser(request: web.Request, user: str, name: str) -> Actor:
    """The user changing releases of `user/name` (a token needs the upload scope)."""
    principal = await require_login(request)
    principal.require("upload", f"{user}/{name}")
    return principal.actor


def _release_in_path(request: web.Request) -> tuple[str, str, str, str]:
    user, name = request.match_info["user"], request.match_info["index"]
    project = canonicalize_name(request.match_info["project"])
    try:
        version = str(Version(request.match_info["version"]))
    except InvalidVersion:
        raise BadRequest(f"{request.match_info['version']!r} is not a valid version") from None
    return user, name, project, version


async def delete_release_view(request: web.Request) -> web.Response:
    user, name, project, version = _release_in_path(request)
    actor = await _releaser(request, user, name)
    db = request.app[DATABASE]
    async with db.write() as session:
        await delete_release(session, actor, user, name, project, version)
    return api_response("message", f"release {project} {version} deleted", serial=db.serial)


async def patch_release(request: web.Request) -> web.Response:
    """Yank or unyank a release: `{"yanked": true|false, "reason": "…"}`."""
    data = await read_json_object(request)
    if "yanked" not in data or not isinstance(data["yanked"], bool):
        raise BadRequest('send {"yanked": true, "reason": "…"} or {"yanked": false}')
    reason = data.get("reason") or None
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
        raise BadRequest(f"'reason' must be a string of at most {MAX_REASON_CHARS} characters")
    user, name, project, version = _release_in_path(request)
    actor = await _releaser(request, user, name)
    db = request.app[DATABASE]
    async with db.write() as session:
        await yank_release(
            session, actor, user, name, project, version, yanked=data["yanked"], reason=reason
        )
    state = "yanked" if data["yanked"] else "unyanked"
    return api_response("message", f"release {project} {version} {state}", serial=db.serial)


async def delete_file_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    prefix, filename = request.match_info["hash"], request.match_info["filename"]
    actor = await _releaser(request, user, name)
    db = request.app[DATABASE]
    async with db.write() as session:
        await delete_file(session, actor, user, name, prefix, filename)
    return api_response("message", f"file {filename} deleted", serial=db.serial)


async def delete_project_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    project = canonicalize_name(request.match_info["project"])
    actor = await _releaser(request, user, name)
    db = request.app[DATABASE]
    async with db.write() as session:
        index = await delete_project(session, actor, user, name, project)
    return api_response("message", f"project {project} deleted from {index.path}", serial=db.serial)
