"""Who is asking: a user with a password, or an API token, from the request's
`Authorization` header (HTTP Basic, or `Bearer` for a token), or from devpi-client's
`X-Devpi-Auth` header (user and password, or user and the token `/+login` issued),
which wins when both are sent (devpi-client leaves `Authorization` to a proxy).

Authentication always finishes before a write transaction opens: rows are read
in short read transactions and a password is checked (scrypt, tens of
milliseconds) outside any transaction, so a slow or failing login never holds
the writers' lock (docs/architecture.md, "Views, services, transactions").
A token check is one lookup of the secret's sha256.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from aiohttp import web

from lockgate.accounts.credentials import CREDENTIALS, VERIFIED_TTL
from lockgate.accounts.passwords import hash_password, needs_rehash
from lockgate.accounts.services import ROOT_USER, password_hash_of, replace_password_hash
from lockgate.accounts.sessions import browser_session
from lockgate.accounts.tokens import (
    TOKEN_USER,
    TokenInfo,
    is_wellformed_secret,
    looks_like_secret,
    note_use,
    token_for_secret,
)
from lockgate.changelog.codec import Actor
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE
from lockgate.errors import Forbidden, LockgateError, ServiceUnavailable, Unauthorized
from lockgate.http.basic_auth import DEVPI_AUTH, basic_credentials, devpi_credentials

log = structlog.get_logger("lockgate.auth")

WRONG_PASSWORD = "invalid user name or password"
LOGIN_REQUIRED = "authentication required: send your lockgate user name and password"
# How often the "last used" time of one token is written (per node).
TOKEN_USE_INTERVAL = 60.0


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, with a token's limits when a token was used."""

    user: str
    token_id: str | None = None
    scopes: frozenset[str] | None = None  # None: a password login may do all its user may
    indexes: tuple[str, ...] | None = None  # None: not limited to some indexes

    @property
    def actor(self) -> Actor:
        """Who the changelog records for this caller's changes."""
        return Actor(self.user, self.token_id)

    @property
    def is_root(self) -> bool:
        return self.user == ROOT_USER

    def allows(self, scope: str, index: str | None = None) -> bool:
        if self.scopes is not None and scope not in self.scopes:
            return False
        return index is None or self.indexes is None or index in self.indexes

    def require(self, scope: str, index: str | None = None) -> None:
        """Forbidden unless this caller's token (if any) carries `scope` (for `index`)."""
        if self.scopes is not None and scope not in self.scopes:
            raise Forbidden(
                f"this token ({self.token_id}) lacks the {scope!r} scope; "
                f"it has: {', '.join(sorted(self.scopes))}"
            )
        if index is not None and self.indexes is not None and index not in self.indexes:
            raise Forbidden(
                f"this token ({self.token_id}) is limited to {', '.join(self.indexes)}, not {index}"
            )


async def credentials_valid(request: web.Request, name: str, password: str) -> bool:
    async with request.app[DATABASE].read() as session:
        stored = await password_hash_of(session, name)
    ok = await request.app[CREDENTIALS].check(name, password, stored, request.remote)
    if ok and stored is not None:
        await rehash_if_imported(request, name, password, stored)
    return ok


async def rehash_if_imported(request: web.Request, name: str, password: str, stored: str) -> str:
    """After a successful check: replace a hash brought from devpi by lockgate's own,
    now that the password is known to match; returns the hash the user has now.
    Hashed in a thread before the (short) write transaction, which changes nothing if
    the hash changed meanwhile. A replica leaves it to the primary (it never writes
    its own entries)."""
    if not needs_rehash(stored) or request.app[SETTINGS].is_replica:
        return stored
    new_hash = await asyncio.to_thread(hash_password, password)
    try:
        async with request.app[DATABASE].write() as session:
            replaced = await replace_password_hash(session, name, stored, new_hash)
    except LockgateError as exc:
        # The login itself succeeded; the next one tries again.
        log.warning("could not rehash an imported password", user=name, error=str(exc))
        return stored
    if not replaced:
        return stored
    log.info("rehashed an imported password", user=name)
    return new_hash


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _token_principal(
    request: web.Request, secret: str, claimed_user: str | None
) -> tuple[Principal, float]:
    credentials = request.app[CREDENTIALS]
    # Failed token attempts count like failed passwords, per client.
    credentials.refuse_if_paused(TOKEN_USER, request.remote)
    try:
        token = await _valid_token(request, secret, claimed_user)
    except Unauthorized:
        credentials.note_outcome(TOKEN_USER, request.remote, ok=False)
        raise
    await _note_token_use(request, token.id)
    until = time.time() + VERIFIED_TTL
    if token.expires_at is not None:
        until = min(until, token.expiry_timestamp())
    return Principal(token.user, token.id, frozenset(token.scopes), token.indexes), until


