"""`GET /+status`: this node's role, serial, replication lag and upstream health."""

from __future__ import annotations

from aiohttp import web

from lockgate import __version__
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.db.state import require_state
from lockgate.indexes.services import mirror_indexes
from lockgate.mirror.services import MIRROR
from lockgate.replica.follower import FOLLOWER
from lockgate.urls import redact_url

MAX_ALARMS_SHOWN = 20


async def status(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    async with db.read() as session:
        state = await require_state(session)
        mirrors = await mirror_indexes(session)
    mirror = request.app[MIRROR]
    upstream = mirror.upstream
    follower = request.app.get(FOLLOWER)
    return web.json_response(
        {
            "integrity_alarms": mirror.integrity_alarms[-MAX_ALARMS_SHOWN:],
            "upstreams": {
                index.path: {
                    "url": redact_url(index.mirror.mirror_url),
                    "reachable": upstream.last_failure(index) is None,
                    "last_error": upstream.last_failure(index),
                }
                for index in mirrors
            },
            "role": "replica" if request.app[SETTINGS].is_replica else "primary",
            # Only the leader worker follows; another worker of a replica says null here.
            "replication": follower.status() if follower is not None else None,
            "version": __version__,
            "server_id": state.server_id,
            "serial": state.serial,
            "last_hash": state.last_hash,
            "database": "sqlite" if db.sqlite else "postgresql",
        }
    )
