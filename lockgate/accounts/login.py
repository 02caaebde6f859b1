"""`/+login` and `/+logout` for browsers: a form with `username`, `password` and a CSRF
token; a signed session cookie (lockgate/accounts/sessions.py) on success.

The password is checked as for HTTP Basic (`CredentialCache.check`: scrypt in a thread,
outside any transaction, failures paused per client and name). Logging in writes
nothing (except, once, lockgate's own hash in place of one imported from devpi);
logging out records the session as ended, so the cookie is dead everywhere.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from lockgate.accounts.auth import WRONG_PASSWORD, rehash_if_imported
from lockgate.accounts.credentials import CREDENTIALS
from lockgate.accounts.forms import (
    FORM_TYPES,
    form_session,
    read_form,
    safe_next,
    see_other,
)
from lockgate.accounts.services import password_hash_of
from lockgate.accounts.sessions import (
    LOGIN_COOKIE,
    LOGIN_FORM_TTL,
    SESSION_COOKIE,
    SESSION_TTL,
    SESSIONS,
    browser_session,
    end_session,
    same_origin_problem,
    set_cookie,
)
from lockgate.db.session import DATABASE
from lockgate.errors import LockgateError, TooManyRequests
from lockgate.web.templates import render_page

MAX_FIELD = 1024


def _nonce(request: web.Request) -> tuple[str, bool]:
    """The login form's CSRF nonce (from its short-lived cookie, or a new one) and
    whether it is new (then the cookie must be set)."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if len(nonce) == 32 and all(c in "0123456789abcdef" for c in nonce):
        return nonce, False
    return secrets.token_hex(16), True


async def _login_page(
    request: web.Request,
    *,
    status: int = 200,
    message: str = "",
    username: str = "",
    next_path: str = "/",
    fresh: bool = False,
    headers: dict[str, str] | None = None,
) -> web.Response:
    nonce, new = _nonce(request)
    if fresh:
        nonce, new = secrets.token_hex(16), True
    response = await render_page(
        request,
        "login.html",
        status=status,
        message=message,
        username=username,
        next_path=next_path,
        login_token=request.app[SESSIONS].login_token(nonce),
    )
    response.headers.update(headers or {})
    # The form's page holds a token: never cached (a shared cache must not keep it).
    response.headers["Cache-Control"] = "no-store"
    if new:
        set_cookie(request, response, LOGIN_COOKIE, nonce, LOGIN_FORM_TTL, path="/+login")
    return response


async def login_page(request: web.Request) -> web.Response:
    """`GET /+login`: the form (a signed-in browser goes straight on to `next`)."""
    next_path = safe_next(request.query.get("next"))
    if await browser_session(request) is not None:
        return see_other(next_path)
    return await _login_page(request, next_path=next_path)


async def login_post(request: web.Request) -> web.StreamResponse:
    """`POST /+login` from a browser: the login form. (devpi-client posts JSON to the
    same path; the route table sends that to `lockgate.devpi.views.login_view` before
    this handler's error pages wrap it.)"""
    if request.content_type in FORM_TYPES:
        return await login_form_post(request)
    raise LockgateError(
        f"send the login form as {FORM_TYPES[0]}, or JSON as devpi-client does", 415
    )


async def login_form_post(request: web.Request) -> web.Response:
    problem = same_origin_problem(request)
    form = await read_form(request)
    username = form.get("username", "").strip()[:MAX_FIELD]
    password = form.get("password", "")[:MAX_FIELD]
    next_path = safe_next(form.get("next"))
    if problem is not None:
        return await _login_page(
            request, status=403, message=f"Refused: {problem}.", next_path=next_path, fresh=True
        )
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get("csrf_token", "")
    if (
        not nonce
        or not sent
        or not hmac.compare_digest(sent, request.app[SESSIONS].login_token(nonce))
    ):
        return await _login_page(
            request,
            status=403,
            message="This login form expired or was not sent from this site: "
            "please enter your password again.",
            username=username,
            next_path=next_path,
            fresh=True,
        )
    if not username or not password:
        return await _login_page(
            request,
            status=400,
            message="Enter your user name and password.",
            username=username,
            next_path=next_path,
        )
    async with request.app[DATABASE].read() as session:
        stored = await password_hash_of(session, username)
    try:
        ok = await request.app[CREDENTIALS].check(username, password, stored, request.remote)
    except TooManyRequests as exc:
        return await _login_page(
            request,
            status=429,
            message=exc.message[:1].upper() + exc.message[1:] + ".",
            username=username,
            next_path=next_path,
            headers=exc.headers,
        )
    if not ok or stored is None:
        return await _login_page(
            request,
            status=401,
            message=WRONG_PASSWORD[:1].upper() + WRONG_PASSWORD[1:] + ".",
            username=username,
            next_path=next_path,
        )
    # A password hash brought from devpi becomes lockgate's own now (the one write a
    # login may cause), so the session is bound to the hash that stays.
    stored = await rehash_if_imported(request, username, password, stored)
    cookie, _ = request.app[SESSIONS].issue(username, stored)
    response = see_other(next_path)
    set_cookie(request, response, SESSION_COOKIE, cookie, SESSION_TTL)
    response.del_cookie(LOGIN_COOKIE, path="/+login")
    return response


async def logout_post(request: web.Request) -> web.Response:
    """`POST /+logout` (a form with the session's CSRF token): the session ends here and
    everywhere, and its cookie is cleared."""
    if same_origin_problem(request) is None and await browser_session(request) is None:
        # Already ended (expired, logged out in another tab): just clear the cookie.
        response = see_other("/")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response
    _, found, _ = await form_session(request)
    async with request.app[DATABASE].write() as session:
        await end_session(session, found)
    response = see_other("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response
