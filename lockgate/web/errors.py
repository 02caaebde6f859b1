"""Error pages for browsers: a 400, 403 or 404 (any 4xx or 5xx) that a browser asked for
is shown in the site's layout, saying what went wrong; installers and scripts keep the
JSON or plain-text answer (lockgate/http/middleware.py asks here first)."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web

from lockgate.web.negotiation import wants_page
from lockgate.web.templates import render_page


async def error_page(
    request: web.Request, status: int, message: str, headers: dict[str, str]
) -> web.StreamResponse | None:
    if request.method not in ("GET", "HEAD") or not wants_page(request):
        return None
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    response = await render_page(
        request, "error.html", status=status, title=phrase, code=status, message=message
    )
    response.headers.update(headers)
    return response
