"""Who is asking: a browser (gets a page), an installer (gets the simple API) or a script
(gets JSON). The same URL serves all three, as devpi's do, so bookmarks carry over.

Browsers send `text/html` (often with `application/xhtml+xml`) at full preference and
never the PEP 691 types; pip and uv send the PEP 691 types first and `text/html` at a low
q; devpi-client and scripts send `application/json`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from lockgate.http.accept import parse_accept

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PYPI_SIMPLE_PREFIX = "application/vnd.pypi.simple."


def wants_page(request: web.Request) -> bool:
    """True for a browser: `text/html` or XHTML at q ≥ 0.9, above any JSON, and no PEP 691
    type (an installer that also accepts text/html is not a browser)."""
    accept = request.headers.get("Accept")
    if not accept:
        return False
    html_q = json_q = 0.0
    for media, q in parse_accept(accept):
        if media.startswith(PYPI_SIMPLE_PREFIX):
            return False
        if media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
        elif media == "application/json":
            json_q = max(json_q, q)
    return html_q >= 0.9 and html_q > json_q


def page_or(page: Handler, other: Handler) -> Handler:
    """One handler for a URL that browsers and clients share: `page` for a browser,
    `other` (devpi JSON, an installer redirect) for everyone else."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if wants_page(request):
            return await page(request)
        return await other(request)

    dispatch.__name__ = f"page_or_{getattr(other, '__name__', 'handler')}"
    return dispatch
