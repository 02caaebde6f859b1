"""Which changelog entries are hook events, and what a hook is told about them.

An event names the index, project, version and files (absolute URLs and sha256),
who caused it and its serial. File URLs are absolute: they use the server's
`--public-url` (set it so CI reaches the files by the name it knows the server by).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.changelog.codec import Entry
from lockgate.distfiles import project_from_filename, version_from_filename
from lockgate.packages.services import release_files
from lockgate.urls import file_key, file_path

# Entry kind -> event name.
EVENT_OF_KIND = {
    "file.add": "upload",
    "release.yank": "yank",
    "release.delete": "delete",
    "file.delete": "delete",
    "project.delete": "delete",
    "release.push": "push",  # "promote" when the server pushed by itself
    "test.result": "test-result",
}


@dataclass(frozen=True)
class HookEvent:
    name: str
    index: str  # user/index
    body: dict[str, Any]


def _file(base_url: str, index: str, filename: str, sha256: str) -> dict[str, str]:
    return {
        "filename": filename,
        "url": base_url + file_path(index, file_key(sha256), filename),
        "sha256": sha256,
    }


async def event_of(session: AsyncSession, entry: Entry, base_url: str) -> HookEvent | None:
    """The hook event an entry is, or None; reads the state for what the entry omits."""
    name = EVENT_OF_KIND.get(entry.kind)
    payload = entry.payload
    if name is None or not isinstance(payload.get("user"), str):
        return None
    user, index_name = payload["user"], payload["index"]
    index = f"{user}/{index_name}"
    project, version = payload.get("project"), payload.get("version")
    files: list[dict[str, str]] = []
    if entry.kind == "release.push" and entry.actor == "system":
        name = "promote"
    if entry.kind == "test.result":
        project = project_from_filename(payload["filename"])
        version = version_from_filename(payload["filename"])
        files = [
            _file(base_url, index, filename, sha256)
            for filename, sha256 in await release_files(session, user, index_name, project, version)
            if filename == payload["filename"]
        ]
    if entry.kind == "file.add":
        files = [_file(base_url, index, payload["filename"], payload["sha256"])]
    if entry.kind == "release.push":
        files = [_file(base_url, index, f["filename"], f["sha256"]) for f in payload["files"]]
    elif entry.kind == "release.yank" and project and version:
        files = [
            _file(base_url, index, filename, sha256)
            for filename, sha256 in await release_files(session, user, index_name, project, version)
        ]
    body: dict[str, Any] = {
        "event": name,
        "index": index,
        "project": project,
        "version": version,
        "files": files,
        "actor": entry.actor,
        "actor_token": entry.actor_token,
        "serial": entry.serial,
        "created_at": entry.created_at,
    }
    if entry.kind == "release.yank":
        body["yanked"] = payload.get("yanked")
        body["reason"] = payload.get("reason")
    if entry.kind == "file.delete":
        body["filename"] = payload.get("filename")
    if entry.kind == "release.push":
        body["source_index"] = f"{payload['source_user']}/{payload['source_index']}"
    if entry.kind == "test.result":
        body["environment"] = payload.get("environment")
        body["outcome"] = payload.get("outcome")
    if files:
        # Where CI posts its results: the sdist's file URL when there is one.
        body["results_url"] = files[0]["url"]
    return HookEvent(name, index, body)
