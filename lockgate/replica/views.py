"""The primary's side of replication: `/+changelog` (entries after a serial,
long-polled) and `/+blobs/{sha256}` (one stored file), for root only."""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.auth import require_login
from lockgate.accounts.services import ROOT_USER
from lockgate.changelog.codec import encode_line
from lockgate.changelog.replay import read_entries
from lockgate.db.session import DATABASE
from lockgate.errors import BadRequest, Forbidden
from lockgate.http.files import blob_response
from lockgate.storage.blobs import SHA256_RE

MAX_WAIT_SECONDS = 60.0
MAX_ENTRIES = 1000


def _number_param(request: web.Request, name: str, default: float) -> float:
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


async def _require_root(request: web.Request, what: str) -> None:
    # Entries carry password and token hashes: only root reads them, a replica with a
    # `replicate` token of root's.
    principal = await require_login(request)
    if principal.user != ROOT_USER:
        raise Forbidden(f"only root may read {what}")
    principal.require("replicate")


async def changelog(request: web.Request) -> web.StreamResponse:
    db = request.app[DATABASE]
    await _require_root(request, "the changelog")
    since = int(_number_param(request, "since", 0))
    wait = min(_number_param(request, "wait", 0), MAX_WAIT_SECONDS)
    # Only a caller exactly up to date waits; one ahead of us (a replica of a
    # server restored from an older backup) gets an answer at once.
    if db.serial == since and wait > 0:
        await db.wait_for_serial(since, wait)
    async with db.read() as session:
        entries = await read_entries(session, since, limit=MAX_ENTRIES)
    body = "".join(encode_line(entry) + "\n" for entry in entries)
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
    await _require_root(request, "blobs directly")
    return blob_response(request, sha256, "application/octet-stream")
