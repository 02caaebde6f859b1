"""HTTP handlers for index configuration (devpi's JSON shapes)."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.auth import require_login
from lockgate.catalog.services import project_names
from lockgate.changelog.codec import Actor
from lockgate.db.session import DATABASE
from lockgate.egress import EGRESS
from lockgate.http.requests import api_response, read_json_object
from lockgate.indexes.access import require_read
from lockgate.indexes.config import UPSTREAM_KEYS
from lockgate.indexes.services import (
    authorize_index_change,
    change_index,
    delete_index,
    put_new_index,
    require_index,
)


async def get_index_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, user, name)
        projects = [display for _, display in await project_names(session, [index])]
    return api_response("indexconfig", {**index.public_config(), "projects": projects})


async def _authorize_change(request: web.Request, user: str, touches_upstream: bool) -> Actor:
    """Who may change this index. Authentication runs here, before the write
    transaction opens (the upstream checks run in the service, before it too)."""
    principal = await require_login(request)
    principal.require("admin")
    authorize_index_change(principal.user, user, touches_upstream)
    return principal.actor


async def put_index(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    actor = await _authorize_change(request, user, data.get("type") == "mirror")
    index = await put_new_index(db, request.app[EGRESS], user, name, data, actor)
    return api_response("indexconfig", index.public_config(), status=201, serial=db.serial)


async def patch_index(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    actor = await _authorize_change(request, user, bool(UPSTREAM_KEYS & set(data)))
    index = await change_index(db, request.app[EGRESS], user, name, data, actor)
    return api_response("indexconfig", index.public_config(), serial=db.serial)


async def delete_index_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    db = request.app[DATABASE]
    actor = await _authorize_change(request, user, touches_upstream=False)
    async with db.write() as session:
        await delete_index(session, user, name, actor)
    return api_response("message", f"index {user}/{name} deleted", serial=db.serial)
