"""`/+status`, and `/+changelog` for replicas (entries after a serial, long-polled)."""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import select

from lockgate import __version__
from lockgate.accounts.services import ROOT_USER
from lockgate.changelog.models import ChangelogEntry, ServerState
from lockgate.errors import BadRequest, Forbidden
from lockgate.indexes.models import Index
from lockgate.indexes.services import IndexView
from lockgate.mirror.pages import redact_url
from lockgate.server.auth import require_login
from lockgate.server.files import blob_response
from lockgate.server.keys import DATABASE, FOLLOWER, MIRROR
from lockgate.storage.blobs import SHA256_RE

MAX_WAIT_SECONDS = 60.0
MAX_ENTRIES = 1000


async def status(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    async with db.read() as session:
        state = (await session.execute(select(ServerState))).scalar_one()
        mirrors = [
            IndexView.from_row(row)
            for row in (await session.execute(select(Index).where(Index.type == "mirror")))
            .scalars()
            .all()
        ]
    mirror = request.app[MIRROR]
    upstream = mirror.upstream
    return web.json_response(
        {
            "integrity_alarms": mirror.integrity_alarms[-20:],
            "upstreams": {
                mirror.path: {
                    "url": redact_url(str(mirror.config.get("mirror_url", ""))),
                    "reachable": upstream.last_failure(mirror) is None,
                    "last_error": upstream.last_failure(mirror),
                }
                for mirror in mirrors
            },
            "role": "replica" if FOLLOWER in request.app else "primary",
            "replication": request.app[FOLLOWER].status() if FOLLOWER in request.app else None,
            "version": __version__,
            "server_id": state.server_id,
            "serial": state.serial,
            "last_hash": state.last_hash,
            "database": "sqlite" if db.sqlite else "postgresql",
        }
    )


def _int_param(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name!r} must be a number") from None
    if value < 0:
        raise BadRequest(f"{name!r} must not be negative")
    return value


async def changelog(request: web.Request) -> web.StreamResponse:
    db = request.app[DATABASE]
    # Entries carry password hashes: only root (replicas log in as root) reads them.
    async with db.read() as session:
        if await require_login(request, session) != ROOT_USER:
            raise Forbidden("only root may read the changelog")
    since = int(_int_param(request, "since", 0))
    wait = min(_int_param(request, "wait", 0), MAX_WAIT_SECONDS)
    # Only a caller exactly up to date waits; one ahead of us (a replica of a
    # server restored from an older backup) gets an answer at once.
    if db.serial == since and wait > 0:
        await db.wait_for_serial(since, wait)
    async with db.read() as session:
        entries = (
            await session.execute(
                select(ChangelogEntry)
                .where(ChangelogEntry.serial > since)
                .order_by(ChangelogEntry.serial)
                .limit(MAX_ENTRIES)
            )
        ).scalars()
        lines = [
            json.dumps(
                {
                    "serial": e.serial,
                    "created_at": e.created_at,
                    "kind": e.kind,
                    "payload": json.loads(e.payload),
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                },
                separators=(",", ":"),
            )
            for e in entries
        ]
    body = "".join(line + "\n" for line in lines)
    return web.Response(
        text=body,
        content_type="application/x-ndjson",
        headers={"X-Lockgate-Serial": str(db.serial)},
    )


async def blob(request: web.Request) -> web.StreamResponse:
    """`GET /+blobs/{sha256}`: one stored blob, for replicas (root only)."""
    sha256 = request.match_info["sha256"]
    if not SHA256_RE.match(sha256):
        raise BadRequest("a blob is named by its 64 lowercase hex sha256")
    async with request.app[DATABASE].read() as session:
        if await require_login(request, session) != ROOT_USER:
            raise Forbidden("only root may read blobs directly")
    return blob_response(request, sha256, "application/octet-stream")
