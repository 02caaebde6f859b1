"""`lockgate log`: the changelog with who caused each entry, read from the server
directory (works beside a running server; it only reads)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from packaging.utils import canonicalize_name

from lockgate.changelog.codec import Entry
from lockgate.changelog.replay import read_entries
from lockgate.cli.common import SERVERDIR_OPTION, ready_settings
from lockgate.db.session import Database
from lockgate.distfiles import project_from_filename

PAGE = 5000


def _index_of(entry: Entry) -> str | None:
    """The index an entry is about: `user`/`index` keys, or `user`/`name` of index entries."""
    payload = entry.payload
    key = "name" if entry.kind.startswith("index.") else "index"
    user, index = payload.get("user"), payload.get(key)
    if isinstance(user, str) and isinstance(index, str):
        return f"{user}/{index}"
    return None


def _project_of(payload: dict[str, Any]) -> str | None:
    if isinstance(payload.get("project"), str):
        return canonicalize_name(payload["project"])
    if isinstance(payload.get("filename"), str):
        return project_from_filename(payload["filename"])
    return None


def _subject(entry: Entry) -> str:
    payload = entry.payload
    parts = [
        part
        for part in (
            _index_of(entry),
            payload.get("project") if isinstance(payload.get("project"), str) else None,
            payload.get("version") if isinstance(payload.get("version"), str) else None,
            payload.get("filename") if isinstance(payload.get("filename"), str) else None,
        )
        if part
    ]
    if not parts and isinstance(payload.get("name"), str) and not entry.kind.startswith("index."):
        parts.append(payload["name"])
    return " ".join(parts)


def matches(entry: Entry, index: str | None, project: str | None) -> bool:
    if index is not None and _index_of(entry) != index:
        return False
    return project is None or _project_of(entry.payload) == canonicalize_name(project)


@click.command("log")
@SERVERDIR_OPTION
@click.option("--index", default=None, help="Only entries about USER/INDEX.")
@click.option("--project", default=None, help="Only entries about this project.")
@click.option("--since", type=int, default=0, show_default=True, help="Entries after this serial.")
def log_command(serverdir: Path | None, index: str | None, project: str | None, since: int) -> None:
    """List changelog entries: serial, time, who caused them, what they changed."""
    settings = ready_settings(serverdir)

    async def run() -> None:
        db = Database(settings.db_url)
        try:
            after = since
            while True:
                async with db.read() as session:
                    entries = await read_entries(session, after, limit=PAGE)
                for entry in entries:
                    if matches(entry, index, project):
                        actor = str(entry.caused_by() or "-")
                        click.echo(
                            f"{entry.serial}\t{entry.created_at}\t{actor}\t{entry.kind}\t"
                            f"{_subject(entry)}"
                        )
                if len(entries) < PAGE:
                    break
                after = entries[-1].serial
        finally:
            await db.dispose()

    asyncio.run(run())
