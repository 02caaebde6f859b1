"""Browser pages for users: the server's front page (users and their indexes) and a
user's page (`/{user}`: that user's indexes)."""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup

from lockgate.accounts.services import list_users, require_user
from lockgate.db.session import DATABASE
from lockgate.indexes.access import page_readable_indexes
from lockgate.indexes.services import IndexView, all_indexes, user_indexes
from lockgate.web.templates import render_fragment, render_page


async def root_page(request: web.Request) -> web.Response:
    """`/` for a browser: every user with the indexes the caller may read."""
    db = request.app[DATABASE]
    async with db.read() as session:
        users = await list_users(session)
        everything = await all_indexes(session)  # one query, not one per user
    shown = await page_readable_indexes(request, everything)
    by_user: dict[str, list[IndexView]] = {}
    for index in shown:
        by_user.setdefault(index.user, []).append(index)
    listing = [(user, by_user.get(user.name, [])) for user in users]
    return await render_page(request, "root.html", users=listing)


async def user_page(request: web.Request) -> web.Response:
    """`/{user}` for a browser: the user's indexes the caller may read."""
    name = request.match_info["user"]
    async with request.app[DATABASE].read() as session:
        user = await require_user(session, name)
        indexes = await user_indexes(session, name)
    shown = await page_readable_indexes(request, indexes)
    body = await render_fragment("user.html", user=user, indexes=shown)
    return await render_page(
        request,
        "page.html",
        title=user.name,
        crumbs=[(user.name, None)],
        body=Markup(body),
        manage_links="manage_links_user.html",
        link_args={"user": user.name},
    )
