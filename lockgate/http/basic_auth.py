"""Credentials from the `Authorization` header (HTTP Basic)."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from lockgate.errors import Unauthorized

REALM = 'Basic realm="lockgate"'


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or "\x00" in decoded:
        # NUL can be stored by no database; such credentials are just wrong.
        return None
    return (user, password)


# devpi-client sends its login (user and the token /+login gave it, or a password)
# in its own header, leaving `Authorization` to a proxy in front of the server.
DEVPI_AUTH = "X-Devpi-Auth"


def devpi_credentials(request: web.Request) -> tuple[str, str] | None:
    """`X-Devpi-Auth: base64(user:secret)`, as devpi-client sends it; None when
    absent, 401 when it is not base64 of `user:secret` (rather than silently
    treating the caller as anonymous)."""
    encoded = request.headers.get(DEVPI_AUTH, "").strip()
    if not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    user, sep, secret = decoded.partition(":")
    if not sep or not user or "\x00" in decoded:
        raise Unauthorized(f"the {DEVPI_AUTH} header must be base64 of 'user:password'")
    return (user, secret)
