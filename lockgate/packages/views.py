"""Handlers for release files (`+f`), their `.metadata`, and release delete/yank."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockgate.changelog.writer import record
from lockgate.errors import BadRequest, Forbidden, NotFound
from lockgate.indexes.services import IndexView, require_index
from lockgate.mirror.views import serve_mirror_file
from lockgate.packages.services import find_own_file, find_release, project_releases
from lockgate.server.auth import require_login, require_self_or_root, require_upload_permission
from lockgate.server.files import StoredFile, blob_response, file_memo_key
from lockgate.server.http import api_response, read_json_object
from lockgate.server.keys import DATABASE, FILES

METADATA_SUFFIX = ".metadata"


async def serve_file(request: web.Request) -> web.StreamResponse:
    user, name = request.match_info["user"], request.match_info["index"]
    prefix, filename = request.match_info["hash"], request.match_info["filename"]
    want_metadata = filename.endswith(METADATA_SUFFIX)
    if want_metadata:
        filename = filename[: -len(METADATA_SUFFIX)]
    db = request.app[DATABASE]
    known: StoredFile | None = request.app[FILES].get(
        file_memo_key(user, name, filename), db.serial
    )
    if known is None or (want_metadata and not known.metadata_sha256):
        async with db.read() as session:
            index = await require_index(session, user, name)
            found = None if index.is_mirror else await find_own_file(session, index, filename)
        if index.is_mirror:
            return await serve_mirror_file(request, index, prefix, filename, want_metadata)
        if found is None:
            raise NotFound(f"file {filename!r} not found on index {user}/{name}")
        file = found[0]
        known = StoredFile(file.sha256, file.sha256, file.core_metadata_sha256)
        request.app[FILES].put(file_memo_key(user, name, filename), db.serial, known)
    if len(prefix) < 8 or not known.path_key.startswith(prefix.lower()):
        raise NotFound(f"file {filename!r} not found on index {user}/{name}")
    if want_metadata:
        if not known.metadata_sha256:
            raise NotFound(f"no core metadata file is available for {filename!r}")
        return blob_response(request, known.metadata_sha256, "application/octet-stream")
    return blob_response(request, known.sha256, "application/octet-stream")


def _check_version(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        raise BadRequest(f"{version!r} is not a valid version") from None


async def _writable_release(request: web.Request, session: Any) -> tuple[IndexView, str, str, str]:
    user, name = request.match_info["user"], request.match_info["index"]
    project = canonicalize_name(request.match_info["project"])
    version = _check_version(request.match_info["version"])
    actor = await require_login(request, session)
    index = await require_index(session, user, name)
    require_upload_permission(actor, index, project)
    if await find_release(session, index, project, version) is None:
        raise NotFound(f"release {project} {version} not found on index {index.path}")
    return index, project, version, actor


async def delete_release(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    async with db.write() as session:
        index, project, version, _ = await _writable_release(request, session)
        if not index.volatile:
            raise Forbidden(
                f"index {index.path} is not volatile: releases cannot be deleted from it"
            )
        await record(
            session,
            "release.delete",
            {"user": index.user, "index": index.name, "project": project, "version": version},
        )
    return api_response("message", f"release {project} {version} deleted", serial=db.serial)


async def patch_release(request: web.Request) -> web.Response:
    """Yank or unyank a release: `{"yanked": true|false, "reason": "…"}`."""
    data = await read_json_object(request)
    if "yanked" not in data or not isinstance(data["yanked"], bool):
        raise BadRequest('send {"yanked": true, "reason": "…"} or {"yanked": false}')
    reason = data.get("reason") or None
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise BadRequest("'reason' must be a string of at most 1000 characters")
    db = request.app[DATABASE]
    async with db.write() as session:
        index, project, version, _ = await _writable_release(request, session)
        await record(
            session,
            "release.yank",
            {
                "user": index.user,
                "index": index.name,
                "project": project,
                "version": version,
                "yanked": data["yanked"],
                "reason": reason if data["yanked"] else None,
            },
        )
    state = "yanked" if data["yanked"] else "unyanked"
    return api_response("message", f"release {project} {version} {state}", serial=db.serial)


async def delete_file(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    prefix, filename = request.match_info["hash"], request.match_info["filename"]
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await require_login(request, session)
        index = await require_index(session, user, name)
        found = await find_own_file(session, index, filename)
        if found is None or not found[0].sha256.startswith(prefix.lower()):
            raise NotFound(f"file {filename!r} not found on index {index.path}")
        require_upload_permission(actor, index, found[2].name)
        if not index.volatile:
            raise Forbidden(f"index {index.path} is not volatile: files cannot be deleted from it")
        await record(
            session, "file.delete", {"user": index.user, "index": index.name, "filename": filename}
        )
    return api_response("message", f"file {filename} deleted", serial=db.serial)


async def delete_project(request: web.Request) -> web.Response:
    """Delete a project and release its name (its tombstone goes too).

    Only the index owner or root: while the name is held, mirror releases of it
    stay hidden from everything that inherits this index.
    """
    user, name = request.match_info["user"], request.match_info["index"]
    project = canonicalize_name(request.match_info["project"])
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await require_login(request, session)
        require_self_or_root(actor, user)
        index = await require_index(session, user, name)
        releases = await project_releases(session, index, project)
        if releases is None:
            raise NotFound(f"project {project} not found on index {index.path}")
        if releases and not index.volatile:
            raise Forbidden(
                f"index {index.path} is not volatile: project {project} still has "
                f"{len(releases)} release(s) and cannot be deleted"
            )
        await record(
            session,
            "project.delete",
            {"user": index.user, "index": index.name, "project": project},
        )
    return api_response("message", f"project {project} deleted from {index.path}", serial=db.serial)
