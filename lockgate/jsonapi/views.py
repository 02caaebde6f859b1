"""PyPI JSON API answers (docs/standards.md §5) for the projects an index can see."""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockgate.catalog.lookup import confirm_mirrors, lookup_project
from lockgate.catalog.services import ProjectView, VisibleFile
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE, Database
from lockgate.docs.services import releases_with_docs
from lockgate.downloads.services import DOWNLOADS, daily_downloads, summary
from lockgate.http.pagecache import PAGES
from lockgate.indexes.access import require_read
from lockgate.mirror.services import MIRROR
from lockgate.names import is_valid_project_name
from lockgate.workflow.services import provenance_of_releases, results_of_files

INFO_FIELDS = {
    "summary": "summary",
    "description": "description",
    "description_content_type": "description_content_type",
    "author": "author",
    "author_email": "author_email",
    "maintainer": "maintainer",
    "maintainer_email": "maintainer_email",
    "license": "license",
    "license_expression": "license_expression",
    "home_page": "home_page",
    "download_url": "download_url",
    "requires_python": "requires_python",
    "platform": "platform",
}
LIST_FIELDS = ("classifiers", "requires_dist", "provides_extra", "dynamic", "license_files")


def _not_found() -> web.Response:
    return web.json_response({"message": "Not Found"}, status=404)


def _sort_key(version: str) -> tuple[int, Any]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _latest(view: ProjectView) -> str:
    yanked = {f.version for f in view.files if f.yanked}
    unyanked = [v for v in view.versions if v not in yanked] or list(view.versions)
    stable = [v for v in unyanked if _sort_key(v)[0] and not Version(v).is_prerelease]
    return max(stable or unyanked, key=_sort_key)


@dataclass(frozen=True)
class Workflow:
    """lockgate's extension keys: test results per file, provenance per release;
    and which releases have documentation (`info.docs_url`)."""

    results: dict[tuple[int, str], list[dict[str, Any]]]
    provenance: dict[tuple[int, str, str], dict[str, str]]
    documented: AbstractSet[tuple[int, str, str]] = frozenset()

    def docs_url_of(self, f: VisibleFile, docs_base: str) -> str | None:
        """The release's documentation (`+doc/`) on the index holding it, if any."""
        key = (f.index.id, canonicalize_name(f.project), f.version)
        if key not in self.documented:
            return None
        return f"{docs_base}/{f.index.path}/{key[1]}/{f.version}/+doc/"

    def results_of(self, f: VisibleFile, base: str) -> list[dict[str, Any]]:
        shown = []
        for result in self.results.get((f.index.id, f.filename), []):
            result = dict(result)
            sha = result.pop("log_sha256")
            result["log_url"] = f"{base}/{f.index.path}/+testlog/{sha}" if sha else None
            shown.append(result)
        return shown

    def provenance_of(self, f: VisibleFile) -> dict[str, str] | None:
        return self.provenance.get((f.index.id, canonicalize_name(f.project), f.version))


async def _workflow(db: Database, files: list[VisibleFile]) -> Workflow:
    stage = [f for f in files if not f.index.is_mirror]
    if not stage:
        return Workflow({}, {})
    releases = {(f.index.id, canonicalize_name(f.project), f.version) for f in stage}
    async with db.read() as session:
        results = await results_of_files(session, {(f.index.id, f.filename) for f in stage})
        provenance = await provenance_of_releases(session, releases)
        documented = await releases_with_docs(session, releases)
    return Workflow(results, provenance, documented)


def _file_json(f: VisibleFile, base: str, workflow: Workflow | None = None) -> dict[str, Any]:
    upload = (f.upload_time or "").rstrip("Z")
    workflow = workflow or Workflow({}, {})
    provenance = workflow.provenance_of(f)
    return {
        "filename": f.filename,
        "url": base + f.url_path,
        "packagetype": f.packagetype,
        "python_version": f.python_version,
        "size": f.size,
        "digests": {"md5": f.md5, "sha256": f.sha256, "blake2b_256": f.blake2_256},
        "md5_digest": f.md5,
        "upload_time": upload.split(".")[0] or None,
        "upload_time_iso_8601": f.upload_time,
        "requires_python": f.requires_python,
        "yanked": f.yanked,
        "yanked_reason": f.yanked_reason,
        "core-metadata": ({"sha256": f.core_metadata_sha256} if f.core_metadata_sha256 else False),
        "comment_text": "",
        # lockgate's audit trail: who uploaded the file (null for mirrored files)
        "uploader": f.uploader,
        # lockgate's release workflow: results CI posted for this file, and the
        # index its release was pushed from (null when it was uploaded here)
        "test_results": workflow.results_of(f, base),
        "pushed_from": provenance["pushed_from"] if provenance else None,
        "has_sig": False,
        "downloads": -1,
    }


