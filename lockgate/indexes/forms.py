"""Browser forms for indexes: create (`/{user}/+manage/new-index`), edit
(`/{user}/{index}/+manage`) and delete (`/{user}/{index}/+manage/delete`).

Every typed setting of `indexes/config.py` has a field; the mirror settings are shown
to root only (as the API, only root may say where a server fetches from). The forms
call the same services as `PUT`/`PATCH`/`DELETE /{user}/{index}` (`put_new_index`,
`change_index`, `delete_index`), so validation, messages and changelog entries are the
API's. A refused change re-renders the form with the message and what was typed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDict

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
from lockgate.accounts.services import ROOT_USER, require_user
from lockgate.db.session import DATABASE
from lockgate.egress import EGRESS
from lockgate.errors import LockgateError
from lockgate.indexes.config import (
    DEFAULT_MIRROR_CACHE_EXPIRY,
    DEFAULT_MIRROR_OFFLINE_RETRY,
    DEFAULT_MIRROR_TIMEOUT,
    PYPI_SIMPLE_URL,
    UPSTREAM_KEYS,
)
from lockgate.indexes.services import (
    IndexView,
    authorize_index_change,
    change_index,
    delete_index,
    put_new_index,
    require_index,
)
from lockgate.web.templates import render_page

LIST_KEYS = ("bases", "acl_upload", "acl_read", "mirror_whitelist", "push_requires")
STAGE_BOOLS = ("volatile", "strict_filenames")
MIRROR_BOOLS = ("volatile", "mirror_no_project_list")
MIRROR_TEXT = (
    "mirror_url",
    "mirror_cache_expiry",
    "mirror_timeout",
    "mirror_offline_retry",
    "mirror_ca_bundle",
)


def _shown(config: dict[str, Any]) -> dict[str, Any]:
    """A stored configuration as the form's fields show it (lists as text)."""
    values = dict(config)
    for key in LIST_KEYS:
        if key in values:
            values[key] = " ".join(values[key])
    if values.get("promote_to") is None:
        values["promote_to"] = ""
    return values


NEW_STAGE: dict[str, Any] = {
    "type": "stage",
    "title": "",
    "description": "",
    "bases": "",
    "volatile": True,
    "acl_upload": "",
    "acl_read": ":ANONYMOUS:",
    "mirror_whitelist": "",
    "strict_filenames": False,
    "push_requires": "",
    "promote_to": "",
    "mirror_url": PYPI_SIMPLE_URL,
    "mirror_cache_expiry": DEFAULT_MIRROR_CACHE_EXPIRY,
    "mirror_timeout": DEFAULT_MIRROR_TIMEOUT,
    "mirror_offline_retry": DEFAULT_MIRROR_OFFLINE_RETRY,
    "mirror_ca_bundle": "",
    "mirror_no_project_list": False,
}


def _typed(form: MultiDict[str], index_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form's fields as an index configuration body (the API's JSON shape), and as
    typed (to show again after a refusal)."""
    typed: dict[str, Any] = {key: form.get(key, "") for key in NEW_STAGE if key != "type"}
    typed["type"] = index_type
    data: dict[str, Any] = {
        "title": typed["title"].strip(),
        "description": typed["description"].strip(),
        "acl_read": words(typed["acl_read"]),
    }
    if index_type == "mirror":
        for key in MIRROR_BOOLS:
            typed[key] = data[key] = checked(form, key)
        for key in MIRROR_TEXT:
            data[key] = typed[key].strip()
    else:
        for key in STAGE_BOOLS:
            typed[key] = data[key] = checked(form, key)
        for key in ("bases", "mirror_whitelist", "push_requires"):
            data[key] = words(typed[key])
        if words(typed["acl_upload"]):
            data["acl_upload"] = words(typed["acl_upload"])
        data["promote_to"] = typed["promote_to"].strip() or None
    return data, typed


async def _form_page(
    request: web.Request,
    principal_user: str,
    owner: str,
    index: IndexView | None,
    values: dict[str, Any],
    *,
    name: str = "",
    status: int = 200,
    message: str = "",
    done: str = "",
) -> web.Response:
    return await render_page(
        request,
        "manage_index.html",
        status=status,
        owner=owner,
        index=index,
        name=name,
        values=values,
        is_root=principal_user == ROOT_USER,
        message=message,
        done=done,
    )


def _refusal(exc: LockgateError) -> LockgateError:
    if exc.status >= 500:
        raise exc
    return exc


@form_view
async def new_index_page(request: web.Request) -> web.StreamResponse:
    """`GET /{user}/+manage/new-index`."""
    owner = request.match_info["user"]
    found = await page_session(request)
    require_manager(Principal(found.user), owner)
    async with request.app[DATABASE].read() as session:
        await require_user(session, owner)
    values = {**NEW_STAGE, "acl_upload": owner}
    return await _form_page(request, found.user, owner, None, values)


@form_view
async def new_index_post(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/+manage/new-index`: `PUT /{user}/{name}` from a form."""
    owner = request.match_info["user"]
    principal, _, form = await form_session(request)
    require_manager(principal, owner)
    name = form.get("name", "").strip()
    index_type = "mirror" if form.get("type") == "mirror" else "stage"
    data, typed = _typed(form, index_type)
    try:
        authorize_index_change(principal.user, owner, index_type == "mirror")
        index = await put_new_index(
            request.app[DATABASE], request.app[EGRESS], owner, name, data, principal.actor
        )
    except LockgateError as exc:
        _refusal(exc)
        return await _form_page(
            request,
            principal.user,
            owner,
            None,
            typed,
            name=name,
            status=exc.status,
            message=exc.message,
        )
    return see_other(f"/{index.path}/+manage?done=created")


