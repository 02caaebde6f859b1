"""What every management form shares: who is signed in, the CSRF check, reading a form,
POST-redirect-GET, and the page a refused request gets.

A form page (GET) needs a browser session (its CSRF token is derived from the session
id); without one the browser is sent to `/+login?next=…`. A form POST is accepted only
from one of our own pages (Origin, else Referer), with the session cookie and the
session's CSRF token in the `csrf_token` field; anything else is a 403 page saying
why, and nothing changes (docs/reliability.md WM-3, WM-4).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDict

from lockgate.accounts.auth import Principal, page_principal
from lockgate.accounts.services import ROOT_USER
from lockgate.accounts.sessions import (
    CSRF_FIELD,
    SESSIONS,
    BrowserSession,
    browser_session,
    same_origin_problem,
    script_request_problem,
)
from lockgate.errors import Forbidden, LockgateError
from lockgate.web.templates import CONTEXT_PROVIDERS, render_page

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FORM_BYTES = 256 * 1024
NOT_SIGNED_IN = "you are not signed in (or your session ended): sign in and send the form again"


class FormRefused(Forbidden):
    """A form POST that did not come from our own page with this session's token."""


async def session_context(request: web.Request) -> dict[str, Any]:
    """What every page shows: the signed-in user and, with a session, the CSRF token
    of the logout button (and of any form on the page)."""
    principal = await page_principal(request)
    found = await browser_session(request)
    return {
        "signed_in_user": principal.user if principal is not None else None,
        "csrf_token": request.app[SESSIONS].csrf_token(found.session_id) if found else "",
    }


CONTEXT_PROVIDERS.append(session_context)


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to go on to after a form: never another site (`//host`, `https:`)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 32 for c in value):
        return default
    return value


def login_url(request: web.Request) -> str:
    return "/+login?next=" + quote(request.path_qs, safe="/")


def see_other(location: str) -> web.Response:
    """POST-redirect-GET: the browser shows the result page, a reload sends nothing again."""
    return web.Response(status=303, headers={"Location": location})


async def page_session(request: web.Request) -> BrowserSession:
    """A form page's session; without one the browser goes to the login page first."""
    problem = script_request_problem(request)
    if problem is not None:
        raise Forbidden(f"refused: {problem}")
    found = await browser_session(request)
    if found is None:
        raise web.HTTPSeeOther(login_url(request))
    return found


async def read_form(request: web.Request) -> MultiDict[str]:
    if request.content_type not in FORM_TYPES:
        raise LockgateError(
            f"send the form as {FORM_TYPES[0]} (not {request.content_type or 'nothing'})", 415
        )
    if request.content_length is None:
        # Browsers send forms with a length; an endless chunked body is not a form.
        raise LockgateError("send the form with a Content-Length", 411)
    if request.content_length > MAX_FORM_BYTES:
        raise LockgateError(f"a form may be at most {MAX_FORM_BYTES // 1024} KiB", 413)
    form = await request.post()
    # Text fields only: no management form takes a file.
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


async def form_session(
    request: web.Request,
) -> tuple[Principal, BrowserSession, MultiDict[str]]:
    """Check a form POST (origin, session, CSRF token) and read it: the signed-in user,
    the session, the form's fields. Nothing is read from the form before the origin."""
    problem = same_origin_problem(request)
    if problem is not None:
        raise FormRefused(f"refused: {problem}; nothing was changed")
    found = await browser_session(request)
    if found is None:
        raise FormRefused(f"refused: {NOT_SIGNED_IN}; nothing was changed")
    form = await read_form(request)
    expected = request.app[SESSIONS].csrf_token(found.session_id)
    sent = form.get(CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent, expected):
        raise FormRefused(
            "refused: the form's security token is missing or not this session's "
            "(reload the page and send the form again); nothing was changed"
        )
    return Principal(found.user), found, form


def require_manager(principal: Principal, owner: str) -> None:
    """Forms that manage a user's things: that user, or root."""
    if principal.user != owner and principal.user != ROOT_USER:
        raise Forbidden(f"{principal.user!r} may not manage what belongs to {owner!r}")


async def refusal_page(request: web.Request, error: LockgateError) -> web.Response:
    response = await render_page(
        request,
        "manage_error.html",
        status=error.status,
        message=error.message,
        login_link=login_url(request) if error.status in (401, 403) else None,
    )
    response.headers.update(error.headers)
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def form_view(handler: Handler) -> Handler:
    """A management page or form handler: a domain error becomes a page saying what
    went wrong (a person reads it, not a script)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except LockgateError as exc:
            return await refusal_page(request, exc)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def words(value: str) -> list[str]:
    """A list typed into a text field: separated by commas, spaces or new lines."""
    return [part for part in value.replace(",", " ").split() if part]


def checked(form: Any, name: str) -> bool:
    return form.get(name) in ("on", "true", "1", "yes")
