"""Browser pages of an index, a project and a release (`page_or` sends browsers here).

A page's main part is the same for every caller, so it is rendered once per serial into
the page cache (lockgate/http/pagecache.py) and wrapped per request with the layout
(`page.html`, which shows who is signed in). Pages of mirror projects confirm the
mirrors' cached pages first, as the simple API does, so a page is never older than
what pip would get.
"""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup
from packaging.utils import canonicalize_name

from lockgate.browse.describe import DESCRIPTIONS
from lockgate.browse.services import ProjectDetails, project_details, project_listing
from lockgate.catalog.lookup import confirm_mirrors, lookup_project
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.downloads.services import DOWNLOADS
from lockgate.errors import BadRequest, NotFound
from lockgate.http.pagecache import FILES, PAGES, CachedPage
from lockgate.http.requests import project_in_path
from lockgate.indexes.access import require_page_read
from lockgate.indexes.services import IndexView, require_index, resolve_chain
from lockgate.mirror.services import MIRROR
from lockgate.storage.blobs import BLOBS
from lockgate.web.templates import render_fragment, render_page

MAX_FILTER_CHARS = 100


def _base_url(request: web.Request) -> str:
    return request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"


def _downloads_epoch(request: web.Request) -> str:
    """Pages showing download counts are rebuilt after each flush of this node's counts."""
    counter = request.app.get(DOWNLOADS)
    return counter.epoch() if counter is not None else "0"


async def _shell(
    request: web.Request,
    title: str,
    crumbs: list[tuple[str, str | None]],
    body: bytes,
    manage_links: str | None = None,
) -> web.Response:
    """The cached body in the per-request frame: breadcrumbs, and links to the
    management pages for whoever is signed in (`manage_links` with the path's names)."""
    return await render_page(
        request,
        "page.html",
        title=title,
        crumbs=crumbs,
        body=Markup(body.decode("utf-8")),
        manage_links=manage_links,
        link_args=dict(request.match_info),
    )


def _index_crumbs(user: str, name: str) -> list[tuple[str, str | None]]:
    return [(user, f"/{user}"), (name, f"/{user}/{name}")]


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 0 < int(raw) < 1_000_000:
        raise BadRequest(f"'page' must be a page number (1, 2, …), not {raw[:40]!r}")
    return int(raw)


async def index_page(request: web.Request) -> web.Response:
    """`/{user}/{index}`: settings, and the projects it sees (own and inherited)."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_page_read(request, user, name)
    query = request.query.get("q", "")
    if len(query) > MAX_FILTER_CHARS:
        raise BadRequest(f"the filter is limited to {MAX_FILTER_CHARS} characters")
    page = _page_number(request)
    db, pages = request.app[DATABASE], request.app[PAGES]
    serial = db.serial
    # The index itself, remembered for the serial: a cached page costs no query.
    memo_key = ("page:index-view", user, name)
    index: IndexView | None = request.app[FILES].get(memo_key, serial)
    if index is None:
        async with db.read() as session:
            index = await require_index(session, user, name)
        request.app[FILES].put(memo_key, serial, index)
    upstream_error = request.app[MIRROR].upstream.last_failure(index) if index.is_mirror else None
    key = ("page:index", user, name, query, str(page), upstream_error or "")
    cached = pages.get(key, serial)
    if cached is None:
        async with db.read() as session:
            index = await require_index(session, user, name)
            chain = await resolve_chain(session, index)
            listing = await project_listing(session, chain, query, page)
        body = await render_fragment(
            "index.html",
            index=index,
            config=index.public_config(),
            listing=listing,
            q=query,
            upstream_error=upstream_error,
        )
        cached = pages.put(key, serial, body.encode("utf-8"), "text/html")
    return await _shell(
        request, index.path, _index_crumbs(user, name), cached.body, "manage_links_index.html"
    )


async def _details_page(
    request: web.Request, template: str, version: str | None
) -> tuple[CachedPage, str]:
    """The cached main part of a project (or release) page, and the project's name."""
    user, name = request.match_info["user"], request.match_info["index"]
    normalized = canonicalize_name(project_in_path(request))
    db, pages, mirror = request.app[DATABASE], request.app[PAGES], request.app[MIRROR]
    key = (
        f"page:{template}",
        user,
        name,
        normalized,
        version or "",
        request.host,
        _downloads_epoch(request),
    )
    serial = db.serial
    cached = pages.get(key, serial)
    if cached is not None:
        await confirm_mirrors(mirror, list(cached.depends_on), normalized, via=f"{user}/{name}")
        if db.serial != serial:
            cached = None  # the confirmation brought a newer upstream page
    if cached is None:
        serial = db.serial
        found = await lookup_project(db, mirror, user, name, normalized)
        async with db.read() as session:
            details = await project_details(session, request.app[BLOBS], found, normalized, version)
        body = await _render_details(request, template, details, version)
        cached = pages.put(key, serial, body.encode("utf-8"), "text/html", tuple(found.mirrors))
    return cached, normalized


