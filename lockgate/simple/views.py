"""Handlers for `/{user}/{index}/+simple/` and `/{user}/{index}/+simple/{project}/`."""

from __future__ import annotations

import asyncio

from aiohttp import web
from packaging.utils import canonicalize_name

from lockgate.catalog.lookup import confirm_mirrors, lookup_project
from lockgate.catalog.services import project_names
from lockgate.db.session import DATABASE
from lockgate.errors import NotAcceptable
from lockgate.http.files import if_none_match
from lockgate.http.pagecache import PAGES, CachedPage
from lockgate.http.requests import project_in_path
from lockgate.indexes.access import index_and_chain, require_read
from lockgate.mirror.services import MIRROR
from lockgate.simple.negotiation import JSON_V1, SERVED, TEXT_HTML, negotiate
from lockgate.simple.render import (
    project_list,
    project_page,
    render_json,
    render_list_html,
    render_project_html,
)
from lockgate.storage.blobs import BLOBS

# Pages revalidate on every use (cheap: strong ETag, 304) so uploads show at once.
SIMPLE_CACHE_CONTROL = "max-age=0, must-revalidate, public"
STALE_HEADER = "X-Lockgate-Stale"


def _content_type(request: web.Request) -> str:
    chosen = negotiate(request.headers.get("Accept"), request.query.get("format"))
    if chosen is None:
        raise NotAcceptable(
            "none of the simple API's content types is acceptable; ask for one of: "
            + ", ".join(SERVED)
        )
    return chosen


def _respond(
    request: web.Request, page: CachedPage, serial: int, stale: list[str] | None = None
) -> web.Response:
    headers = {
        "ETag": page.etag,
        "Cache-Control": SIMPLE_CACHE_CONTROL,
        "Vary": "Accept",
        "X-PyPI-Last-Serial": str(serial),
    }
    if stale:
        # The cached page could not be confirmed with the upstream just now.
        headers[STALE_HEADER] = "upstream unreachable"
        headers["Warning"] = '110 lockgate "Response is Stale"'
    if if_none_match(request, page.etag):
        return web.Response(status=304, headers=headers)
    content_type = page.content_type
    if content_type == TEXT_HTML:
        content_type = "text/html; charset=utf-8"
    headers["Content-Type"] = content_type
    return web.Response(body=page.body, headers=headers)


async def simple_list(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    content_type = _content_type(request)
    db, pages = request.app[DATABASE], request.app[PAGES]
    index, chain = await index_and_chain(request, user, name)
    stale = []
    if index.is_mirror and not index.mirror.mirror_no_project_list:
        sha256, unavailable = await request.app[MIRROR].project_lists.current(index)
        if sha256 is not None:
            return await _upstream_list(request, index.path, sha256, content_type)
        if unavailable:
            stale.append("upstream project list unavailable; listing cached projects")
    serial = db.serial
    key = ("list", user, name, content_type)
    cached = pages.get(key, serial)
    if cached is None:
        async with db.read() as session:
            names = await project_names(session, chain)
        page = project_list(names)
        body = render_json(page) if content_type == JSON_V1 else render_list_html(page)
        cached = pages.put(key, serial, body, content_type)
    return _respond(request, cached, serial, stale)


async def _upstream_list(
    request: web.Request, index_path: str, sha256: str, content_type: str
) -> web.Response:
    """The mirror's full upstream list, rendered once per list version (not per serial)."""
    pages, db = request.app[PAGES], request.app[DATABASE]
    key = ("upstream-list", index_path, sha256, content_type)
    cached = pages.get(key, 0)
    if cached is None:
        path = request.app[BLOBS].path(sha256)

        def render() -> bytes:
            names = path.read_text("utf-8").split("\n")
            entries = [(str(canonicalize_name(n)), n) for n in names if n]
            page = project_list(entries)
            return render_json(page) if content_type == JSON_V1 else render_list_html(page)

        body = await asyncio.to_thread(render)
        cached = pages.put(key, 0, body, content_type)
    return _respond(request, cached, db.serial)


async def simple_project(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    project = project_in_path(request)
    normalized = canonicalize_name(project)
    if normalized != project or not request.path.endswith("/"):
        location = f"/{user}/{name}/+simple/{normalized}/"
        if request.query_string:
            location += "?" + request.query_string
        raise web.HTTPMovedPermanently(location)
    content_type = _content_type(request)
    db, pages = request.app[DATABASE], request.app[PAGES]
    key = ("project", user, name, normalized, content_type)
    serial = db.serial
    cached = pages.get(key, serial)
    stale: list[str] = []
    if cached is not None:
        # The fast path: no database work unless a mirror page needs confirming.
        stale = await confirm_mirrors(
            request.app[MIRROR], list(cached.depends_on), normalized, via=f"{user}/{name}"
        )
        if db.serial != serial:
            cached = None  # the confirmation changed something: build afresh
    if cached is None:
        serial = db.serial
        found = await lookup_project(
            db,
            request.app[MIRROR],
            user,
            name,
            normalized,
            await index_and_chain(request, user, name),
        )
        page = project_page(found.require(normalized), "../../../../")
        body = render_json(page) if content_type == JSON_V1 else render_project_html(page)
        cached = pages.put(key, serial, body, content_type, tuple(found.mirrors))
        stale = found.stale
    return _respond(request, cached, serial, stale)


async def simple_list_redirect(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    raise web.HTTPMovedPermanently(f"/{user}/{name}/+simple/")


async def devpi_project_redirect(request: web.Request) -> web.Response:
    """`/{user}/{index}/{project}/`: devpi guides give installers the index URL
    itself (no `+simple/`), so pip and uv ask here; send them to the simple page."""
    user, name = request.match_info["user"], request.match_info["index"]
    project = project_in_path(request)
    location = f"/{user}/{name}/+simple/{canonicalize_name(project)}/"
    if request.query_string:
        location += "?" + request.query_string
    raise web.HTTPFound(location)
