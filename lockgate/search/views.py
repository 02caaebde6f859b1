"""`/+search` for scripts: JSON (`Accept: application/json`, `*/*` or none)."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.auth import authenticate
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.search.services import PER_PAGE, parse_page, search
from lockgate.storage.blobs import BLOBS


def base_url(request: web.Request) -> str:
    return request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"


async def search_json(request: web.Request) -> web.Response:
    """`GET /+search?q=…[&index=user/name][&page=N]`: one page of ranked results."""
    principal = await authenticate(request)
    page = parse_page(request.query.get("page"))
    results = await search(
        request.app[DATABASE],
        request.app[BLOBS],
        principal,
        request.query.get("q", ""),
        scope=request.query.get("index") or None,
        page=page,
    )
    base = base_url(request)
    return web.json_response(
        {
            "query": results.query.text,
            "index": results.scope,
            "page": results.page,
            "per_page": PER_PAGE,
            "pages": results.pages,
            "total": results.total_shown,
            # false: more than `total` match (counting stops at 1,000)
            "total_exact": results.total_exact,
            "results": [hit.to_json(base) for hit in results.hits],
        }
    )
