"""HTTP handlers for index configuration (devpi's JSON shapes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.accounts.services import ROOT_USER
from lockgate.errors import Forbidden
from lockgate.indexes.services import (
    IndexView,
    create_index,
    delete_index,
    modify_index,
    require_index,
)
from lockgate.packages.services import project_names
from lockgate.server.auth import require_login, require_self_or_root
from lockgate.server.http import api_response, read_json_object
from lockgate.server.keys import DATABASE

# Settings that decide where the server sends requests: root only, so a user
# cannot turn lockgate into a proxy towards internal hosts (RELIABILITY SS-4).
UPSTREAM_KEYS = {"mirror_url", "mirror_ca_bundle"}


def _require_root_for_upstream(actor: str) -> None:
    if actor != ROOT_USER:
        raise Forbidden(
            "only root may create mirror indexes or change where they fetch from "
            "(mirror_url, mirror_ca_bundle)"
        )


def public_config(index: IndexView) -> dict[str, Any]:
    return index.public_config()


async def get_index_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, user, name)
        projects = [display for _, display in await project_names(session, [index])]
    return api_response("indexconfig", {**public_config(index), "projects": projects})


async def put_index(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await require_login(request, session)
        require_self_or_root(actor, user)
        if data.get("type") == "mirror":
            _require_root_for_upstream(actor)
        index = await create_index(session, user, name, data)
    return api_response("indexconfig", public_config(index), status=201, serial=db.serial)


async def patch_index(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await require_login(request, session)
        require_self_or_root(actor, user)
        if UPSTREAM_KEYS & set(data):
            _require_root_for_upstream(actor)
        index = await modify_index(session, user, name, data)
    return api_response("indexconfig", public_config(index), serial=db.serial)


async def delete_index_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await require_login(request, session)
        require_self_or_root(actor, user)
        await delete_index(session, user, name)
    return api_response("message", f"index {user}/{name} deleted", serial=db.serial)
