"""Who is asking: HTTP Basic credentials checked against the users table.

Authentication always finishes before a write transaction opens: the user row
is read in a short read transaction and the password is checked (scrypt, tens
of milliseconds) outside any transaction, so a slow or failing login never holds
the writers' lock (docs/architecture.md, "Invariants").
"""

from __future__ import annotations

from aiohttp import web

from lockgate.accounts.credentials import CREDENTIALS
from lockgate.accounts.services import password_hash_of
from lockgate.db.session import DATABASE
from lockgate.errors import Unauthorized
from lockgate.http.basic_auth import basic_credentials

LOGIN_REQUIRED = "authentication required: send your lockgate user name and password"


async def credentials_valid(request: web.Request, name: str, password: str) -> bool:
    async with request.app[DATABASE].read() as session:
        stored = await password_hash_of(session, name)
    return await request.app[CREDENTIALS].check(name, password, stored, request.remote)


async def authenticate(request: web.Request) -> str | None:
    """The user name for valid credentials, None without credentials; 401 when wrong."""
    credentials = basic_credentials(request)
    if credentials is None:
        return None
    name, password = credentials
    if not await credentials_valid(request, name, password):
        raise Unauthorized("invalid user name or password")
    return name


async def require_login(request: web.Request) -> str:
    name = await authenticate(request)
    if name is None:
        raise Unauthorized(LOGIN_REQUIRED)
    return name
