"""`/+search` for browsers: the search form and a page of results (index, project,
latest version, a highlighted snippet), paged without JavaScript."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from lockgate.accounts.auth import page_principal
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest, NotFound
from lockgate.search.services import Results, parse_page, search
from lockgate.storage.blobs import BLOBS
from lockgate.web.templates import render_page


def _page_link(results: Results, page: int) -> str:
    params = {"q": results.query.text, "page": str(page)}
    if results.scope:
        params["index"] = results.scope
    return "/+search?" + urlencode(params)


async def search_page(request: web.Request) -> web.Response:
    raw = request.query.get("q", "")
    scope = request.query.get("index") or None
    if not raw.strip():
        return await render_page(request, "search.html", results=None, error=None, scope=scope)
    try:
        principal = await page_principal(request)
        results = await search(
            request.app[DATABASE],
            request.app[BLOBS],
            principal,
            raw,
            scope=scope,
            page=parse_page(request.query.get("page")),
        )
    except (BadRequest, NotFound) as exc:
        return await render_page(
            request,
            "search.html",
            status=exc.status,
            results=None,
            error=exc.message,
            scope=scope,
        )
    links = {
        "previous": _page_link(results, results.page - 1) if results.page > 1 else None,
        "next": _page_link(results, results.page + 1) if results.page < results.pages else None,
    }
    return await render_page(
        request, "search.html", results=results, error=None, scope=scope, links=links
    )
