"""Who may read an index's content (`acl_read`), checked before anything of it is
looked up, so a hidden project and a missing one answer the same.

Readers (and an index with its chain, `index_and_chain`) are remembered per
configuration serial (`Database.config_serial`: a commit that only caches upstream
data keeps them), so a cached page of a public index is still
served without touching the database; a private index costs one authentication
(a token is a hash lookup, a password a remembered HMAC).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from lockgate.accounts.auth import LOGIN_REQUIRED, Principal, authenticate, page_principal
from lockgate.accounts.services import ROOT_USER
from lockgate.db.session import DATABASE
from lockgate.errors import Forbidden, NotFound, Unauthorized
from lockgate.http.pagecache import FILES
from lockgate.http.requests import is_devpi_client
from lockgate.indexes.config import Readers
from lockgate.indexes.services import IndexView, get_index, require_index, resolve_chain


def may_read(principal: Principal | None, index_path: str, readers: Readers) -> bool:
    if readers.anonymous:
        return True
    if principal is None or not readers.admits(principal.user, ROOT_USER):
        return False
    return principal.allows("read", index_path)


async def readable_indexes(request: web.Request, indexes: list[IndexView]) -> list[IndexView]:
    """The indexes the caller may see listed (an unreadable index is not listed)."""
    if all(index.readers.anonymous for index in indexes):
        return indexes
    principal = await authenticate(request)
    return [index for index in indexes if may_read(principal, index.path, index.readers)]


async def readers_of(request: web.Request, user: str, name: str) -> Readers:
    """The index's readers; 404 when there is no such index."""
    db, memo = request.app[DATABASE], request.app[FILES]
    key = ("readers", user, name)
    serial = db.config_serial
    readers: Readers | None = memo.get(key, serial)
    if readers is None:
        async with db.read() as session:
            index = await get_index(session, user, name)
        if index is None:
            raise NotFound(f"index {user}/{name} does not exist")
        readers = index.readers
        memo.put(key, serial, readers)
    return readers


async def index_and_chain(
    request: web.Request, user: str, name: str
) -> tuple[IndexView, list[IndexView]]:
    """The index and its inheritance chain (404 when there is no such index),
    remembered until the configuration changes, so most requests read neither."""
    db, memo = request.app[DATABASE], request.app[FILES]
    key = ("chain", user, name)
    serial = db.config_serial
    found: tuple[IndexView, list[IndexView]] | None = memo.get(key, serial)
    if found is None:
        async with db.read() as session:
            index = await require_index(session, user, name)
            found = (index, await resolve_chain(session, index))
        memo.put(key, serial, found)
    return found


async def require_read(request: web.Request, user: str, name: str) -> Principal | None:
    """401 without credentials, 403 when the caller may not read `user/name`."""
    readers = await readers_of(request, user, name)
    if readers.anonymous:
        return None
    principal = await authenticate(request)
    path = f"{user}/{name}"
    if principal is None:
        if is_devpi_client(request):
            # devpi-client handles only a 403 here (devpi-server answers it so):
            # "you might have to login first"; a 401 would end `devpi use`.
            raise Forbidden(f"index {path} is private: log in first (devpi login USER)")
        raise Unauthorized(f"index {path} is private: {LOGIN_REQUIRED}")
    if not readers.admits(principal.user, ROOT_USER):
        raise Forbidden(f"user {principal.user!r} may not read index {path}")
    principal.require("read", path)
    return principal


# --- browser pages ------------------------------------------------------------------


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    """Where an anonymous browser goes for a private index's page: the login page,
    coming back here afterwards."""
    return web.HTTPSeeOther(f"/+login?next={quote(request.path_qs, safe='/')}")


async def require_page_read(request: web.Request, user: str, name: str) -> Principal | None:
    """`require_read` for a browser page (docs/reliability.md WEB-4): an anonymous
    browser is sent to the login page (303), a signed-in user who may not read gets 403;
    404 when there is no such index."""
    readers = await readers_of(request, user, name)
    if readers.anonymous:
        return None
    principal = await page_principal(request)
    path = f"{user}/{name}"
    if principal is None:
        raise login_redirect(request)
    if not may_read(principal, path, readers):
        raise Forbidden(f"user {principal.user!r} may not read index {path}")
    return principal


async def page_readable_indexes(request: web.Request, indexes: list[IndexView]) -> list[IndexView]:
    """The indexes a browser page may list for its caller (`readable_indexes`, with the
    caller as pages know it)."""
    if all(index.readers.anonymous for index in indexes):
        return indexes
    principal = await page_principal(request)
    return [index for index in indexes if may_read(principal, index.path, index.readers)]
