"""Parsing upstream simple-API pages (PEP 691 JSON preferred, PEP 503 HTML accepted)
into one normalized form that the mirror stores and passes on."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = ("text/html", "application/vnd.pypi.simple.v1+html")
ACCEPT = f"{JSON_V1}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
HEX_RE = re.compile(r"^[0-9a-f]+\Z")


class PageFormatError(ValueError):
    """The upstream answered something that is not a simple-API page."""


@dataclass(frozen=True)
class UpstreamLink:
    filename: str
    url: str  # absolute upstream URL, fragment removed
    sha256: str | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None
    core_metadata: bool  # upstream serves <url>.metadata
    core_metadata_sha256: str | None
    size: int | None
    upload_time: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> UpstreamLink:
        return UpstreamLink(**data)


@dataclass(frozen=True)
class UpstreamPage:
    name: str  # as upstream spells it (PEP 691 gives the normalized name)
    links: list[UpstreamLink]
    status: str | None = None
    status_reason: str | None = None


def _sha256(hashes: Any) -> str | None:
    if isinstance(hashes, dict):
        value = hashes.get("sha256")
        if isinstance(value, str) and len(value) == 64 and HEX_RE.match(value.lower()):
            return value.lower()
    return None


def _filename_from_url(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path.rsplit("/", 1)[-1])


def _safe_filename(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and name not in (".", "..")
        and (not any(ord(c) < 32 or ord(c) == 127 for c in name))
    )


def parse_json_page(body: bytes, page_url: str) -> UpstreamPage:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PageFormatError(f"invalid JSON from upstream: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise PageFormatError("upstream JSON page has no 'files' list")
    links = []
    for item in data["files"]:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        url, _ = urldefrag(urljoin(page_url, item["url"]))
        filename = item.get("filename") if isinstance(item.get("filename"), str) else None
        filename = filename or _filename_from_url(url)
        if not _safe_filename(filename):
            continue
        yanked = item.get("yanked", False)
        core = item.get("core-metadata", item.get("dist-info-metadata", False))
        size = item.get("size")
        upload_time = item.get("upload-time")
        requires_python = item.get("requires-python")
        links.append(
            UpstreamLink(
                filename=filename,
                url=url,
                sha256=_sha256(item.get("hashes")),
                requires_python=requires_python if isinstance(requires_python, str) else None,
                yanked=bool(yanked),
                yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
                core_metadata=bool(core),
                core_metadata_sha256=_sha256(core) if isinstance(core, dict) else None,
                size=size if isinstance(size, int) and size >= 0 else None,
                upload_time=upload_time if isinstance(upload_time, str) else None,
            )
        )
    status_obj = data.get("project-status")
    status = reason = None
    if isinstance(status_obj, dict):
        status = status_obj.get("status") if isinstance(status_obj.get("status"), str) else None
        reason = status_obj.get("reason") if isinstance(status_obj.get("reason"), str) else None
    name = data["name"] if isinstance(data.get("name"), str) else ""
    return UpstreamPage(name=name, links=links, status=status, status_reason=reason)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.anchors: list[dict[str, str | None]] = []
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        elif tag == "a" and values.get("href"):
            self.anchors.append(values)
        elif tag == "meta" and values.get("name") and values.get("content") is not None:
            self.meta[str(values["name"])] = str(values["content"])


def _fragment_sha256(fragment: str) -> str | None:
    algorithm, _, digest = fragment.partition("=")
    return _sha256({algorithm.lower(): digest.lower()}) if algorithm.lower() == "sha256" else None


def parse_html_page(body: bytes, page_url: str, charset: str = "utf-8") -> UpstreamPage:
    parser = _LinkParser()
    try:
        parser.feed(body.decode(charset or "utf-8", errors="replace"))
        parser.close()
    except Exception as exc:  # noqa: BLE001 - html.parser raises assorted errors
        raise PageFormatError(f"unreadable HTML from upstream: {exc}") from None
    base = urljoin(page_url, parser.base) if parser.base else page_url
    links = []
    for attrs in parser.anchors:
        full = urljoin(base, str(attrs["href"]))
        url, fragment = urldefrag(full)
        filename = _filename_from_url(url)
        if not _safe_filename(filename):
            continue
        yanked_attr = attrs.get("data-yanked", None) if "data-yanked" in attrs else None
        is_yanked = "data-yanked" in attrs
        core = attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata")
        core_sha = _fragment_sha256(core) if core and core != "true" else None
        links.append(
            UpstreamLink(
                filename=filename,
                url=url,
                sha256=_fragment_sha256(fragment) if fragment else None,
                requires_python=attrs.get("data-requires-python") or None,
                yanked=is_yanked,
                yanked_reason=yanked_attr or None,
                core_metadata=bool(core) and core != "false",
                core_metadata_sha256=core_sha,
                size=None,
                upload_time=None,
            )
        )
    return UpstreamPage(
        name="",
        links=links,
        status=parser.meta.get("pypi:project-status"),
        status_reason=parser.meta.get("pypi:project-status-reason"),
    )


def parse_project_list(body: bytes, content_type: str) -> list[str]:
    """Names from an upstream project list, in either format."""
    if content_type.startswith(JSON_V1):
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PageFormatError(f"invalid JSON project list from upstream: {exc}") from None
        projects = data.get("projects") if isinstance(data, dict) else None
        if not isinstance(projects, list):
            raise PageFormatError("upstream JSON project list has no 'projects'")
        return [
            p["name"] for p in projects if isinstance(p, dict) and isinstance(p.get("name"), str)
        ]
    parser = _LinkParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    names = []
    for attrs in parser.anchors:
        href = str(attrs["href"]).rstrip("/")
        names.append(unquote(href.rsplit("/", 1)[-1]))
    return names
