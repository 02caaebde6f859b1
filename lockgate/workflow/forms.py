"""A release's management page for browsers (`/{user}/{index}/{project}/{version}/+manage`):
yank (with a reason) or unyank, delete, and push to another index showing which of
that index's `push_requires` gates the release meets.

It lives in `workflow` because push is workflow's and workflow sits above `packages`
(yank and delete are packages' services). Each form calls the service the API handler
calls (`yank_release`, `delete_release`, `push_release`), so the entries, the hooks'
events and the refusals are the API's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockgate.accounts.auth import Principal
from lockgate.accounts.forms import form_session, form_view, page_session, see_other
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest, Forbidden, LockgateError, NotFound
from lockgate.indexes.access import may_read
from lockgate.packages.services import (
    ReleaseState,
    delete_release,
    release_state,
    yank_release,
)
from lockgate.packages.views import MAX_REASON_CHARS
from lockgate.web.templates import render_page
from lockgate.workflow.services import push_choices, push_release

DONE = {
    "yanked": "The release was yanked: installers skip it unless it is pinned exactly.",
    "unyanked": "The release was unyanked.",
}


def _where(request: web.Request) -> tuple[str, str, str, str]:
    info = request.match_info
    try:
        version = str(Version(info["version"]))
    except InvalidVersion:
        raise BadRequest(f"{info['version']!r} is not a valid version") from None
    return info["user"], info["index"], canonicalize_name(info["project"]), version


async def _readable_release(
    request: web.Request, principal: Principal
) -> tuple[ReleaseState, list[Any]]:
    user, name, project, version = _where(request)
    async with request.app[DATABASE].read() as session:
        state = await release_state(session, user, name, project, version)
        if not may_read(principal, state.index.path, state.index.readers):
            # As the API: a private index's content is not admitted to exist.
            raise NotFound(f"index {user}/{name} does not exist")
        choices = await push_choices(session, principal.user, state.index, project, version)
    return state, choices


async def _release_page(
    request: web.Request,
    principal: Principal,
    *,
    status: int = 200,
    message: str = "",
    done: str = "",
    reason: str = "",
    target: str = "",
) -> web.Response:
    state, choices = await _readable_release(request, principal)
    return await render_page(
        request,
        "manage_release.html",
        status=status,
        release=state,
        choices=choices,
        message=message,
        done=done,
        reason=reason,
        target=target,
        max_reason=MAX_REASON_CHARS,
    )


@form_view
async def release_page(request: web.Request) -> web.StreamResponse:
    """`GET …/{project}/{version}/+manage`."""
    found = await page_session(request)
    query = request.query
    done = DONE.get(query.get("done", ""), "")
    if query.get("done") == "pushed" and query.get("to"):
        done = f"Pushed to {query['to']}."
    return await _release_page(request, Principal(found.user), done=done)


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    principal, _, form = await form_session(request)
    user, name, project, version = _where(request)
    db = request.app[DATABASE]
    reason = form.get("reason", "").strip()
    target = form.get("target", "").strip()
    try:
        async with db.read() as session:
            state = await release_state(session, user, name, project, version)
        if not may_read(principal, state.index.path, state.index.readers):
            raise NotFound(f"index {user}/{name} does not exist")
        if action in ("yank", "unyank"):
            if len(reason) > MAX_REASON_CHARS:
                raise BadRequest(f"the reason may be at most {MAX_REASON_CHARS} characters")
            async with db.write() as session:
                await yank_release(
                    session,
                    principal.actor,
                    user,
                    name,
                    project,
                    version,
                    yanked=action == "yank",
                    reason=reason or None,
                )
            return see_other(f"{_base(request)}?done={action}ed")
        if action == "delete":
            if form.get("confirm") != "on":
                raise BadRequest("tick the box to confirm the deletion; nothing was deleted")
            async with db.write() as session:
                await delete_release(session, principal.actor, user, name, project, version)
            return see_other(f"/{user}/{name}/+manage?done=release-deleted")
        if target.count("/") != 1:
            raise BadRequest("choose the index to push to")
        async with db.write() as session:
            outcome = await push_release(
                session, principal.actor, user, name, project, version, target
            )
        return see_other(f"{_base(request)}?done=pushed&to={outcome.target}")
    except LockgateError as exc:
        if exc.status >= 500 or isinstance(exc, NotFound):
            raise
        if isinstance(exc, Forbidden) and action != "push":
            raise
        return await _release_page(
            request,
            principal,
            status=exc.status,
            message=exc.message,
            reason=reason,
            target=target,
        )


def _base(request: web.Request) -> str:
    info = request.match_info
    return f"/{info['user']}/{info['index']}/{info['project']}/{info['version']}/+manage"


@form_view
async def yank_post(request: web.Request) -> web.StreamResponse:
    return await _act(request, "yank")


@form_view
async def unyank_post(request: web.Request) -> web.StreamResponse:
    return await _act(request, "unyank")


@form_view
async def delete_post(request: web.Request) -> web.StreamResponse:
    return await _act(request, "delete")


@form_view
async def push_post(request: web.Request) -> web.StreamResponse:
    return await _act(request, "push")
