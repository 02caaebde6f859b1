"""HTTP handlers for reserved namespaces: `GET /+namespaces` (public),
`GET /+namespaces/{prefix}`, and `PUT`/`DELETE /+namespaces/{prefix}` (root only)."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.auth import require_login
from lockgate.changelog.codec import Actor
from lockgate.db.session import DATABASE
from lockgate.http.requests import api_response, read_json_object
from lockgate.namespaces.services import (
    list_namespaces,
    parse_prefix,
    release_namespace,
    require_namespace,
    require_root,
    reserve_namespace,
)


async def _require_root(request: web.Request) -> Actor:
    principal = await require_login(request)
    principal.require("admin")
    require_root(principal.user)
    return principal.actor


async def list_view(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    async with db.read() as session:
        namespaces = await list_namespaces(session)
    return api_response(
        "namespaces", {ns.prefix: ns.to_api() for ns in namespaces}, serial=db.serial
    )


async def get_view(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as session:
        namespace = await require_namespace(session, request.match_info.get("prefix", ""))
    return api_response("namespace", namespace.to_api())


async def reserve_view(request: web.Request) -> web.Response:
    prefix = request.match_info.get("prefix", "")
    data = await read_json_object(request)
    actor = await _require_root(request)
    parse_prefix(prefix)  # a malformed prefix is refused before the write opens
    db = request.app[DATABASE]
    async with db.write() as session:
        reservation = await reserve_namespace(session, prefix, data, actor)
    result = {**reservation.namespace.to_api(), "existing_projects": reservation.existing}
    status = 201 if reservation.created else 200
    return api_response("namespace", result, status=status, serial=db.serial)


async def release_view(request: web.Request) -> web.Response:
    prefix = request.match_info.get("prefix", "")
    actor = await _require_root(request)
    parse_prefix(prefix)
    db = request.app[DATABASE]
    async with db.write() as session:
        namespace = await release_namespace(session, prefix, actor)
    return api_response("message", f"namespace {namespace.prefix} released", serial=db.serial)
