"""HTTP handlers for an index's hooks (`/{user}/{index}/+hooks/…`): owner or root,
a token needs the admin scope. Secrets are masked in every answer."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.auth import require_login
from lockgate.accounts.services import require_self_or_root
from lockgate.changelog.codec import Actor
from lockgate.db.session import DATABASE
from lockgate.hooks.sender import HOOKS
from lockgate.hooks.services import (
    delete_hook,
    hook_deliveries,
    list_hooks,
    require_hook,
    resend_delivery,
    save_hook,
)
from lockgate.http.requests import api_response, read_json_object


async def _manager(request: web.Request) -> Actor:
    principal = await require_login(request)
    principal.require("admin")
    require_self_or_root(principal.user, request.match_info["user"])
    return principal.actor


def _where(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["user"], info["index"], info.get("hook", "")


async def put_hook_view(request: web.Request) -> web.Response:
    user, name, hook = _where(request)
    data = await read_json_object(request)
    actor = await _manager(request)
    db = request.app[DATABASE]
    saved, created = await save_hook(db, request.app[HOOKS].policy, user, name, hook, data, actor)
    status = 201 if created else 200
    return api_response("hook", saved.to_api(), status=status, serial=db.serial)


async def get_hook_view(request: web.Request) -> web.Response:
    user, name, hook = _where(request)
    await _manager(request)
    async with request.app[DATABASE].read() as session:
        found = await require_hook(session, user, name, hook)
    return api_response("hook", found.to_api())


async def list_hooks_view(request: web.Request) -> web.Response:
    user, name, _ = _where(request)
    await _manager(request)
    async with request.app[DATABASE].read() as session:
        hooks = await list_hooks(session, user, name)
    return api_response("hooks", [hook.to_api() for hook in hooks])


async def delete_hook_view(request: web.Request) -> web.Response:
    user, name, hook = _where(request)
    actor = await _manager(request)
    db = request.app[DATABASE]
    async with db.write() as session:
        await delete_hook(session, user, name, hook, actor)
    return api_response("message", f"hook {hook} of {user}/{name} removed", serial=db.serial)


async def deliveries_view(request: web.Request) -> web.Response:
    user, name, hook = _where(request)
    await _manager(request)
    async with request.app[DATABASE].read() as session:
        found = await hook_deliveries(session, user, name, hook)
    return api_response("deliveries", [delivery.to_api() for delivery in found])


async def resend_view(request: web.Request) -> web.Response:
    user, name, hook = _where(request)
    delivery = request.match_info["delivery"]
    await _manager(request)
    async with request.app[DATABASE].write() as session:
        await resend_delivery(session, user, name, hook, delivery)
    request.app[HOOKS].wake()
    return api_response("message", f"delivery {delivery} will be sent again", status=202)
