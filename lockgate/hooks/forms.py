"""Browser forms for an index's hooks: list and add (`/{user}/{index}/+manage/hooks`),
see one hook's deliveries (`…/+manage/hooks/{hook}`), send a delivery again
(`…/deliveries/{delivery}/resend`) and remove the hook (`…/delete`).

Adding calls `save_hook`, as `PUT …/+hooks/{hook}` does (validation, the egress check
of its URL before the write, the `hook.put` entry); sending again calls
`resend_delivery`, as `POST …/+hooks/{hook}/deliveries/{delivery}` does. Secrets are
never shown again: the pages show the hook as the API does, masked.
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
)
from lockgate.db.session import DATABASE
from lockgate.errors import LockgateError, NotFound
from lockgate.hooks.config import EVENTS, KIND_KEYS, KINDS
from lockgate.hooks.sender import HOOKS
from lockgate.hooks.services import (
    delete_hook,
    get_hook,
    hook_deliveries,
    list_hooks,
    require_hook,
    resend_delivery,
    save_hook,
)
from lockgate.indexes.services import require_index
from lockgate.web.templates import render_page

FIELDS = ("url", "secret", "trigger_token", "user", "api_token", "ref")
# Deliveries the page offers to send again: not delivered yet, or given up on. One
# already queued again ("resend") or delivered can still be resent through the API.
RESENDABLE = ("pending", "failed")


def _where(request: web.Request) -> tuple[str, str]:
    return request.match_info["user"], request.match_info["index"]


async def _hooks_page(
    request: web.Request,
    *,
    status: int = 200,
    message: str = "",
    done: str = "",
    typed: dict[str, Any] | None = None,
) -> web.Response:
    user, name = _where(request)
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, user, name)
        hooks = await list_hooks(session, user, name)
    return await render_page(
        request,
        "manage_hooks.html",
        status=status,
        index=index,
        hooks=hooks,
        kinds=KINDS,
        kind_keys=KIND_KEYS,
        events=EVENTS,
        message=message,
        done=done,
        typed=typed or {"name": "", "kind": "generic", "events": list(EVENTS)},
    )


@form_view
async def hooks_page(request: web.Request) -> web.StreamResponse:
    """`GET /{user}/{index}/+manage/hooks`."""
    user, _ = _where(request)
    found = await page_session(request)
    require_manager(Principal(found.user), user)
    done = {"added": "Hook saved.", "removed": "Hook removed."}.get(
        request.query.get("done", ""), ""
    )
    return await _hooks_page(request, done=done)


@form_view
async def add_hook_post(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/{index}/+manage/hooks`: add (or replace) a hook."""
    user, name = _where(request)
    principal, _, form = await form_session(request)
    require_manager(principal, user)
    hook = form.get("name", "").strip()
    kind = form.get("kind", "")
    typed: dict[str, Any] = {
        "name": hook,
        "kind": kind,
        "events": [event for event in EVENTS if checked(form, f"event_{event}")],
    }
    for key in FIELDS:
        typed[key] = form.get(f"{kind}_{key}", "") if key != "url" else form.get("url", "")
    data: dict[str, Any] = {"kind": kind, "events": typed["events"]}
    for key in KIND_KEYS.get(kind, set()):
        if typed.get(key):
            data[key] = typed[key].strip()
    try:
        await save_hook(
            request.app[DATABASE],
            request.app[HOOKS].policy,
            user,
            name,
            hook,
            data,
            principal.actor,
        )
    except LockgateError as exc:
        if exc.status >= 500:
            raise
        # Secrets typed are not sent back into the page.
        secret_keys = ("secret", "trigger_token", "api_token")
        shown = {k: v for k, v in typed.items() if k not in secret_keys}
        return await _hooks_page(request, status=exc.status, message=exc.message, typed=shown)
    return see_other(f"/{user}/{name}/+manage/hooks?done=added")


@form_view
async def hook_page(request: web.Request) -> web.StreamResponse:
    """`GET /{user}/{index}/+manage/hooks/{hook}`: the hook and its deliveries."""
    user, _ = _where(request)
    found = await page_session(request)
    require_manager(Principal(found.user), user)
    done = "Delivery queued to be sent again." if request.query.get("done") == "resent" else ""
    return await _hook_page(request, done=done)


async def _hook_page(
    request: web.Request, *, status: int = 200, done: str = "", message: str = ""
) -> web.Response:
    user, name = _where(request)
    hook = request.match_info["hook"]
    async with request.app[DATABASE].read() as session:
        shown = await require_hook(session, user, name, hook)
        sent = await hook_deliveries(session, user, name, hook)
    return await render_page(
        request,
        "manage_hook.html",
        status=status,
        index_path=f"{user}/{name}",
        hook=shown.to_api(),
        deliveries=[delivery.to_api() for delivery in sent],
        resendable=RESENDABLE,
        done=done,
        message=message,
    )


@form_view
async def resend_delivery_post(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/{index}/+manage/hooks/{hook}/deliveries/{delivery}/resend`: send a
    delivery again, through the service the API's resend uses."""
    user, name = _where(request)
    hook, delivery = request.match_info["hook"], request.match_info["delivery"]
    principal, _, _ = await form_session(request)
    require_manager(principal, user)
    try:
        async with request.app[DATABASE].write() as session:
            await resend_delivery(session, user, name, hook, delivery)
    except NotFound as exc:
        # An unknown hook is the refusal page; an unknown delivery of a known hook is
        # the hook's page again, saying so (a stale page, or a hand-made request).
        async with request.app[DATABASE].read() as session:
            if await get_hook(session, user, name, hook) is None:
                raise
        return await _hook_page(request, status=404, message=exc.message)
    request.app[HOOKS].wake()
    return see_other(f"/{user}/{name}/+manage/hooks/{hook}?done=resent")


@form_view
async def delete_hook_post(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/{index}/+manage/hooks/{hook}/delete`."""
    user, name = _where(request)
    hook = request.match_info["hook"]
    principal, _, _ = await form_session(request)
    require_manager(principal, user)
    async with request.app[DATABASE].write() as session:
        await delete_hook(session, user, name, hook, principal.actor)
    return see_other(f"/{user}/{name}/+manage/hooks?done=removed")
