"""HTTP handlers for users (devpi's JSON shapes) and the server root listing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.accounts.auth import LOGIN_REQUIRED, Principal, authenticate, require_login
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
from lockgate.accounts.tokens import (
    TokenInfo,
    TokenSpec,
    create_token,
    list_tokens,
    new_secret,
    parse_token_request,
    revoke_token,
)
from lockgate.changelog.codec import Actor
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE, Database
from lockgate.errors import BadRequest, Forbidden, Unauthorized
from lockgate.http.requests import api_response, read_json_object
from lockgate.indexes.access import readable_indexes
from lockgate.indexes.services import IndexView, get_index, user_indexes
from lockgate.namespaces.services import refuse_deleting_owner


def user_config(user: UserSummary, indexes: list[IndexView]) -> dict[str, Any]:
    return {
        "username": user.name,
        "email": user.email,
        "indexes": {index.name: index.public_config() for index in indexes},
    }


async def _require_admin_of(request: web.Request, user: str) -> Principal:
    """The caller managing `user` (itself, or root; a token needs the admin scope)."""
    principal = await require_login(request)
    principal.require("admin")
    require_self_or_root(principal.user, user)
    return principal


async def root_listing(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    async with db.read() as session:
        listing = [
            (user, await user_indexes(session, user.name)) for user in await list_users(session)
        ]
    everything = [index for _, indexes in listing for index in indexes]
    shown = {index.path for index in await readable_indexes(request, everything)}
    result = {
        user.name: user_config(user, [index for index in indexes if index.path in shown])
        for user, indexes in listing
    }
    return api_response("list:userconfig", result, serial=db.serial)


async def get_user_view(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    async with request.app[DATABASE].read() as session:
        user = await require_user(session, name)
        indexes = await user_indexes(session, name)
    return api_response("userconfig", user_config(user, await readable_indexes(request, indexes)))


async def put_user(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    principal = await authenticate(request)
    if principal is not None:
        principal.require("admin")
    actor = principal.user if principal is not None else None
    if actor != ROOT_USER and not request.app[SETTINGS].allow_self_registration:
        if actor is None:
            raise Unauthorized(LOGIN_REQUIRED)
        raise Forbidden("only root may create users on this server")
    change = await prepare_new_user(name, data)
    # Self-registration is recorded as the new user's own doing.
    by = principal.actor if principal is not None else Actor(name)
    async with db.write() as session:
        user = await create_user(session, name, change, by)
    return api_response("userconfig", user_config(user, []), status=201, serial=db.serial)


async def patch_user(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    data = await read_json_object(request)
    db = request.app[DATABASE]
    principal = await _require_admin_of(request, name)
    change = await prepare_user_change(data)
    async with db.write() as session:
        user = await modify_user(session, name, change, principal.actor)
        indexes = await user_indexes(session, name)
    return api_response("userconfig", user_config(user, indexes), serial=db.serial)


async def delete_user_view(request: web.Request) -> web.Response:
    name = request.match_info["user"]
    db = request.app[DATABASE]
    principal = await _require_admin_of(request, name)
    async with db.write() as session:
        await refuse_deleting_owner(session, name)
        await delete_user(session, name, principal.actor)
    return api_response("message", f"user {name} deleted", serial=db.serial)


def _within(principal: Principal, spec: TokenSpec) -> None:
    """A token made with a token never exceeds it."""
    if principal.scopes is not None and not set(spec.scopes) <= principal.scopes:
        raise Forbidden("a token cannot create a token with scopes it does not have itself")
    if principal.indexes is not None and (
        spec.indexes is None or not set(spec.indexes) <= set(principal.indexes)
    ):
        raise Forbidden(
            f"this token is limited to {', '.join(principal.indexes)}: "
            "a token it creates must be limited to those too"
        )


async def issue_token(
    db: Database, user: str, spec: TokenSpec, actor: Actor
) -> tuple[TokenInfo, str]:
    """A new token and its secret, as `POST /{user}/+tokens` and the token form make it:
    the indexes it is limited to must exist; the secret is returned once, never stored."""
    async with db.read() as session:
        for path in spec.indexes or ():
            owner, name = path.split("/")
            if await get_index(session, owner, name) is None:
                raise BadRequest(f"index {path} does not exist")
    secret = new_secret()
    async with db.write() as session:
        token = await create_token(session, user, spec, secret, actor)
    return token, secret


async def create_token_view(request: web.Request) -> web.Response:
    """`POST /{user}/+tokens`: a new token; its secret is in this answer only."""
    user = request.match_info["user"]
    data = await read_json_object(request)
    principal = await _require_admin_of(request, user)
    spec = parse_token_request(data)
    _within(principal, spec)
    db = request.app[DATABASE]
    token, secret = await issue_token(db, user, spec, principal.actor)
    return api_response("token", {**token.to_api(), "token": secret}, status=201, serial=db.serial)


async def list_tokens_view(request: web.Request) -> web.Response:
    user = request.match_info["user"]
    await _require_admin_of(request, user)
    async with request.app[DATABASE].read() as session:
        tokens = await list_tokens(session, user)
    return api_response("tokens", [token.to_api() for token in tokens])


async def revoke_token_view(request: web.Request) -> web.Response:
    user, token_id = request.match_info["user"], request.match_info["token"]
    principal = await _require_admin_of(request, user)
    db = request.app[DATABASE]
    async with db.write() as session:
        await revoke_token(session, user, token_id, principal.actor)
    return api_response("message", f"token {token_id} of {user} revoked", serial=db.serial)
