"""Domain errors carrying an HTTP status and a message a person can act on.

They are raised anywhere below the HTTP layer and mapped to responses in one
place (`http/middleware.py`).
"""

from __future__ import annotations


class LockgateError(Exception):
    status = 500

    def __init__(
        self, message: str, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        if status is not None:
            self.status = status


class BadRequest(LockgateError):
    status = 400


class Unauthorized(LockgateError):
    status = 401


class Forbidden(LockgateError):
    status = 403


class NotFound(LockgateError):
    status = 404


class Conflict(LockgateError):
    status = 409


class ServiceUnavailable(LockgateError):
    status = 503


class TooManyRequests(LockgateError):
    status = 429


class NotAcceptable(LockgateError):
    status = 406


class BadGateway(LockgateError):
    """Something this server fetched for the request (an upstream, the primary) failed."""

    status = 502
