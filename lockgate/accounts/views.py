"""HTTP handlers for users (devpi's JSON shapes) and the server root listing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.accounts.auth import LOGIN_REQUIRED, authenticate, require_login
from lockgate.accounts.services import (
    ROOT_USER,
    UserSummary,
    create_user,
    delete_user,
    list_users,
    modify_user,
    prepare_new_user,
    prepare_user_change,
    require_self_or_root,
    require_user,
)
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.errors import Forbidden, Unauthorized
from lockgate.http.requests import api_response, read_json_object
from lockgate.indexes.services import IndexView, user_indexes


def user_config(user: UserSummary, indexes: list[IndexView]) -> dict[str, Any]:
    return {
        "username": user.name,
        "email": user.email,
        "indexes": {index.name: index.public_config() for index in indexes},
    }


async def root_listing(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    async with db.read() as session:
        result = {
            user.name: user_config(user, await user_indexes(session, user.name))
            for user in await list_users(session)
        }
    return api_response("list:userconfig", result, serial=db.serial)


async def get_user_view(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    async with request.app[DATABASE].read() as session:
        user = await require_user(session, name)
        indexes = await user_indexes(session, name)
    return api_response("userconfig", user_config(user, indexes))


async def put_user(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    actor = await authenticate(request)
    if actor != ROOT_USER and not request.app[SETTINGS].allow_self_registration:
        if actor is None:
            raise Unauthorized(LOGIN_REQUIRED)
        raise Forbidden("only root may create users on this server")
    change = await prepare_new_user(name, data)
    async with db.write() as session:
        user = await create_user(session, name, change)
    return api_response("userconfig", user_config(user, []), status=201, serial=db.serial)


async def patch_user(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    require_self_or_root(await require_login(request), name)
    change = await prepare_user_change(data)
    async with db.write() as session:
        user = await modify_user(session, name, change)
        indexes = await user_indexes(session, name)
    return api_response("userconfig", user_config(user, indexes), serial=db.serial)


async def delete_user_view(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    db = request.app[DATABASE]
    require_self_or_root(await require_login(request), name)
    async with db.write() as session:
        await delete_user(session, name)
    return api_response("message", f"user {name} deleted", serial=db.serial)
