"""A user's management page for browsers (`/{user}/+manage`): their indexes with links to
edit them, their API tokens (create, revoke) and a link to a new index.

A token's secret is shown once, on the page that answers the creating POST (sent with
`Cache-Control: no-store`, so neither the browser's history nor a proxy keeps it), and
never again: only its sha256 is stored. The forms call the same code as the API
(`accounts.views.issue_token`, `tokens.revoke_token`) and so write the same entries.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lockgate.accounts.auth import Principal
from lockgate.accounts.forms import (
    checked,
    form_session,
    form_view,
    page_session,
    require_manager,
    see_other,
    words,
)
from lockgate.accounts.services import require_user
from lockgate.accounts.tokens import SCOPES, list_tokens, parse_token_request, revoke_token
from lockgate.accounts.views import issue_token
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest, LockgateError
from lockgate.indexes.services import user_indexes
from lockgate.web.templates import render_page

NO_STORE = {"Cache-Control": "no-store"}


async def _user_page(
    request: web.Request,
    user: str,
    *,
    status: int = 200,
    message: str = "",
    done: str = "",
    token_input: dict[str, Any] | None = None,
) -> web.Response:
    db = request.app[DATABASE]
    async with db.read() as session:
        await require_user(session, user)
        indexes = await user_indexes(session, user)
        tokens = await list_tokens(session, user)
    response = await render_page(
        request,
        "manage_user.html",
        status=status,
        user=user,
        indexes=indexes,
        tokens=tokens,
        scopes=SCOPES,
        message=message,
        done=done,
        token_input=token_input
        or {"name": "", "scopes": ["read", "upload"], "indexes": "", "expires": ""},
    )
    response.headers.update(NO_STORE)
    return response


@form_view
async def manage_user_page(request: web.Request) -> web.StreamResponse:
    """`GET /{user}/+manage` (the user or root)."""
    user = request.match_info["user"]
    found = await page_session(request)
    require_manager(Principal(found.user), user)
    done = {
        "revoked": "The token was revoked.",
        "deleted": "The index was deleted.",
    }.get(request.query.get("done", ""), "")
    return await _user_page(request, user, done=done)


@form_view
async def create_token_form(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/+manage/tokens`: a new token; its secret on this answer only."""
    user = request.match_info["user"]
    principal, _, form = await form_session(request)
    require_manager(principal, user)
    name, indexes, expires = (form.get(k, "") for k in ("name", "indexes", "expires"))
    scopes = [scope for scope in SCOPES if checked(form, f"scope_{scope}")]
    token_input = {"name": name, "scopes": scopes, "indexes": indexes, "expires": expires}
    data: dict[str, Any] = {
        "name": name.strip() or "token",
        "scopes": scopes,
        "expires": expires.strip() or None,
    }
    if words(indexes):
        data["indexes"] = words(indexes)
    try:
        spec = parse_token_request(data)
        token, secret = await issue_token(request.app[DATABASE], user, spec, principal.actor)
    except BadRequest as exc:
        return await _user_page(
            request, user, status=400, message=exc.message, token_input=token_input
        )
    response = await render_page(
        request, "manage_token_created.html", user=user, token=token, secret=secret
    )
    response.headers.update(NO_STORE)
    return response


@form_view
async def revoke_token_form(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/+manage/tokens/{token}/revoke`."""
    user, token_id = request.match_info["user"], request.match_info["token"]
    principal, _, _ = await form_session(request)
    require_manager(principal, user)
    try:
        async with request.app[DATABASE].write() as session:
            await revoke_token(session, user, token_id, principal.actor)
    except LockgateError as exc:
        if exc.status >= 500:
            raise
        return await _user_page(request, user, status=exc.status, message=exc.message)
    return see_other(f"/{user}/+manage?done=revoked")
