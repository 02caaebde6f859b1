"""User management and credential checks, all writes through the changelog."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.models import User
from lockgate.accounts.passwords import hash_password, verify_password
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from lockgate.indexes.models import Index
from lockgate.names import check_name

ROOT_USER = "root"
# Failed logins allowed per (client, user name) within the window before a pause.
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0


async def get_user(session: AsyncSession, name: str) -> User | None:
    return (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()


async def require_user(session: AsyncSession, name: str) -> User:
    user = await get_user(session, name)
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    return user


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise BadRequest("a non-empty 'password' is required")
    return password


def _check_email(email: Any) -> str | None:
    if email is None or email == "":
        return None
    if not isinstance(email, str) or "@" not in email or len(email) > 255:
        raise BadRequest(f"invalid email {email!r}")
    return email


async def create_user(session: AsyncSession, name: str, data: dict[str, Any]) -> User:
    check_name("user", name)
    password = _check_password(data.get("password"))
    email = _check_email(data.get("email"))
    if await get_user(session, name) is not None:
        raise Conflict(f"user {name!r} already exists")
    password_hash = await asyncio.to_thread(hash_password, password)
    await record(
        session,
        "user.put",
        {"name": name, "password_hash": password_hash, "email": email, "created_at": utcnow_iso()},
    )
    return await require_user(session, name)


async def modify_user(session: AsyncSession, name: str, data: dict[str, Any]) -> User:
    user = await require_user(session, name)
    unknown = set(data) - {"password", "email"}
    if unknown:
        raise BadRequest(f"unknown user field(s): {', '.join(sorted(unknown))}")
    password_hash = user.password_hash
    if "password" in data:
        password_hash = await asyncio.to_thread(hash_password, _check_password(data["password"]))
    email = _check_email(data["email"]) if "email" in data else user.email
    await record(
        session,
        "user.put",
        {
            "name": name,
            "password_hash": password_hash,
            "email": email,
            "created_at": user.created_at,
        },
    )
    return await require_user(session, name)


async def delete_user(session: AsyncSession, name: str) -> None:
    await require_user(session, name)
    if name == ROOT_USER:
        raise Forbidden("the root user cannot be deleted")
    await record(session, "user.delete", {"name": name})


async def user_indexes(session: AsyncSession, name: str) -> list[Index]:
    return list(
        (await session.execute(select(Index).where(Index.user_name == name).order_by(Index.name)))
        .scalars()
        .all()
    )


class CredentialCache:
    """Remembers (user, password, stored hash) triples that verified, so each
    request does not pay for scrypt. Keyed by a digest, never the password."""

    def __init__(self, limit: int = 1024) -> None:
        self._ok: dict[str, None] = {}
        self._limit = limit
        self._dummy_hash: str | None = None
        self._failures: dict[tuple[str, str], collections.deque[float]] = {}

    async def check(
        self, name: str, password: str, user: User | None, client: str | None = None
    ) -> bool:
        """Verify credentials; an unknown user costs the same scrypt as a known
        one, so response times do not tell which user names exist. After too many
        failures from one client for one user name, that pair waits (429)."""
        key = (client or "", name)
        failures = self._failures.get(key)
        now = time.monotonic()
        if failures:
            while failures and now - failures[0] > FAILURE_WINDOW:
                failures.popleft()
            if len(failures) >= MAX_FAILURES:
                retry = int(FAILURE_WINDOW - (now - failures[0])) + 1
                raise TooManyRequests(
                    f"too many failed logins for {name!r} from this client; "
                    f"try again in {retry} seconds",
                    headers={"Retry-After": str(retry)},
                )
        ok = await self._check(name, password, user)
        if ok:
            self._failures.pop(key, None)
        else:
            if len(self._failures) > 100_000:
                self._failures.clear()  # bounded memory under a spray of names
            self._failures.setdefault(key, collections.deque()).append(now)
        return ok

    async def _check(self, name: str, password: str, user: User | None) -> bool:
        if user is None:
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(hash_password, "no such user")
            await asyncio.to_thread(verify_password, password, self._dummy_hash)
            return False
        return await self.verify(name, password, user.password_hash)

    @staticmethod
    def _key(user: str, password: str, stored: str) -> str:
        return hashlib.sha256(f"{user}\0{password}\0{stored}".encode()).hexdigest()

    async def verify(self, user: str, password: str, stored: str) -> bool:
        key = self._key(user, password, stored)
        if key in self._ok:
            return True
        ok = await asyncio.to_thread(verify_password, password, stored)
        if ok:
            if len(self._ok) >= self._limit:
                self._ok.pop(next(iter(self._ok)))
            self._ok[key] = None
        return ok