@form_view
async def edit_index_page(request: web.Request) -> web.StreamResponse:
    """`GET /{user}/{index}/+manage`."""
    owner, name = request.match_info["user"], request.match_info["index"]
    found = await page_session(request)
    require_manager(Principal(found.user), owner)
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, owner, name)
    done = {
        "created": "Index created.",
        "saved": "Saved.",
        "release-deleted": "The release was deleted.",
    }.get(request.query.get("done", ""), "")
    return await _form_page(
        request, found.user, owner, index, _shown(index.public_config()), done=done
    )


@form_view
async def edit_index_post(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/{index}/+manage`: `PATCH /{user}/{index}` from a form."""
    owner, name = request.match_info["user"], request.match_info["index"]
    principal, _, form = await form_session(request)
    require_manager(principal, owner)
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, owner, name)
    data, typed = _typed(form, index.type)
    shown = index.public_config()
    if index.is_mirror:
        # Where the mirror fetches from changes only when the form says otherwise
        # (root only); the URL is shown redacted and kept when sent back so.
        for key in UPSTREAM_KEYS:
            if principal.user != ROOT_USER or data.get(key) == shown.get(key):
                data.pop(key, None)
        if principal.user != ROOT_USER:
            for key in MIRROR_TEXT:
                data.pop(key, None)
            data.pop("mirror_no_project_list", None)
    try:
        authorize_index_change(principal.user, owner, bool(UPSTREAM_KEYS & set(data)))
        await change_index(
            request.app[DATABASE], request.app[EGRESS], owner, name, data, principal.actor
        )
    except LockgateError as exc:
        _refusal(exc)
        return await _form_page(
            request, principal.user, owner, index, typed, status=exc.status, message=exc.message
        )
    return see_other(f"/{owner}/{name}/+manage?done=saved")


@form_view
async def delete_index_page(request: web.Request) -> web.StreamResponse:
    """`GET /{user}/{index}/+manage/delete`: asks to type the index's name."""
    owner, name = request.match_info["user"], request.match_info["index"]
    found = await page_session(request)
    require_manager(Principal(found.user), owner)
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, owner, name)
    return await render_page(request, "manage_index_delete.html", index=index, message="")


@form_view
async def delete_index_post(request: web.Request) -> web.StreamResponse:
    """`POST /{user}/{index}/+manage/delete`: `DELETE /{user}/{index}` once confirmed."""
    owner, name = request.match_info["user"], request.match_info["index"]
    principal, _, form = await form_session(request)
    require_manager(principal, owner)
    db = request.app[DATABASE]
    async with db.read() as session:
        index = await require_index(session, owner, name)
    try:
        if form.get("confirm", "").strip() != index.path:
            raise LockgateError(f"type {index.path} to confirm; nothing was deleted", 400)
        async with db.write() as session:
            await delete_index(session, owner, name, principal.actor)
    except LockgateError as exc:
        _refusal(exc)
        return await render_page(
            request,
            "manage_index_delete.html",
            status=exc.status,
            index=index,
            message=exc.message,
        )
    return see_other(f"/{owner}/+manage?done=deleted")
