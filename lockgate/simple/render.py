"""One page builder: the PEP 691 dict is built once and rendered as JSON or HTML."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from lockgate.packages.services import ProjectView

API_VERSION = "1.1"


def _attr(value: str) -> str:
    return escape(value, quote=True)


def project_page(view: ProjectView, root_prefix: str, serial: int) -> dict[str, Any]:
    """PEP 691 project detail; file URLs are relative (`root_prefix` leads to `/`)."""
    files = []
    for f in view.files:
        entry: dict[str, Any] = {
            "filename": f.filename,
            "url": root_prefix + f.url_path.lstrip("/"),
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "size": f.size,
            "upload-time": f.upload_time,
            # Never "" (pip and uv disagree on it): a reason string or a bool.
            "yanked": (f.yanked_reason or True) if f.yanked else False,
            "core-metadata": (
                {"sha256": f.core_metadata_sha256} if f.core_metadata_sha256 else False
            ),
        }
        files.append(entry)
    return {
        "meta": {"api-version": API_VERSION, "_last-serial": serial},
        "name": view.name,
        "versions": view.versions,
        "files": files,
    }


def project_list(names: list[tuple[str, str]], serial: int) -> dict[str, Any]:
    return {
        "meta": {"api-version": API_VERSION, "_last-serial": serial},
        "projects": [{"name": display, "_normalized": name} for name, display in names],
    }


def render_json(page: dict[str, Any]) -> bytes:
    return json.dumps(page, separators=(",", ":")).encode("utf-8")


def _html_document(title: str, body_lines: list[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
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
        attrs = [f'href="{_attr(f["url"])}#sha256={f["hashes"]["sha256"]}"']
        if f.get("requires-python"):
            attrs.append(f'data-requires-python="{_attr(f["requires-python"])}"')
        yanked = f.get("yanked")
        if yanked:
            reason = yanked if isinstance(yanked, str) else ""
            attrs.append(f'data-yanked="{_attr(reason)}"')
        core = f.get("core-metadata")
        if isinstance(core, dict):
            value = f"sha256={core['sha256']}"
            attrs.append(f'data-core-metadata="{value}"')
            attrs.append(f'data-dist-info-metadata="{value}"')
        links.append(f"    <a {' '.join(attrs)}>{escape(f['filename'])}</a><br />")
    return _html_document(f"Links for {page['name']}", links)


def render_list_html(page: dict[str, Any]) -> bytes:
    links = [
        f'    <a href="{_attr(p["_normalized"])}/">{escape(p["name"])}</a><br />'
        for p in page["projects"]
    ]
    return _html_document("Simple index", links)
