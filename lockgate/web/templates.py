"""The Jinja2 environment every page renders with, and `render_page`.

Autoescaping is always on: anything a package author or user wrote reaches a page only
escaped, or as HTML that readme_renderer has already sanitized and marked safe. Every page
carries a Content-Security-Policy that allows no script and nothing from another origin —
the pages work without JavaScript, and the network they run in is closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
from aiohttp import web

from lockgate import __version__
from lockgate.web.static import static_url

# What a page may load: its own stylesheet and images, nothing else; forms post back here.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("lockgate", "web/templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    enable_async=False,
)
ENVIRONMENT.globals.update(static_url=static_url, lockgate_version=__version__)

# Values every page sees (the signed-in user, a CSRF token…), added by whoever owns them.
ContextProvider = Callable[[web.Request], Awaitable[dict[str, Any]]]
CONTEXT_PROVIDERS: list[ContextProvider] = []


async def page_context(request: web.Request) -> dict[str, Any]:
    context: dict[str, Any] = {"request_path": request.path, "query": request.query}
    for provider in CONTEXT_PROVIDERS:
        context.update(await provider(request))
    return context


async def render_page(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """Render `template` with the shared page context and the page security headers."""
    values = await page_context(request)
    values.update(context)
    body = ENVIRONMENT.get_template(template).render(**values)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=PAGE_HEADERS,
    )