async def _render_details(
    request: web.Request, template: str, details: ProjectDetails, version: str | None
) -> str:
    meta = details.metadata
    description = await DESCRIPTIONS.render(
        meta.get("description") if isinstance(meta.get("description"), str) else None,
        meta.get("description_content_type"),
    )
    if version is None:
        return await render_fragment(
            template, details=details, description=description, base_url=_base_url(request)
        )
    release = details.version(version)
    gone = details.deleted_version(version) if release is None else None
    if gone is not None and gone.deleted is not None:
        mark = gone.deleted
        raise NotFound(
            f"release {details.view.display_name} {mark.version} was deleted from index "
            f"{mark.index} on {mark.deleted_at[:16].replace('T', ' ')} UTC"
            + (f" by {mark.deleted_by}" if mark.deleted_by else "")
        )
    if release is None:
        raise NotFound(
            f"release {details.view.display_name} {version} not found on index {details.index.path}"
        )
    docs_url = release.docs_url
    urls = meta.get("project_urls") if isinstance(meta.get("project_urls"), list) else []
    project_urls = [
        (label.strip(), url.strip())
        for label, _, url in (str(item).partition(",") for item in urls or [])
        if url.strip()
    ]
    return await render_fragment(
        template,
        details=details,
        release=release,
        description=description,
        project_urls=project_urls,
        docs_url=docs_url,
    )


async def project_page(request: web.Request) -> web.StreamResponse:
    """`/{user}/{index}/{project}`: versions, where they came from, the latest
    description and the download chart."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_page_read(request, user, name)
    project = project_in_path(request)
    normalized: str = canonicalize_name(project)
    if project != normalized or request.path.endswith("/"):
        raise web.HTTPMovedPermanently(f"/{user}/{name}/{normalized}")
    cached, normalized = await _details_page(request, "project.html", None)
    crumbs = [*_index_crumbs(user, name), (normalized, None)]
    return await _shell(request, f"{normalized} on {user}/{name}", crumbs, cached.body)


async def version_page(request: web.Request) -> web.StreamResponse:
    """`/{user}/{index}/{project}/{version}`: files, metadata, description, test results."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_page_read(request, user, name)
    project = project_in_path(request)
    version = request.match_info["version"]
    normalized: str = canonicalize_name(project)
    if project != normalized:
        raise web.HTTPMovedPermanently(f"/{user}/{name}/{normalized}/{version}")
    cached, normalized = await _details_page(request, "version.html", version)
    crumbs = [
        *_index_crumbs(user, name),
        (normalized, f"/{user}/{name}/{normalized}"),
        (version, None),
    ]
    return await _shell(
        request,
        f"{normalized} {version} on {user}/{name}",
        crumbs,
        cached.body,
        "manage_links_release.html",
    )


async def release_for_clients(request: web.Request) -> web.Response:
    """`GET /{user}/{index}/{project}/{version}` for anything but a browser: the release's
    JSON lives under `pypi/` (PyPI's JSON API)."""
    user, name = request.match_info["user"], request.match_info["index"]
    project, version = request.match_info["project"], request.match_info["version"]
    raise NotFound(
        f"no JSON here: the release's JSON is /{user}/{name}/pypi/"
        f"{canonicalize_name(project)}/{version}/json"
    )
