"""The Jinja2 environment every page renders with, and `render_page`.

Autoescaping is always on: anything a package author or user wrote reaches a page only
escaped, or as HTML that readme_renderer has already sanitized and marked safe. Every page
carries a Content-Security-Policy that allows no script and nothing from another origin —
the pages work without JavaScript, and the network they run in is closed.

Jinja2 is imported, and the environment built, at the first page rendered: installers,
uploaders and devpi-client never get a page, so a worker serving only them never pays
for Jinja2 and its compiled templates (~2 MiB per worker; tests/unit/test_startup.py).
That first import (~0.1-0.2 s of CPU) runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lockgate import __version__
from lockgate.web.static import static_url

if TYPE_CHECKING:
    import jinja2

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


@functools.cache
def environment() -> jinja2.Environment:
    """The one environment (and its template cache), built on first use."""
    import jinja2  # here, not at the top: only pages need it (module docstring)

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lockgate", "web/templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        enable_async=False,
    )
    env.globals.update(static_url=static_url, lockgate_version=__version__)
    return env


async def _loaded_environment() -> jinja2.Environment:
    """`environment()`, its first call (the Jinja2 import) made in a thread."""
    if environment.cache_info().currsize:
        return environment()
    return await asyncio.to_thread(environment)


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
    body = (await _loaded_environment()).get_template(template).render(**values)
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=PAGE_HEADERS,
    )


async def render_fragment(template: str, **context: Any) -> str:
    """A template rendered without the per-request context: the part of a page that is
    the same for every caller, which pages cache per serial and wrap with `page.html`."""
    return (await _loaded_environment()).get_template(template).render(**context)
