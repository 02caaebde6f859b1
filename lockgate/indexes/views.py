"""HTTP handlers for index configuration (devpi's JSON shapes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.accounts.services import ROOT_USER
from lockgate.errors import BadRequest, Forbidden
from lockgate.indexes.services import (
    IndexView,
    create_index,
    delete_index,
    modify_index,
    require_index,
)
from lockgate.mirror.egress import EgressRefused
from lockgate.mirror.pages import REDACTED
from lockgate.packages.services import project_names
from lockgate.server.auth import require_login, require_self_or_root
from lockgate.server.http import api_response, read_json_object
from lockgate.server.keys import DATABASE, MIRROR

# Settings that decide where the server sends requests: root only, so a user
# cannot turn lockgate into a proxy towards internal hosts (RELIABILITY SS-4).
UPSTREAM_KEYS = {"mirror_url", "mirror_ca_bundle"}


def _require_root_for_upstream(actor: str) -> None:
    if actor != ROOT_USER:
        raise Forbidden(
            "only root may create mirror indexes or change where they fetch from "
            "(mirror_url, mirror_ca_bundle)"
        )


async def _check_egress(request: web.Request, data: dict[str, Any]) -> None:
    url = data.get("mirror_url")
    if isinstance(url, str) and "://" in url and REDACTED not in url:
        try:
            await request.app[MIRROR].upstream.policy.check_url_resolved(url)
        except EgressRefused as exc:
            raise BadRequest(str(exc)) from None


def public_config(index: IndexView) -> dict[str, Any]:
    return index.public_config()


async def get_index_view(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, user, name)
        projects = [display for _, display in await project_names(session, [index])]
    return api_response("indexconfig", {**public_config(index), "projects": projects})


async def _authorize_change(request: web.Request, user: str, touches_upstream: bool) -> None:
    """Who may change this index; upstream checks (DNS) run here, before the
    write transaction, so a slow resolver never holds the writer lock."""
    async with request.app[DATABASE].read() as session:
        actor = await require_login(request, session)
    require_self_or_root(actor, user)
    if touches_upstream:
        _require_root_for_upstream(actor)


async def put_index(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    is_mirror = data.get("type") == "mirror"
    await _authorize_change(request, user, is_mirror)
    if is_mirror:
        await _check_egress(request, data)
    async with db.write() as session:
        index = await create_index(session, user, name, data)
    return api_response("indexconfig", public_config(index), status=201, serial=db.serial)


async def patch_index(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    touches_upstream = bool(UPSTREAM_KEYS & set(data))
    await _authorize_change(request, user, touches_upstream)
    if touches_upstream:
        await _check_egress(request, data)
    async with db.write() as session:
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
