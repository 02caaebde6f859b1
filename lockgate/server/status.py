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
# Counting the blob store walks it: done in a thread, at most every ten seconds.
STORAGE_MEMO_SECONDS = 10.0
_storage_memo: dict[Path, tuple[float, dict[str, int]]] = {}


def _storage_use(serverdir: Path, blob_dir: Path) -> dict[str, int]:
    disk = shutil.disk_usage(serverdir)
    blobs = size = 0
    for root, _dirs, files in os.walk(blob_dir):
        for name in files:
            try:
                size += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed meanwhile (gc)
            blobs += 1
    return {
        "disk_total": disk.total,
        "disk_free": disk.free,
        "disk_used": disk.used,
        "blobs": blobs,
        "blob_bytes": size,
    }


async def storage_use(request: web.Request) -> dict[str, int]:
    settings = request.app[SETTINGS]
    now = time.monotonic()
    memo = _storage_memo.get(settings.serverdir)
    if memo is None or now - memo[0] > STORAGE_MEMO_SECONDS:
        use = await asyncio.to_thread(_storage_use, settings.serverdir, settings.blob_dir)
        memo = (now, use)
        _storage_memo[settings.serverdir] = memo
    return memo[1]


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
        "role": "replica" if follower is not None else "primary",
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
        "storage": await storage_use(request),
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
