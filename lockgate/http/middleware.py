"""Middleware: request logging with a request id, errors mapped to HTTP in one place,
read-your-writes waits (`X-Lockgate-Min-Serial`) and a replica's refusal of writes."""

from __future__ import annotations

import errno
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

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

log = structlog.get_logger("lockgate.http")

# The devpi JSON API version lockgate speaks (devpi-server's since 2.0).
DEVPI_API_VERSION = "2"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LockgateError as exc:
        if isinstance(exc, Unauthorized):
            structlog.contextvars.bind_contextvars(auth_failed=True)
        return error_response(request, exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.text and exc.content_type == "text/plain":
            response = error_response(request, exc.status, exc.text.strip())
            if "Allow" in exc.headers:  # a 405 must say what is allowed
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # Disk full: nothing was committed (blobs are written before rows).
            log.error("storage full", path=request.path)
            return error_response(
                request, 507, "the server's storage is full; nothing was stored, try again later"
            )
        raise


@web.middleware
async def logging_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    structlog.contextvars.clear_contextvars()
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            # Every answer says how far this node's state goes: a replica waits
            # for it after asking its primary, a client can ask a replica for it.
            response.headers["X-Lockgate-Serial"] = str(request.app[DATABASE].serial)
            if "application/json" in request.headers.get("Accept", ""):
                # devpi-client warns on every answer that lacks its API version.
                response.headers["X-Devpi-Api-Version"] = DEVPI_API_VERSION
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        log.exception("unhandled error", method=request.method, path=request.path)
        raise
    finally:
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )


MAX_SERIAL_WAIT = 30.0


@web.middleware
async def min_serial_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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
    return await handler(request)


@web.middleware
async def read_only_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On a replica: every write is refused, naming the primary to send it to."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        raise Forbidden(
            f"this server is a read-only replica of {request.app[SETTINGS].primary_url}; "
            "send writes (uploads, users, indexes) to the primary"
        )
    return await handler(request)
