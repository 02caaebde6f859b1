"""One page builder: the PEP 691 dict is built once and rendered as JSON or HTML."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from lockgate.catalog.services import ProjectView

API_VERSION = "1.1"
# PEP 792 markers need 1.4; pages carrying them declare it (docs/standards.md R1.23).
STATUS_API_VERSION = "1.4"


def _attr(value: str) -> str:
    return escape(value, quote=True)


def project_page(view: ProjectView, root_prefix: str) -> dict[str, Any]:
    """PEP 691 project detail; file URLs are relative (`root_prefix` leads to `/`).

    No serial in the body: the ETag then changes only when this page does, so
    clients keep getting 304s while other projects change.
    """
    files = []
    for f in view.files:
        core: Any = False
        if f.core_metadata_sha256:
            core = {"sha256": f.core_metadata_sha256}
        elif f.core_metadata:
            core = True
        entry: dict[str, Any] = {
            "filename": f.filename,
            "url": root_prefix + f.url_path.lstrip("/"),
            # Always present, even empty: uv rejects a page with a file lacking it.
            "hashes": {"sha256": f.sha256} if f.sha256 else {},
            "requires-python": f.requires_python,
            # Never "" (pip and uv disagree on it): a reason string or a bool.
            "yanked": (f.yanked_reason or True) if f.yanked else False,
            "core-metadata": core,
        }
        if f.size is not None:
            entry["size"] = f.size
        if f.upload_time:
            entry["upload-time"] = f.upload_time
        files.append(entry)
    page: dict[str, Any] = {
        "meta": {"api-version": API_VERSION},
        "name": view.name,
        "versions": view.versions,
        "files": files,
    }
    if view.status:
        page["meta"]["api-version"] = STATUS_API_VERSION
        page["project-status"] = {"status": view.status}
        if view.status_reason:
            page["project-status"]["reason"] = view.status_reason
    return page


def project_list(names: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": display, "_normalized": name} for name, display in names],
    }


def render_json(page: dict[str, Any]) -> bytes:
    return json.dumps(page, separators=(",", ":")).encode("utf-8")


def _html_document(
    title: str, body_lines: list[str], version: str = API_VERSION, meta: list[str] | None = None
) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{version}">',
        *(meta or []),
        f"    <title>{escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{escape(title)}</h1>",
        *body_lines,
        "  </body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def render_project_html(page: dict[str, Any]) -> bytes:
    links = []
    for f in page["files"]:
        fragment = f"#sha256={f['hashes']['sha256']}" if f["hashes"].get("sha256") else ""
        attrs = [f'href="{_attr(f["url"])}{fragment}"']
        if f.get("requires-python"):
            attrs.append(f'data-requires-python="{_attr(f["requires-python"])}"')
        yanked = f.get("yanked")
        if yanked:
            reason = yanked if isinstance(yanked, str) else ""
            attrs.append(f'data-yanked="{_attr(reason)}"')
        core = f.get("core-metadata")
        if core:
            value = f"sha256={core['sha256']}" if isinstance(core, dict) else "true"
            attrs.append(f'data-core-metadata="{value}"')
            attrs.append(f'data-dist-info-metadata="{value}"')
        links.append(f"    <a {' '.join(attrs)}>{escape(f['filename'])}</a><br />")
    meta = []
    status = page.get("project-status")
    if status:
        meta.append(f'    <meta name="pypi:project-status" content="{_attr(status["status"])}">')
        if status.get("reason"):
            meta.append(
                f'    <meta name="pypi:project-status-reason" content="{_attr(status["reason"])}">'
            )
    return _html_document(f"Links for {page['name']}", links, page["meta"]["api-version"], meta)


def render_list_html(page: dict[str, Any]) -> bytes:
    links = [
        f'    <a href="{_attr(p["_normalized"])}/">{escape(p["name"])}</a><br />'
        for p in page["projects"]
    ]
    return _html_document("Simple index", links)
