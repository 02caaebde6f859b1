"""Handlers devpi-client needs besides lockgate's devpi-shaped admin API:

- `GET /+api` (and `/{user}/+api`, `/{user}/{index}/+api`): where to log in, upload
  and install, the caller's login status and the features devpi-client checks;
- `POST /+login`: `{"user", "password"}` → a lockgate token expiring in 10 hours
  (`result.password`), which devpi-client then sends as `X-Devpi-Auth` (and pip,
  through `devpi install`, as the password in the index URL);
- `GET /{user}/{index}/{project}/` and `…/{project}/{version}` with
  `Accept: application/json`: devpi's `projectconfig` and `versiondata` (versions
  → metadata and `+links` with `href`, `rel`, `hash_spec` and `log`), as `devpi
  list`, `devpi remove`, `devpi test` and `devpi getjson` read them. Each test
  result of a file is a link of rel "toxresult" whose `for_href` is the file's href
  and whose `href` answers devpi's toxresult JSON (lockgate/workflow/toxresults.py),
  oldest first, as devpi lists them: `devpi list -t/-f` reads them.

Every answer is `{"type": …, "result": …}` with `Content-Type: application/json`
exactly (devpi-client shows an error's `message` only then).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockgate.accounts.auth import WRONG_PASSWORD, authenticate, credentials_valid
from lockgate.accounts.tokens import (
    LOGIN_EXPIRATION,
    issue_login_token,
    looks_like_secret,
    new_secret,
)
from lockgate.catalog.lookup import confirm_mirrors, lookup_project
from lockgate.catalog.services import ProjectView, VisibleFile
from lockgate.changelog.codec import Actor
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest, NotFound, Unauthorized
from lockgate.http.pagecache import PAGES
from lockgate.http.requests import api_response, project_in_path, read_json_object
from lockgate.indexes.access import require_read
from lockgate.indexes.services import require_index
from lockgate.mirror.services import MIRROR
from lockgate.workflow.services import results_of_files

# (index id, file name) -> the file's test results, oldest first.
Results = dict[tuple[int, str], list[dict[str, Any]]]

# What devpi-client may rely on: `devpi index NAME key+=value` (a list of
# operations in a PATCH) needs 'server-keyvalue-parsing'. devpi's push options
# (--no-docs, --only-docs, --register-project) split a release's files from its docs
# or concern external pushes; lockgate's push takes both together, between its own
# indexes, so they are not offered.
FEATURES = ["server-keyvalue-parsing"]
# Metadata keys of a release devpi shows beside name and version.
METADATA_KEYS = (
    "summary",
    "description",
    "description_content_type",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "license",
    "home_page",
    "download_url",
    "requires_python",
    "keywords",
    "classifiers",
    "requires_dist",
    "project_urls",
)


def base_url(request: web.Request) -> str:
    """Absolute URLs as the client reached the server (or `--public-url`)."""
    return request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"


async def _authstatus(request: web.Request) -> list[Any]:
    """devpi's `[status, user, groups]`: 'ok', 'noauth', or 'expired' for credentials
    that no longer authenticate (devpi-client then forgets its stored login)."""
    try:
        principal = await authenticate(request)
    except Unauthorized:
        return ["expired", "", []]
    if principal is None:
        return ["noauth", "", []]
    return ["ok", principal.user, []]


async def api_view(request: web.Request) -> web.Response:
    """`GET [/{user}[/{index}]]/+api`: devpi's discovery, which `devpi use` reads.
    It answers whoever asks (as devpi's does), so that an anonymous `devpi use`
    of a private index works and `devpi login` can follow."""
    base = base_url(request)
    result: dict[str, Any] = {
        "login": f"{base}/+login",
        "authstatus": await _authstatus(request),
        "features": FEATURES,
    }
    user, name = request.match_info.get("user"), request.match_info.get("index")
    if user is not None and name is not None:
        async with request.app[DATABASE].read() as session:
            index = await require_index(session, user, name)
        result["index"] = f"{base}/{index.path}"
        result["simpleindex"] = f"{base}/{index.path}/+simple/"
        if not index.is_mirror:
            result["pypisubmit"] = f"{base}/{index.path}/"
    return api_response("apiconfig", result)


async def login_view(request: web.Request) -> web.Response:
    """`POST /+login` with `{"user": …, "password": …}`: a new login token (a
    lockgate API token named 'devpi-login', expiring in 10 hours, with every scope
    but `replicate`). The password is checked before the write opens; a wrong one
    is a 401 and stores nothing (docs/reliability.md DV-1)."""
    data = await read_json_object(request)
    user, password = data.get("user"), data.get("password")
    if not isinstance(user, str) or not user or not isinstance(password, str):
        raise BadRequest("Bad request: no user/password specified")
    if looks_like_secret(password):
        raise BadRequest(
            "log in with your password: a lockgate token needs no login, send it as "
            "the password (e.g. in the index URL, http://USER:TOKEN@host/USER/INDEX)"
        )
    if not await credentials_valid(request, user, password):
        raise Unauthorized(f"user {user!r} could not be authenticated: {WRONG_PASSWORD}")
    secret = new_secret()
    db = request.app[DATABASE]
    async with db.write() as session:
        await issue_login_token(session, user, secret, Actor(user))
    return api_response(
        "proxyauth",
        {"password": secret, "expiration": LOGIN_EXPIRATION},
        serial=db.serial,
        message="login successful",
    )


def _when(upload_time: str | None) -> list[int] | None:
    """devpi's log time: [year, month, day, hour, minute, second] (UTC)."""
    if not upload_time:
        return None
    try:
        moment = datetime.fromisoformat(upload_time.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
    return [moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second]


def _toxresult_links(f: VisibleFile, href: str, results: Results) -> list[dict[str, Any]]:
    """devpi's toxresult links of a file: one per stored result, oldest first (devpi-
    client shows the newest of each host, platform and environment)."""
    links = []
    for number, result in enumerate(results.get((f.index.id, f.filename), [])):
        links.append(
            {
                "rel": "toxresult",
                "href": f"{href}/+toxresult/{number}",
                "for_href": href,
                "log": [
                    {
                        "what": "upload",
                        "who": result["posted_by"],
                        "when": _when(result["posted_at"]),
                        "dst": result["index"],
                    }
                ],
            }
        )
    return links


def _link(f: VisibleFile, base: str) -> dict[str, Any]:
    link: dict[str, Any] = {"rel": "releasefile", "href": base + f.url_path}
    if f.sha256:
        link["hash_spec"] = f"sha256={f.sha256}"
    log = []
    if not f.index.is_mirror:
        log.append(
            {"what": "upload", "who": f.uploader, "when": _when(f.upload_time), "dst": f.index.path}
        )
    link["log"] = log
    return link


def _version_data(
    view: ProjectView, version: str, files: list[VisibleFile], base: str, results: Results
) -> dict:
    mine = [f for f in files if f.version == version]
    metadata = mine[0].metadata if mine else {}
    data: dict[str, Any] = {"name": view.display_name, "version": version}
    for key in METADATA_KEYS:
        value = metadata.get(key)
        if value not in (None, "", []):
            data[key] = value
    links = [_link(f, base) for f in mine]
    toxlinks = [
        toxlink
        for f, link in zip(mine, links, strict=True)
        for toxlink in _toxresult_links(f, link["href"], results)
    ]
    data["+links"] = links + toxlinks
    return data


async def _results(request: web.Request, files: list[VisibleFile]) -> Results:
    """The test results of the stage files among `files` (mirrors have none)."""
    keys = {(f.index.id, f.filename) for f in files if not f.index.is_mirror}
    if not keys:
        return {}
    async with request.app[DATABASE].read() as session:
        return await results_of_files(session, keys)


async def _project(request: web.Request) -> tuple[ProjectView, list[VisibleFile]]:
    """The project as the index sees it, with bases (or only the index's own files
    with `?ignore_bases`, what `devpi remove` asks for); 404 when nothing is there."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    project = project_in_path(request)
    found = await lookup_project(
        request.app[DATABASE], request.app[MIRROR], user, name, canonicalize_name(project)
    )
    return _project_files(found.view, project, user, name, "ignore_bases" in request.query)


def _project_files(
    view: ProjectView | None, project: str, user: str, name: str, own_only: bool
) -> tuple[ProjectView, list[VisibleFile]]:
    if view is None or not view.versions:
        raise NotFound(f"project {project!r} does not exist on index {user}/{name}")
    files = view.files
    if own_only:
        files = [f for f in files if f.index.path == f"{user}/{name}"]
    return view, files


def _sort_key(version: str) -> tuple[int, Any]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


async def project_view(request: web.Request) -> web.Response:
    """`GET /{user}/{index}/{project}/` asking for JSON: devpi's projectconfig,
    every version the index sees mapped to its metadata and links.

    Rendered once per serial (and per base URL and `?ignore_bases`) into the page
    cache, as the PyPI JSON API and the simple pages are: a cached answer costs no
    database read unless a mirror's page of the project needs confirming first
    (bench/pages.py: ~5 ms of CPU per request before, a tenth of that after)."""
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    project = project_in_path(request)
    normalized = canonicalize_name(project)
    db, pages, mirror = request.app[DATABASE], request.app[PAGES], request.app[MIRROR]
    base = base_url(request)
    own_only = "ignore_bases" in request.query
    key = ("devpi:project", user, name, normalized, base, "own" if own_only else "all")
    serial = db.serial
    cached = pages.get(key, serial)
    if cached is not None:
        await confirm_mirrors(mirror, list(cached.depends_on), normalized, via=f"{user}/{name}")
        if db.serial == serial:
            return _cached_api_response(cached.body, serial)
    serial = db.serial
    found = await lookup_project(db, mirror, user, name, normalized)
    view, files = _project_files(found.view, project, user, name, own_only)
    versions = sorted({f.version for f in files}, key=_sort_key, reverse=True)
    results = await _results(request, files)
    result = {version: _version_data(view, version, files, base, results) for version in versions}
    body = json.dumps({"type": "projectconfig", "result": result}).encode("utf-8")
    page = pages.put(key, serial, body, "application/json", tuple(found.mirrors))
    return _cached_api_response(page.body, serial)


def _cached_api_response(body: bytes, serial: int) -> web.Response:
    """What `api_response` sends, from bytes already rendered."""
    return web.Response(
        body=body, content_type="application/json", headers={"X-Lockgate-Serial": str(serial)}
    )


async def version_view(request: web.Request) -> web.Response:
    """`GET /{user}/{index}/{project}/{version}` asking for JSON: devpi's versiondata."""
    view, files = await _project(request)
    wanted = request.match_info["version"]
    versions = {f.version for f in files}
    if wanted not in versions:
        try:
            normalized = Version(wanted)
        except InvalidVersion:
            normalized = None
        matches = [v for v in versions if _sort_key(v)[0] and Version(v) == normalized]
        if not matches:
            raise NotFound(f"{view.display_name} has no version {wanted!r}")
        wanted = matches[0]
    mine = [f for f in files if f.version == wanted]
    result = _version_data(view, wanted, mine, base_url(request), await _results(request, mine))
    return api_response("versiondata", result, serial=request.app[DATABASE].serial)
