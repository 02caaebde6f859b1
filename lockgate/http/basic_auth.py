"""Credentials from the `Authorization` header (HTTP Basic)."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

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
