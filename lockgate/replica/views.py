"""The primary's side of replication: `/+changelog` (entries after a serial,
long-polled) and `/+blobs/{sha256}` (one stored file), for root only."""

from __future__ import annotations

import time
from dataclasses import dataclass

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
# Followers not heard from for this long are no longer shown on /+status.
FOLLOWER_FORGET_SECONDS = 24 * 3600.0


@dataclass
class SeenFollower:
    """A replica as the primary sees it: where it asked from and how far it had got."""

    address: str
    agent: str
    since: int  # the serial it had applied when it last asked
    last_seen: float  # time.time()


class FollowersSeen:
    """The replicas that read this node's changelog lately (in memory, per process)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], SeenFollower] = {}

    def note(self, address: str, agent: str, since: int) -> None:
        self._seen[(address, agent)] = SeenFollower(address, agent, since, time.time())

    def recent(self) -> list[SeenFollower]:
        cutoff = time.time() - FOLLOWER_FORGET_SECONDS
        for key in [key for key, seen in self._seen.items() if seen.last_seen < cutoff]:
            del self._seen[key]
        return sorted(self._seen.values(), key=lambda seen: seen.address)


FOLLOWERS_SEEN = web.AppKey("followers_seen", FollowersSeen)


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
    seen = request.app.get(FOLLOWERS_SEEN)
    if seen is not None:
        seen.note(request.remote or "", request.headers.get("User-Agent", "")[:100], since)
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
