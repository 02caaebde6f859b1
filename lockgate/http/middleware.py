"""The request middleware: a request id and one access-log line per request, errors
mapped to HTTP in one place, read-your-writes waits (`X-Lockgate-Min-Serial`) and a
replica's refusal of writes, in one layer (see `request_middleware`)."""

from __future__ import annotations

import errno
import itertools
import os
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.errors import (
    BadRequest,
    Forbidden,
    LockgateError,
    ServiceUnavailable,
    Unauthorized,
)
from lockgate.http.basic_auth import REALM
from lockgate.http.requests import json_body
from lockgate.logs import access_logger

log = structlog.get_logger("lockgate.http")

# The devpi JSON API version lockgate speaks (devpi-server's since 2.0).
DEVPI_API_VERSION = "2"

#: This worker's name (its pid by default), sent as X-Lockgate-Worker on every answer.
WORKER = web.AppKey("worker", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A page for a browser's error (status, message, extra headers), or None for a JSON or
# plain-text answer. Registered by the wiring (the web layer renders it), so this
# plumbing knows nothing of templates.
ErrorPageRenderer = Callable[
    [web.Request, int, str, dict[str, str]], Awaitable[web.StreamResponse | None]
]
ERROR_PAGES: web.AppKey[ErrorPageRenderer] = web.AppKey("error_pages")


def _reason(message: str) -> str:
    # The HTTP reason phrase carries the message too (twine shows it); it must
    # be one line; aiohttp writes it as UTF-8, which clients decode as latin-1,
    # so anything beyond ASCII is escaped rather than garbled.
    line = " ".join(message.split())
    return line.encode("ascii", "backslashreplace").decode("ascii")[:300]


def error_response(
    request: web.Request, status: int, message: str, extra: dict[str, str] | None = None
) -> web.Response:
    headers = dict(extra or {})
    if status == 401:
        headers["WWW-Authenticate"] = REALM
    accept = request.headers.get("Accept", "")
    if "application/json" in accept or request.content_type == "application/json":
        # Clients asking for JSON (devpi-client) get the standard reason phrase: they
        # print the reason and then the message, which would say it twice.
        reason = None if "application/json" in accept else _reason(message)
        return json_body(
            {"message": message, "status": status}, status=status, reason=reason, headers=headers
        )
    return web.Response(
        status=status,
        reason=_reason(message),
        text=message + "\n",
        content_type="text/plain",
        headers=headers,
    )


async def _error(
    request: web.Request, status: int, message: str, extra: dict[str, str] | None = None
) -> web.StreamResponse:
    """A browser's error page where one is registered, else `error_response`."""
    renderer = request.app.get(ERROR_PAGES)
    if renderer is not None:
        headers = dict(extra or {})
        if status == 401:
            headers["WWW-Authenticate"] = REALM
        try:
            page = await renderer(request, status, message, headers)
        except Exception:  # noqa: BLE001 - a broken error page must not hide the error
            log.warning("could not render an error page", status=status, exc_info=True)
            page = None
        if page is not None:
            return page
    return error_response(request, status, message, extra)


async def _map_error(request: web.Request, exc: Exception) -> web.StreamResponse | None:
    """The answer for a domain error, an HTTP error with a text body or a full disk;
    None for anything else (re-raised: redirects, or a 500 the access log records)."""
    if isinstance(exc, LockgateError):
        if isinstance(exc, Unauthorized):
            structlog.contextvars.bind_contextvars(auth_failed=True)
        return await _error(request, exc.status, exc.message, exc.headers)
    if isinstance(exc, web.HTTPException):
        if exc.status >= 400 and exc.text and exc.content_type == "text/plain":
            response = await _error(request, exc.status, exc.text.strip())
            if "Allow" in exc.headers:  # a 405 must say what is allowed
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        return None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # Disk full: nothing was committed (blobs are written before rows).
        log.error("storage full", path=request.path)
        return await _error(
            request, 507, "the server's storage is full; nothing was stored, try again later"
        )
    return None


MAX_SERIAL_WAIT = 30.0


async def _wait_for_min_serial(request: web.Request) -> None:
    """`X-Lockgate-Min-Serial: N` (the serial a primary returned after a write):
    wait until this node has applied it, so a read from a replica sees the write."""
    wanted = request.headers.get("X-Lockgate-Min-Serial", "").strip()
    if wanted:
        if not wanted.isdigit():
            raise BadRequest("X-Lockgate-Min-Serial must be a serial number")
        db = request.app[DATABASE]
        if db.serial < int(wanted) and not await db.wait_for_serial(
            int(wanted) - 1, MAX_SERIAL_WAIT
        ):
            raise ServiceUnavailable(
                f"this node has not reached serial {wanted} yet (it is at {db.serial}); "
                "try again shortly"
            )


# Request ids: unique per process start (a random prefix) and cheap (a counter),
# instead of a uuid4 per request.
_ID_PREFIX = os.urandom(4).hex()
_REQUEST_IDS = itertools.count(1)
_READS = frozenset(("GET", "HEAD", "OPTIONS"))


def request_middleware(read_only: bool) -> Middleware:
    """One middleware for what every request needs: a request id, one access-log line,
    errors mapped to answers, `X-Lockgate-Min-Serial` waits, a replica's refusal of
    writes (`read_only`), and the X-Lockgate-Serial and X-Lockgate-Worker headers.
    One layer rather than four: each aiohttp middleware costs a coroutine and a
    wrapper per request, a measurable part of a cached page's time."""
    access = access_logger()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        structlog.contextvars.clear_contextvars()
        headers = request.headers
        request_id = headers.get("X-Request-Id") or f"{_ID_PREFIX}{next(_REQUEST_IDS):08x}"
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        auth_failed = False
        try:
            try:
                if read_only and request.method not in _READS:
                    raise Forbidden(
                        "this server is a read-only replica of "
                        f"{request.app[SETTINGS].primary_url}; "
                        "send writes (uploads, users, indexes) to the primary"
                    )
                if "X-Lockgate-Min-Serial" in headers:
                    await _wait_for_min_serial(request)
                response = await handler(request)
            except Exception as exc:
                mapped = await _map_error(request, exc)
                if mapped is None:
                    raise
                auth_failed = isinstance(exc, Unauthorized)
                response = mapped
            status = response.status
            if not response.prepared:
                # Every answer says how far this node's state goes: a replica waits
                # for it after asking its primary, a client can ask a replica for it.
                out = response.headers
                out["X-Lockgate-Serial"] = str(request.app[DATABASE].serial)
                out["X-Lockgate-Worker"] = request.app[WORKER]
                if "application/json" in headers.get("Accept", ""):
                    # devpi-client warns on every answer that lacks its API version.
                    out["X-Devpi-Api-Version"] = DEVPI_API_VERSION
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            log.exception("unhandled error", method=request.method, path=request.path)
            raise
        finally:
            access(
                request.method,
                request.path,
                status,
                round((time.perf_counter() - started) * 1000, 2),
                request_id,
                auth_failed,
            )

    return middleware
