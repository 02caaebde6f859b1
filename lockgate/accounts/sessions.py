"""Browser sessions: a signed cookie after `/+login`, ended server-side at `/+logout`,
and the CSRF tokens every form carries.

Why a signed cookie plus a table of *ended* sessions (rather than a table of live
ones): logging in writes nothing, so it never waits for the writers' lock and works the
same in every process sharing the server directory (they share its key file,
`session.key`, created at init or on the first start). The cookie carries the user, a
random session id, its expiry and a fingerprint of the user's stored password hash, all
under an HMAC with that key:

- a forged or altered cookie fails the HMAC; an old one fails its expiry;
- a password change (a new salted hash) or deleting the user ends every session of that
  user at once: the fingerprint no longer matches (checked on every request);
- logout records the session id in `ended_sessions` (in the database, so it holds in
  every process and after a restart): a stolen copy of the cookie dies with the logout.

Sessions belong to one server directory: a replica has its own key and refuses logins
(it refuses every write), so its pages are read anonymously or with Basic auth.

Only page handlers and form handlers consult the session (`auth.page_principal`); the
API never accepts the cookie, so a cross-site request cannot act with it there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.models import EndedSession
from lockgate.accounts.services import password_hash_of
from lockgate.config import SETTINGS
from lockgate.db.session import DATABASE

KEY_FILENAME = "session.key"
SESSION_COOKIE = "lockgate_session"
LOGIN_COOKIE = "lockgate_login"  # the login form's pre-session CSRF nonce
CSRF_FIELD = "csrf_token"
SESSION_TTL = 12 * 3600
LOGIN_FORM_TTL = 3600
COOKIE_VERSION = "v1"
_REQUEST_KEY = "lockgate.browser_session"


def ensure_session_key(serverdir: Path) -> bytes:
    """The server directory's session key, created once (0600). Several processes may
    start at once: the key is written to a temp file and linked into place, so every
    one of them reads the same complete key."""
    path = serverdir / KEY_FILENAME
    if not path.exists():
        temp = serverdir / f".{KEY_FILENAME}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        finally:
            temp.unlink(missing_ok=True)
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable session key; remove it to make a new one")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class BrowserSession:
    """A valid session: who, which session, until when (epoch seconds)."""

    user: str
    session_id: str
    expires_at: int


class SessionKeys:
    """Signs and checks session cookies and CSRF tokens with the server directory's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, message: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{message}".encode(), hashlib.sha256).digest())

    def password_fingerprint(self, stored_hash: str) -> str:
        return self._mac("password", stored_hash)[:22]

    def issue(self, user: str, stored_hash: str, now: float | None = None) -> tuple[str, int]:
        """A new session's cookie value and its expiry."""
        expires = int((now or time.time()) + SESSION_TTL)
        claims = {
            "u": user,
            "s": secrets.token_hex(16),
            "e": expires,
            "p": self.password_fingerprint(stored_hash),
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{COOKIE_VERSION}.{body}.{self._mac('session', body)}", expires

    def claims(self, cookie: str) -> dict[str, object] | None:
        """The cookie's claims when its HMAC holds and it has not expired; else None."""
        version, _, rest = cookie.partition(".")
        body, _, mac = rest.partition(".")
        if version != COOKIE_VERSION or not body or not mac:
            return None
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        try:
            claims = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict) or not all(k in claims for k in "usep"):
            return None
        expires = claims["e"]
        if not isinstance(expires, int) or expires <= time.time():
            return None
        return claims

    def csrf_token(self, session_id: str) -> str:
        return self._mac("csrf", session_id)

    def login_token(self, nonce: str) -> str:
        return self._mac("login", nonce)


SESSIONS = web.AppKey("sessions", SessionKeys)


async def browser_session(request: web.Request) -> BrowserSession | None:
    """The request's valid session, or None (no cookie, a forged, expired or ended one,
    a changed password, a deleted user). Checked once per request."""
    if _REQUEST_KEY in request:
        found: BrowserSession | None = request[_REQUEST_KEY]
        return found
    found = None
    cookie = request.cookies.get(SESSION_COOKIE)
    claims = request.app[SESSIONS].claims(cookie) if cookie else None
    if claims is not None:
        user, session_id = str(claims["u"]), str(claims["s"])
        async with request.app[DATABASE].read() as session:
            stored = await password_hash_of(session, user)
            ended = await session.get(EndedSession, session_id)
        keys = request.app[SESSIONS]
        if (
            stored is not None
            and ended is None
            and hmac.compare_digest(str(claims["p"]), keys.password_fingerprint(stored))
        ):
            found = BrowserSession(user, session_id, int(str(claims["e"])))
    request[_REQUEST_KEY] = found
    return found


async def end_session(session: AsyncSession, ended: BrowserSession) -> None:
    """Record a logout (inside the caller's write transaction); forget logouts whose
    cookies have expired anyway."""
    await session.execute(delete(EndedSession).where(EndedSession.expires_at < int(time.time())))
    exists = await session.execute(
        select(EndedSession.session_id).where(EndedSession.session_id == ended.session_id)
    )
    if exists.first() is None:
        session.add(
            EndedSession(
                session_id=ended.session_id, user_name=ended.user, expires_at=ended.expires_at
            )
        )


def secure_cookies(request: web.Request) -> bool:
    """Cookies get `Secure` when the browser reached us over TLS: the request itself, or
    the configured public URL (a TLS-terminating proxy in front)."""
    public = request.app[SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def set_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    max_age: int,
    path: str = "/",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(request),
    )


def own_origins(request: web.Request) -> set[str]:
    """The origins this server is reached by: the request's own, and the public URL's."""
    origins = {f"{request.scheme}://{request.host}"}
    public = request.app[SETTINGS].public_url
    if public:
        parts = urlsplit(public)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def same_origin_problem(request: web.Request) -> str | None:
    """Why a form POST is not from one of our own pages (Origin, else Referer), or None.
    Browsers send Origin with every form POST; a request with neither is refused, and
    so is one the browser itself labels as sent from another site (`Sec-Fetch-Site`)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("cross-site", "same-site"):
        return f"the browser says the form was sent from another site ({fetch_site})"
    problem = script_request_problem(request)
    if problem is not None:
        return problem
    origin = request.headers.get("Origin")
    if origin == "null":
        return "the form was sent from a sandboxed or opaque page (Origin: null)"
    if origin:
        if origin in own_origins(request):
            return None
        return f"the form was sent from another site ({origin})"
    referer = request.headers.get("Referer")
    if referer:
        parts = urlsplit(referer)
        if f"{parts.scheme}://{parts.netloc}" in own_origins(request):
            return None
        return "the form was sent from another site"
    return "the request did not say which page sent it (no Origin or Referer header)"


def script_request_problem(request: web.Request) -> str | None:
    """Management pages and forms work without script: a browser that says a script
    made the request (`Sec-Fetch-Mode` other than `navigate`) is refused, so a script
    running in this origin — in an uploaded document, say — can neither read a form's
    token nor send one. (Browsers send Sec-Fetch-* to https and loopback origins; the
    CSRF token and the origin check hold without them.)"""
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None and mode != "navigate":
        return f"management pages are not for scripts (Sec-Fetch-Mode: {mode})"
    return None
