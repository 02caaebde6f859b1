"""The application factory: `create_app(settings)` wires every concern together."""

from __future__ import annotations

import asyncio
import contextlib
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
from lockgate.egress import EGRESS, EgressPolicy
from lockgate.hooks.sender import HOOKS, HookSender
from lockgate.http.middleware import (
    error_middleware,
    logging_middleware,
    min_serial_middleware,
    read_only_middleware,
)
from lockgate.http.pagecache import FILES, PAGES, PageCache, SerialMemo
from lockgate.mirror.services import MIRROR, MirrorService
from lockgate.mirror.upstream import UpstreamClient
from lockgate.replica.client import PRIMARY, PrimaryClient
from lockgate.replica.follower import FOLLOWER, Follower
from lockgate.server.routes import setup_routes
from lockgate.storage.blobs import BLOBS, BlobStore

log = structlog.get_logger("lockgate.server")

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


async def _replica_ctx(app: web.Application) -> AsyncIterator[None]:
    """On a replica: the client towards the primary and the follow loop."""
    primary = PrimaryClient(app[SETTINGS])
    await primary.start()
    app[PRIMARY] = primary
    follower = Follower(app[DATABASE], app[BLOBS], primary, app[REGISTRY])
    app[FOLLOWER] = follower
    async with _in_background(follower.run()):
        yield
    await primary.close()


async def _hooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every node derives the deliveries its hooks are owed; only a primary sends."""
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
    async with _in_background(sender.run()):
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


def create_app(settings: Settings) -> web.Application:
    middlewares: list[Middleware] = [logging_middleware, error_middleware, min_serial_middleware]
    if settings.is_replica:
        middlewares.append(read_only_middleware)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES,
    )
    app[SETTINGS] = settings
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
    app.on_shutdown.append(_wake_long_polls)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_serial_watch_ctx)
    if settings.is_replica:
        app.cleanup_ctx.append(_replica_ctx)
    app.cleanup_ctx.append(_mirror_ctx)
    app.cleanup_ctx.append(_hooks_ctx)
    setup_routes(app)
    return app
