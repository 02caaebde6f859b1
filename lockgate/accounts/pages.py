"""Browser pages for users: the server's front page (users and their indexes)."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.auth import page_principal
from lockgate.accounts.services import list_users
from lockgate.db.session import DATABASE
from lockgate.indexes.access import may_read
from lockgate.indexes.services import user_indexes
from lockgate.web.templates import render_page


async def root_page(request: web.Request) -> web.Response:
    """`/` for a browser: every user with the indexes the caller may read."""
    db = request.app[DATABASE]
    async with db.read() as session:
        listing = [
            (user, await user_indexes(session, user.name)) for user in await list_users(session)
        ]
    everything = [index for _, indexes in listing for index in indexes]
    principal = await page_principal(request)
    shown = {index.path for index in everything if may_read(principal, index.path, index.readers)}
    users = [
        (user, [index for index in indexes if index.path in shown]) for user, indexes in listing
    ]
    return await render_page(request, "root.html", users=users)
