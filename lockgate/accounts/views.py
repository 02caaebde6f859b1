"""HTTP handlers for users (devpi's JSON shapes) and the server root listing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.accounts.models import User
from lockgate.accounts.services import (
    ROOT_USER,
    create_user,
    delete_user,
    modify_user,
    require_user,
    user_indexes,
)
from lockgate.errors import Forbidden
from lockgate.indexes.services import IndexView
from lockgate.server.auth import authenticated_user, require_login, require_self_or_root
from lockgate.server.http import api_response, read_json_object
from lockgate.server.keys import DATABASE, SETTINGS


def user_config(user: User, indexes: list[IndexView]) -> dict[str, Any]:
    return {
        "username": user.name,
        "email": user.email,
        "indexes": {index.name: index.public_config() for index in indexes},
    }


async def root_listing(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    async with db.read() as session:
        users = (await session.execute(User.__table__.select().order_by(User.name))).all()
        result = {}
        for row in users:
            user = await require_user(session, row.name)
            indexes = [IndexView.from_row(i) for i in await user_indexes(session, user.name)]
            result[user.name] = user_config(user, indexes)
    return api_response("list:userconfig", result, serial=db.serial)


async def get_user_view(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    async with request.app[DATABASE].read() as session:
        user = await require_user(session, name)
        indexes = [IndexView.from_row(i) for i in await user_indexes(session, name)]
    return api_response("userconfig", user_config(user, indexes))


async def put_user(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await authenticated_user(request, session)
        if actor != ROOT_USER and not request.app[SETTINGS].allow_self_registration:
            if actor is None:
                await require_login(request, session)
            raise Forbidden("only root may create users on this server")
        user = await create_user(session, name, data)
    return api_response("userconfig", user_config(user, []), status=201, serial=db.serial)


async def patch_user(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await require_login(request, session)
        require_self_or_root(actor, name)
        user = await modify_user(session, name, data)
        indexes = [IndexView.from_row(i) for i in await user_indexes(session, name)]
    return api_response("userconfig", user_config(user, indexes), serial=db.serial)


async def delete_user_view(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    db = request.app[DATABASE]
    async with db.write() as session:
        actor = await require_login(request, session)
        require_self_or_root(actor, name)
        await delete_user(session, name)
    return api_response("message", f"user {name} deleted", serial=db.serial)
