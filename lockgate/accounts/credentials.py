"""Checking passwords cheaply and fairly: verified credentials are remembered
under a digest (never the password), unknown users cost the same scrypt as known
ones, and repeated failures from one client for one name are paused (429)."""

from __future__ import annotations

import asyncio
import collections
import hmac
import secrets
import time

from aiohttp import web

from lockgate.accounts.passwords import hash_password, verify_password
from lockgate.errors import TooManyRequests

# Failed logins allowed per (client, user name) within the window before a pause.
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
# How long a verified password is trusted without running scrypt again.
VERIFIED_TTL = 300.0


class CredentialCache:
    """Remembers (user, password, stored hash) triples that verified, so each
    request does not pay for scrypt, for `VERIFIED_TTL` seconds. Keyed by an HMAC
    under a key that lives only in this process, never the password; a changed
    password hash makes the old triple useless at once."""

    def __init__(self, limit: int = 1024) -> None:
        self._ok: dict[str, float] = {}
        self._key = secrets.token_bytes(32)
        self._limit = limit
        # When each token's use was last written (monotonic), to write it rarely.
        self.token_uses: dict[str, float] = {}
        # Authorization headers that authenticated, by HMAC digest: (serial, who, until).
        self._known: collections.OrderedDict[str, tuple[int, object, float]] = (
            collections.OrderedDict()
        )
        self._dummy_hash: str | None = None
        self._failures: dict[tuple[str, str], collections.deque[float]] = {}

    def known_caller(self, header: str, serial: int) -> object | None:
        """Who this exact Authorization header authenticated as, if that was at this
        serial (any change — a new password, a revoked token — moves the serial) and
        not longer ago than it may be trusted."""
        key = self._digest("header", header, "")
        entry = self._known.get(key)
        if entry is None:
            return None
        known_serial, caller, until = entry
        if known_serial != serial or time.time() >= until:
            del self._known[key]
            return None
        return caller

    def remember_caller(self, header: str, serial: int, caller: object, until: float) -> None:
        self._known[self._digest("header", header, "")] = (serial, caller, until)
        while len(self._known) > self._limit:
            self._known.popitem(last=False)

    def refuse_if_paused(self, name: str, client: str | None) -> None:
        """429 when this client failed too often for this name (or token) lately."""
        failures = self._failures.get((client or "", name))
        if not failures:
            return
        now = time.monotonic()
        while failures and now - failures[0] > FAILURE_WINDOW:
            failures.popleft()
        if len(failures) >= MAX_FAILURES:
            retry = int(FAILURE_WINDOW - (now - failures[0])) + 1
            raise TooManyRequests(
                f"too many failed logins for {name!r} from this client; "
                f"try again in {retry} seconds",
                headers={"Retry-After": str(retry)},
            )

    def note_outcome(self, name: str, client: str | None, ok: bool) -> None:
        key = (client or "", name)
        if ok:
            self._failures.pop(key, None)
            return
        if len(self._failures) > 100_000:
            self._failures.clear()  # bounded memory under a spray of names
        self._failures.setdefault(key, collections.deque()).append(time.monotonic())

    async def check(
        self, name: str, password: str, stored_hash: str | None, client: str | None = None
    ) -> bool:
        """Verify credentials (`stored_hash` None: no such user). After too many
        failures from one client for one user name, that pair waits (429)."""
        self.refuse_if_paused(name, client)
        ok = await self._check(name, password, stored_hash)
        self.note_outcome(name, client, ok)
        return ok

    async def _check(self, name: str, password: str, stored_hash: str | None) -> bool:
        if stored_hash is None:
            # Response times must not tell which user names exist.
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(hash_password, "no such user")
            await asyncio.to_thread(verify_password, password, self._dummy_hash)
            return False
        return await self.verify(name, password, stored_hash)

    def _digest(self, user: str, password: str, stored: str) -> str:
        message = f"{user}\0{password}\0{stored}".encode()
        return hmac.new(self._key, message, "sha256").hexdigest()

    async def verify(self, user: str, password: str, stored: str) -> bool:
        key = self._digest(user, password, stored)
        verified_at = self._ok.get(key)
        if verified_at is not None and time.monotonic() - verified_at < VERIFIED_TTL:
            return True
        ok = await asyncio.to_thread(verify_password, password, stored)
        if ok:
            self._ok.pop(key, None)
            if len(self._ok) >= self._limit:
                self._ok.pop(next(iter(self._ok)))
            self._ok[key] = time.monotonic()
        return ok


CREDENTIALS = web.AppKey("credentials", CredentialCache)
