"""HTTP handlers for index configuration (devpi's JSON shapes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.accounts.auth import require_login
from lockgate.catalog.services import project_names
from lockgate.changelog.codec import Actor
from lockgate.db.session import DATABASE
from lockgate.egress import EGRESS
from lockgate.errors import BadRequest
from lockgate.http.pagecache import FILES
from lockgate.http.requests import api_response, read_json, read_json_object
from lockgate.indexes.access import require_read
from lockgate.indexes.config import UPSTREAM_KEYS, parse_keyvalue_ops
from lockgate.indexes.services import (
    authorize_index_change,
    change_index,
    delete_index,
    put_new_index,
    require_index,
)


async def get_index_view(request: web.Request) -> web.Response:
    """The index's settings and the projects it holds itself (without them for
    `?no_projects`, which devpi-client asks for before it changes an index)."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    # The same for every reader until the next commit: remembered per serial.
    db, memo = request.app[DATABASE], request.app[FILES]
    key = ("indexconfig", user, name)
    serial = db.serial
    config: dict[str, Any] | None = memo.get(key, serial)
    if config is None:
        async with db.read() as session:
            index = await require_index(session, user, name)
            projects = [display for _, display in await project_names(session, [index])]
        config = {**index.public_config(), "projects": projects}
        memo.put(key, serial, config)
    if "no_projects" in request.query:
        return api_response("indexconfig", {k: v for k, v in config.items() if k != "projects"})
    return api_response("indexconfig", config)


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
    """Settings to change (a JSON object, or devpi's reply to a GET sent back), or
    devpi-client's list of key-value operations (`["bases+=team/dev"]`)."""
    user, name = request.match_info["user"], request.match_info["index"]
    body = await read_json(request)
    if isinstance(body, dict) and body.get("type") == "indexconfig" and "result" in body:
        body = body["result"]
    ops = None
    if isinstance(body, list):
        ops = parse_keyvalue_ops(body)
        data = {op.key: op.value for op in ops if op.op == "set"}
        keys = {op.key for op in ops}
    elif isinstance(body, dict):
        data, keys = body, set(body)
    else:
        raise BadRequest(
            "request body must be a JSON object of settings or a list of key=value changes"
        )
    db = request.app[DATABASE]
    actor = await _authorize_change(request, user, bool(UPSTREAM_KEYS & keys))
    index = await change_index(db, request.app[EGRESS], user, name, data, actor, ops=ops)
    return api_response("indexconfig", index.public_config(), serial=db.serial)


async def delete_index_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    db = request.app[DATABASE]
    actor = await _authorize_change(request, user, touches_upstream=False)
    async with db.write() as session:
        await delete_index(session, user, name, actor)
    return api_response("message", f"index {user}/{name} deleted", serial=db.serial)