def _info(
    view: ProjectView,
    version: str,
    base: str,
    index_path: str,
    workflow: Workflow,
    downloads: dict[str, int],
    docs_base: str | None = None,
) -> dict[str, Any]:
    files = [f for f in view.files if f.version == version]
    metadata: dict[str, Any] = files[0].metadata if files else {}
    info: dict[str, Any] = {"name": view.display_name, "version": version}
    for key, source in INFO_FIELDS.items():
        value = metadata.get(source)
        info[key] = value if isinstance(value, str) and value else None
    for key in LIST_FIELDS:
        value = metadata.get(key)
        info[key] = list(value) if isinstance(value, list) else ([value] if value else [])
    info["requires_dist"] = info["requires_dist"] or None
    keywords = metadata.get("keywords")
    info["keywords"] = keywords if isinstance(keywords, str) else ""
    urls = metadata.get("project_urls")
    if isinstance(urls, list):
        info["project_urls"] = {
            label.strip(): url.strip()
            for label, _, url in (item.partition(",") for item in urls)
            if url.strip()
        } or None
    else:
        info["project_urls"] = None
    if files and files[0].requires_python:
        info["requires_python"] = files[0].requires_python
    project_url = f"{base}/{index_path}/pypi/{view.name}/"
    info.update(
        {
            "package_url": project_url,
            "project_url": project_url,
            "release_url": f"{project_url}{version}/",
            # lockgate serves uploaded documentation (README "Documentation")
            "docs_url": workflow.docs_url_of(files[0], docs_base or base) if files else None,
            "bugtrack_url": None,
            # this node's counts of the project's files (today, 7 and 30 days, UTC)
            "downloads": downloads,
            "yanked": any(f.yanked for f in files),
            "yanked_reason": next((f.yanked_reason for f in files if f.yanked), None),
            # lockgate: where a pushed release came from, when and by whom (or null)
            "provenance": workflow.provenance_of(files[0]) if files else None,
        }
    )
    return info


async def project_json(request: web.Request) -> web.Response:
    user, name = request.match_info["user"], request.match_info["index"]
    await require_read(request, user, name)
    project = request.match_info["project"]
    version = request.match_info.get("version")
    if not is_valid_project_name(project):
        return _not_found()
    normalized = canonicalize_name(project)
    if normalized != project:
        suffix = f"{version}/json" if version else "json"
        raise web.HTTPMovedPermanently(f"/{user}/{name}/pypi/{normalized}/{suffix}")
    db, pages = request.app[DATABASE], request.app[PAGES]
    base = request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"
    # Rendered once per serial (and per base URL, which the links carry), like the
    # simple pages: a cached answer costs no database read unless a mirror's page of
    # the project needs confirming with its upstream.
    # Download counts are flushed without a new serial: their epoch is in the key.
    counter = request.app.get(DOWNLOADS)
    epoch = counter.epoch() if counter is not None else ""
    key = ("json", user, name, normalized, version or "", base, epoch)
    serial = db.serial
    cached = pages.get(key, serial)
    if cached is not None:
        await confirm_mirrors(
            request.app[MIRROR], list(cached.depends_on), normalized, via=f"{user}/{name}"
        )
        if db.serial == serial:
            return _json_answer(cached.body, serial)
    serial = db.serial
    found = await lookup_project(db, request.app[MIRROR], user, name, normalized)
    index, view = found.index, found.view
    if view is None or not view.versions or view.status == "quarantined":
        return _not_found()
    if version is None:
        selected = _latest(view)
    else:
        matches = [v for v in view.versions if v == version]
        if not matches:
            try:
                wanted = Version(version)
            except InvalidVersion:
                return _not_found()
            matches = [v for v in view.versions if _sort_key(v)[0] and Version(v) == wanted]
        if not matches:
            return _not_found()
        selected = matches[0]
    shown = view.files if version is None else [f for f in view.files if f.version == selected]
    workflow = await _workflow(db, shown)
    holders = sorted({f.index.path for f in view.files} | {index.path})
    async with db.read() as session:
        downloads = summary(await daily_downloads(session, holders, view.name))
    body: dict[str, Any] = {
        "info": _info(
            view, selected, base, index.path, workflow, downloads, request.app[SETTINGS].docs_url
        ),
        "last_serial": serial,
        "urls": [_file_json(f, base, workflow) for f in view.files if f.version == selected],
        "vulnerabilities": [],
    }
    if version is None:
        body["releases"] = {
            v: [_file_json(f, base, workflow) for f in view.files if f.version == v]
            for v in view.versions
        }
    page = pages.put(
        key, serial, json.dumps(body).encode("utf-8"), "application/json", tuple(found.mirrors)
    )
    return _json_answer(page.body, serial)


def _json_answer(body: bytes, serial: int) -> web.Response:
    return web.Response(
        body=body,
        content_type="application/json",
        charset="utf-8",
        headers={"X-PyPI-Last-Serial": str(serial), "Cache-Control": "max-age=0, public"},
    )
