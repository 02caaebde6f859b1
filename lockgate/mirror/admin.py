"""Admin handlers for mirror indexes: `POST /{user}/{index}/+mirror/refresh`."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.auth import require_login
from lockgate.accounts.services import require_self_or_root
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest
from lockgate.http.requests import api_response, read_json_object
from lockgate.indexes.services import require_index
from lockgate.mirror.services import MIRROR
from lockgate.names import is_valid_project_name
from lockgate.namespaces.services import namespace_of

MAX_PROJECTS = 1000


async def refresh(request: web.Request) -> web.Response:
    """Ask the upstream again for the given projects now, whatever their age."""
    user, name = request.match_info["user"], request.match_info["index"]
    data = await read_json_object(request)
    projects = data.get("projects")
    if (
        not isinstance(projects, list)
        or not projects
        or len(projects) > MAX_PROJECTS
        or not all(isinstance(p, str) and is_valid_project_name(p) for p in projects)
    ):
        raise BadRequest(f'send {{"projects": [NAME, …]}} with 1 to {MAX_PROJECTS} project names')
    principal = await require_login(request)
    principal.require("admin")
    require_self_or_root(principal.user, user)
    async with request.app[DATABASE].read() as session:
        index = await require_index(session, user, name)
        reserved = {p: await namespace_of(session, p) for p in projects}
    if not index.is_mirror:
        raise BadRequest(f"index {index.path} is not a mirror")
    results = {}
    for project in projects:
        namespace = reserved[project]
        if namespace is not None:
            # Names in a reserved namespace are never sent upstream from here
            # (docs/reliability.md DC-6); a whitelisting stage's lookups refresh them.
            results[project] = (
                f"not asked: in the namespace '{namespace.prefix}' reserved for {namespace.owner}"
            )
            continue
        state = await request.app[MIRROR].ensure_page(index, project, force=True)
        if state.stale:
            results[project] = f"upstream unavailable: {state.reason}"
        elif state.cached:
            results[project] = "refreshed"
        else:
            results[project] = "not found on the upstream"
    return api_response("mirror-refresh", results, serial=request.app[DATABASE].serial)
