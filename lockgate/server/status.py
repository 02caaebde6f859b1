"""`GET /+status`: this node's role, serial, replication (its primary, or the replicas
following it) and their lag, upstream health, hook backlog, disk and blob use — JSON for
scripts and monitoring, a page for browsers (`page_or` in the route table)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from lockgate import __version__
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.db.state import require_state
from lockgate.hooks.services import delivery_backlog
from lockgate.indexes.services import mirror_indexes
from lockgate.mirror.services import MIRROR
from lockgate.replica.follower import FOLLOWER
from lockgate.replica.views import FOLLOWERS_SEEN
from lockgate.urls import redact_url
from lockgate.web.templates import render_page

MAX_ALARMS_SHOWN = 20
# Counting the blob store walks it (a million files take seconds): it runs in a thread in
# the background, at most once a minute, and /+status shows the last count and its age.
BLOB_COUNT_SECONDS = 60.0


class BlobCount:
    """The last count of the blob store and when it was made; recounted in the background."""

    def __init__(self) -> None:
        self.use: dict[str, int] | None = None
        self.counted_at: float | None = None  # time.time()
        self._task: asyncio.Task[None] | None = None

    def refresh(self, blob_dir: Path) -> None:
        stale = self.counted_at is None or time.time() - self.counted_at > BLOB_COUNT_SECONDS
        if stale and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._count(blob_dir))

    async def _count(self, blob_dir: Path) -> None:
        self.use = await asyncio.to_thread(_count_blobs, blob_dir)
        self.counted_at = time.time()


def _count_blobs(blob_dir: Path) -> dict[str, int]:
    blobs = size = 0
    for root, _dirs, files in os.walk(blob_dir):
        for name in files:
            try:
                size += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed meanwhile (gc)
            blobs += 1
    return {"blobs": blobs, "blob_bytes": size}


_BLOB_COUNTS: dict[Path, BlobCount] = {}


def storage_use(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    disk = shutil.disk_usage(settings.serverdir)  # one statvfs: cheap
    count = _BLOB_COUNTS.setdefault(settings.serverdir, BlobCount())
    count.refresh(settings.blob_dir)
    return {
        "disk_total": disk.total,
        "disk_free": disk.free,
        "disk_used": disk.used,
        # None until the first count is done
        "blobs": count.use["blobs"] if count.use else None,
        "blob_bytes": count.use["blob_bytes"] if count.use else None,
        "blobs_counted_seconds_ago": (
            round(time.time() - count.counted_at, 1) if count.counted_at is not None else None
        ),
    }


async def gather_status(request: web.Request) -> dict[str, Any]:
    db = request.app[DATABASE]
    async with db.read() as session:
        state = await require_state(session)
        mirrors = await mirror_indexes(session)
        hooks = await delivery_backlog(session)
    mirror = request.app[MIRROR]
    upstream = mirror.upstream
    follower = request.app.get(FOLLOWER)
    seen = request.app.get(FOLLOWERS_SEEN)
    now = time.time()
    return {
        "integrity_alarms": mirror.integrity_alarms[-MAX_ALARMS_SHOWN:],
        "upstreams": {
            index.path: {
                "url": redact_url(index.mirror.mirror_url),
                "reachable": upstream.last_failure(index) is None,
                "last_error": upstream.last_failure(index),
            }
            for index in sorted(mirrors, key=lambda index: index.path)
        },
        "role": "replica" if request.app[SETTINGS].is_replica else "primary",
        # Only the leader worker follows; another worker of a replica says null here.
        "replication": follower.status() if follower is not None else None,
        "followers": [
            {
                "address": one.address,
                "agent": one.agent,
                "serial": one.since,
                "lag": max(0, state.serial - one.since),
                "seconds_since_contact": round(now - one.last_seen, 1),
            }
            for one in (seen.recent() if seen is not None else [])
        ],
        "hooks": hooks,
        "storage": storage_use(request),
        "version": __version__,
        "server_id": state.server_id,
        "serial": state.serial,
        "last_hash": state.last_hash,
        "database": "sqlite" if db.sqlite else "postgresql",
    }


async def status(request: web.Request) -> web.Response:
    return web.json_response(await gather_status(request))


async def status_page(request: web.Request) -> web.Response:
    """`/+status` for a browser: the same facts, as a page."""
    return await render_page(request, "status.html", info=await gather_status(request))