async def _note_token_use(request: web.Request, token_id: str) -> None:
    """Write when a token was last used, at most once a minute per token and node."""
    uses = request.app[CREDENTIALS].token_uses
    now = time.monotonic()
    if now - uses.get(token_id, -TOKEN_USE_INTERVAL) < TOKEN_USE_INTERVAL:
        return
    uses[token_id] = now
    try:
        async with request.app[DATABASE].write() as session:
            await note_use(session, token_id)
    except ServiceUnavailable:
        # Bookkeeping only: a busy database must not refuse the request.
        log.warning("could not note a token's use", token=token_id)


async def _valid_token(request: web.Request, secret: str, claimed_user: str | None) -> TokenInfo:
    if not is_wellformed_secret(secret):
        # Refused without a database lookup.
        raise Unauthorized(
            "invalid token: lockgate tokens start with 'lgt_' and are 47 characters long"
        )
    async with request.app[DATABASE].read() as session:
        token = await token_for_secret(session, secret)
    if token is None:
        raise Unauthorized("invalid token (unknown or revoked)")
    if claimed_user is not None and claimed_user != token.user:
        raise Unauthorized(f"this token does not belong to {claimed_user!r}")
    if token.expired():
        raise Unauthorized(f"this token ({token.id}) expired at {token.expires_at}")
    return token


async def page_principal(request: web.Request) -> Principal | None:
    """The caller of a browser page or form: whoever the Authorization header names
    (a browser that was sent a Basic challenge), else the `/+login` session cookie.
    Only page and form handlers call this: API routes never accept the cookie, so a
    forged cross-site request cannot act with it (docs/reliability.md WM-6)."""
    if request.headers.get("Authorization"):
        return await authenticate(request)
    found = await browser_session(request)
    return Principal(found.user) if found is not None else None


async def authenticate(request: web.Request) -> Principal | None:
    """The caller for valid credentials, None without credentials; 401 when wrong.

    A header that authenticated is remembered (under an HMAC of it) for the current
    serial, so repeated requests — pip reading pages of a private index — cost no
    database lookup and no scrypt; any committed change starts over."""
    devpi = request.headers.get(DEVPI_AUTH, "")
    header = f"devpi {devpi}" if devpi else request.headers.get("Authorization", "")
    if not header:
        return None
    credentials = request.app[CREDENTIALS]
    serial = request.app[DATABASE].serial
    known = credentials.known_caller(header, serial)
    if isinstance(known, Principal):
        if known.token_id is not None:
            await _note_token_use(request, known.token_id)
        return known
    try:
        principal, until = await _authenticate(request)
    except Unauthorized as exc:
        if devpi:
            # devpi-client drops a stored login when a 401 carries a Location
            # (devpi's "log in again"); it then says so instead of retrying it.
            exc.headers.setdefault("Location", "/+login")
        raise
    if principal is not None:
        credentials.remember_caller(header, serial, principal, until)
    return principal


async def _authenticate(request: web.Request) -> tuple[Principal | None, float]:
    """The caller, and until when (wall clock) its credentials may be trusted."""
    credentials = devpi_credentials(request)
    if credentials is None:
        bearer = _bearer(request)
        if bearer is not None:
            return await _token_principal(request, bearer, None)
        credentials = basic_credentials(request)
    if credentials is None:
        return None, 0.0
    name, password = credentials
    if name == TOKEN_USER:
        return await _token_principal(request, password, None)
    if looks_like_secret(password):
        return await _token_principal(request, password, name)
    if not await credentials_valid(request, name, password):
        raise Unauthorized(WRONG_PASSWORD)
    return Principal(name), time.time() + VERIFIED_TTL


async def require_login(request: web.Request) -> Principal:
    principal = await authenticate(request)
    if principal is None:
        raise Unauthorized(LOGIN_REQUIRED)
    return principal
