"""HTTP Basic authentication and the permission checks built on it."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.services import ROOT_USER, get_user
from lockgate.errors import Forbidden, Unauthorized
from lockgate.indexes.services import IndexView
from lockgate.server.keys import CREDENTIALS

REALM = 'Basic realm="lockgate"'


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or "\x00" in decoded:
        # NUL can be stored by no database; such credentials are just wrong.
        return None
    return (user, password)


async def authenticated_user(request: web.Request, session: AsyncSession) -> str | None:
    """The user name for valid credentials, None without credentials; 401 when wrong."""
    credentials = basic_credentials(request)
    if credentials is None:
        return None
    name, password = credentials
    user = await get_user(session, name)
    if not await request.app[CREDENTIALS].check(name, password, user, request.remote):
        raise Unauthorized("invalid user name or password")
    return name


async def require_login(request: web.Request, session: AsyncSession) -> str:
    name = await authenticated_user(request, session)
    if name is None:
        raise Unauthorized("authentication required: send your lockgate user name and password")
    return name


def require_self_or_root(actor: str, owner: str) -> None:
    if actor not in (owner, ROOT_USER):
        raise Forbidden(f"user {actor!r} may not change {owner!r}")


def require_upload_permission(actor: str, index: IndexView, project: str) -> None:
    acl = index.config.get("acl_upload", [index.user])
    if actor == ROOT_USER or actor in acl or ":ANONYMOUS:" in acl:
        return
    raise Forbidden(
        f"The user '{actor}' isn't allowed to upload to project '{project}' on index {index.path}."
    )
