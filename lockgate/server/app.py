"""The application factory: `create_app(settings)` wires every concern together."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from lockgate.accounts.credentials import CREDENTIALS, CredentialCache
from lockgate.accounts.sessions import SESSIONS, SessionKeys, ensure_session_key
from lockgate.changelog.registry import REGISTRY
from lockgate.config import SETTINGS, Settings
from lockgate.db.session import DATABASE, Database
from lockgate.domains import build_registry
from lockgate.downloads.services import DOWNLOADS, DownloadCounter
from lockgate.egress import EGRESS, EgressPolicy
from lockgate.hooks.sender import HOOKS, HookSender
from lockgate.http.middleware import ERROR_PAGES, WORKER, request_middleware
from lockgate.http.pagecache import FILES, PAGES, PageCache, SerialMemo
from lockgate.mirror.services import MIRROR, MirrorService
from lockgate.mirror.upstream import UpstreamClient
from lockgate.replica.client import PRIMARY, PrimaryClient
from lockgate.replica.follower import FOLLOWER, Follower
from lockgate.replica.views import FOLLOWERS_SEEN, FollowersSeen
from lockgate.server.routes import setup_routes
from lockgate.storage.blobs import BLOBS, BlobStore
from lockgate.web.errors import error_page

log = structlog.get_logger("lockgate.server")

LEADER = web.AppKey("leader", bool)

# Headroom over the file size limit for the form fields around the file.
UPLOAD_OVERHEAD_BYTES = 32 * 1024 * 1024


@contextlib.asynccontextmanager
async def _in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` as a task for the life of the block; cancelled when it ends."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    database = Database(app[SETTINGS].db_url)
    await database.load_serial()
    app[DATABASE] = database
    yield
    await database.dispose()


async def _wake_long_polls(app: web.Application) -> None:
    await app[DATABASE].wake_waiters()


SERIAL_POLL_SECONDS = 0.5


async def _serial_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Notice commits made by other processes (another worker, `lockgate gc`):
    page caches and changelog long-polls key on the serial, so it must move
    whoever wrote."""
    database = app[DATABASE]

    async def watch() -> None:
        while True:
            await asyncio.sleep(SERIAL_POLL_SECONDS)
            try:
                await database.load_serial()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the watch
                log.warning("could not read the current serial", exc_info=True)

    async with _in_background(watch()):
        yield


async def _downloads_ctx(app: web.Application) -> AsyncIterator[None]:
    """Download counts: kept in memory, flushed in batches and once more at shutdown."""
    counter = DownloadCounter(app[DATABASE])
    app[DOWNLOADS] = counter
    async with _in_background(counter.run()):
        yield
    try:
        await counter.flush()
    except Exception:  # noqa: BLE001 - shutting down: log, and lose this one batch
        log.warning("could not write the last download counts", exc_info=True)


async def _replica_ctx(app: web.Application) -> AsyncIterator[None]:
    """On a replica: the client towards the primary (every worker streams misses
    from it) and the follow loop (the leader worker only: one applier per node)."""
    primary = PrimaryClient(app[SETTINGS])
    await primary.start()
    app[PRIMARY] = primary
    if app[LEADER]:
        follower = Follower(app[DATABASE], app[BLOBS], primary, app[REGISTRY])
        app[FOLLOWER] = follower
        async with _in_background(follower.run()):
            yield
    else:
        yield
    await primary.close()


async def _hooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every node derives the deliveries its hooks are owed; only a primary sends.
    Within a node only the leader worker walks and sends (the others' views only
    wake it, which in another worker means: at its next serial change or idle round)."""
    settings = app[SETTINGS]
    base_url = settings.public_url or f"http://{settings.host}:{settings.port}"
    sender = HookSender(
        app[DATABASE],
        EgressPolicy.with_proxies(settings.hook_allow, "hook_allow"),
        base_url,
        sends=not settings.is_replica,
    )
    await sender.start()
    app[HOOKS] = sender
    if app[LEADER]:
        async with _in_background(sender.run()):
            yield
    else:
        yield
    await sender.close()


async def _mirror_ctx(app: web.Application) -> AsyncIterator[None]:
    upstream = UpstreamClient(app[EGRESS])
    await upstream.start()
    primary = app.get(PRIMARY, None)
    app[MIRROR] = MirrorService(app[DATABASE], upstream, app[BLOBS], primary)
    yield
    await app[MIRROR].close()
    await upstream.close()


async def _announce(app: web.Application) -> None:
    # Which worker runs the once-per-server loops (tests and operators read this).
    log.info("worker started", worker=app[WORKER], leader=app[LEADER])


def create_app(settings: Settings, *, leader: bool = True, worker: str = "") -> web.Application:
    """`leader`: this worker runs the once-per-server loops (see server/workers.py);
    `worker`: its name in the X-Lockgate-Worker header (default: the pid)."""
    middlewares: list[Middleware] = [request_middleware(read_only=settings.is_replica)]
    app = web.Application(
        middlewares=middlewares,
        client_max_size=settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES,
    )
    app[SETTINGS] = settings
    app[LEADER] = leader
    app[WORKER] = worker or str(os.getpid())
    app[REGISTRY] = build_registry()
    app[EGRESS] = EgressPolicy.with_proxies(settings.upstream_allow)
    blobs = BlobStore(settings.blob_dir, settings.tmp_dir)
    blobs.ensure_dirs()
    app[BLOBS] = blobs
    app[CREDENTIALS] = CredentialCache()
    # Browser sessions are signed with the server directory's key (shared by its workers).
    app[SESSIONS] = SessionKeys(ensure_session_key(settings.serverdir))
    app[PAGES] = PageCache()
    app[FILES] = SerialMemo()
    app[ERROR_PAGES] = error_page
    app[FOLLOWERS_SEEN] = FollowersSeen()
    app.on_startup.append(_announce)
    app.on_shutdown.append(_wake_long_polls)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_serial_watch_ctx)
    app.cleanup_ctx.append(_downloads_ctx)
    if settings.is_replica:
        app.cleanup_ctx.append(_replica_ctx)
    app.cleanup_ctx.append(_mirror_ctx)
    app.cleanup_ctx.append(_hooks_ctx)
    setup_routes(app)
    return app
