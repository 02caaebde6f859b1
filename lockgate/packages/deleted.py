"""The deleted-release marks (`deleted_releases`) derived from a changelog, for a server
that had entries before the table existed (migration 0016).

The packages appliers keep the marks current entry by entry (`packages/entries.py`).
An existing server's history is walked here once, in serial order, with the same rules
the appliers follow, tracking only what they decide on: which releases and files each
index holds. Synchronous Core code, since Alembic runs it on its own connection.

- `file.add` (and each file a `release.push` copies) adds the file and its release and
  clears a mark of that version;
- `file.delete` removes the file, and marks and removes its release when no file is
  left;
- `release.delete` marks the release (when the index holds it) and removes it;
- `project.delete` marks every release the project still has and removes them;
- `index.delete` and `user.delete` take the marks of the indexes that go.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from sqlalchemy import Connection, delete, insert, select

from lockgate.changelog.models import ChangelogEntry
from lockgate.indexes.models import Index
from lockgate.packages.models import DeletedRelease

KINDS = (
    "file.add",
    "file.delete",
    "release.delete",
    "project.delete",
    "release.push",
    "index.delete",
    "user.delete",
)
BATCH = 1000

Key = tuple[str, str]  # (normalized project, version)


@dataclass
class _IndexState:
    projects: dict[str, str] = field(default_factory=dict)  # normalized -> display name
    releases: set[Key] = field(default_factory=set)
    files: dict[str, Key] = field(default_factory=dict)  # filename -> its release
    marks: dict[Key, tuple[str, str, str | None]] = field(default_factory=dict)

    def add_file(self, display: str, version: str, filename: str) -> None:
        key = (canonicalize_name(display), version)
        self.projects[key[0]] = display
        self.releases.add(key)
        self.files[filename] = key
        self.marks.pop(key, None)

    def drop_release(self, key: Key, at: str, actor: str | None) -> None:
        self.marks[key] = (self.projects.get(key[0], key[0]), at, actor)
        self.releases.discard(key)
        for filename in [name for name, held in self.files.items() if held == key]:
            del self.files[filename]


def _entries(conn: Connection) -> Iterator[tuple[str, dict[str, Any], str, str | None]]:
    result = conn.execute(
        select(
            ChangelogEntry.kind,
            ChangelogEntry.payload,
            ChangelogEntry.created_at,
            ChangelogEntry.actor,
        )
        .where(ChangelogEntry.kind.in_(KINDS))
        .order_by(ChangelogEntry.serial)
        .execution_options(yield_per=BATCH)  # this statement only, not the connection
    )
    for kind, payload, created_at, actor in result:
        yield kind, json.loads(payload), created_at, actor


def derive_marks(
    entries: Iterator[tuple[str, dict[str, Any], str, str | None]],
) -> dict[str, dict[Key, tuple[str, str, str | None]]]:
    """index path -> (project, version) -> (display name, deleted at, deleted by)."""
    indexes: dict[str, _IndexState] = {}

    def at(user: str, index: str) -> _IndexState:
        return indexes.setdefault(f"{user}/{index}", _IndexState())

    for kind, p, created_at, actor in entries:
        if kind == "file.add":
            at(p["user"], p["index"]).add_file(p["project"], p["version"], p["filename"])
        elif kind == "release.push":
            source = at(p["source_user"], p["source_index"])
            target = at(p["user"], p["index"])
            for pushed in p.get("files", []):
                held = source.files.get(pushed["filename"])
                if held is not None:
                    display = source.projects.get(held[0], held[0])
                    target.add_file(display, held[1], pushed["filename"])
        elif kind == "file.delete":
            state = at(p["user"], p["index"])
            key = state.files.pop(p["filename"], None)
            if key is not None and key not in state.files.values() and key in state.releases:
                state.drop_release(key, p.get("deleted_at") or created_at, actor)
        elif kind == "release.delete":
            state = at(p["user"], p["index"])
            key = (canonicalize_name(p["project"]), p["version"])
            if key in state.releases:
                state.drop_release(key, p.get("deleted_at") or created_at, actor)
        elif kind == "project.delete":
            state = at(p["user"], p["index"])
            name = canonicalize_name(p["project"])
            if name in state.projects:
                for key in sorted(k for k in state.releases if k[0] == name):
                    state.drop_release(key, p.get("deleted_at") or created_at, actor)
                del state.projects[name]
        elif kind == "index.delete":
            indexes.pop(f"{p['user']}/{p['name']}", None)
        elif kind == "user.delete":
            for path in [path for path in indexes if path.split("/", 1)[0] == p["name"]]:
                del indexes[path]
    return {path: state.marks for path, state in indexes.items() if state.marks}


def rebuild_deleted_releases(conn: Connection) -> int:
    """Replace every mark with the ones the changelog implies; how many."""
    marks = derive_marks(_entries(conn))
    ids = {
        f"{user}/{name}": index_id
        for index_id, user, name in conn.execute(select(Index.id, Index.user_name, Index.name))
    }
    conn.execute(delete(DeletedRelease))
    rows = [
        {
            "index_id": ids[path],
            "project": project,
            "display_name": display,
            "version": version,
            "deleted_at": deleted_at,
            "deleted_by": deleted_by,
        }
        for path, found in sorted(marks.items())
        if path in ids
        for (project, version), (display, deleted_at, deleted_by) in sorted(found.items())
    ]
    if rows:
        conn.execute(insert(DeletedRelease), rows)
    return len(rows)
