"""Changelog entry kinds of the accounts domain: users created, changed, deleted;
API tokens created and revoked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import DropIndex

from lockgate.accounts.models import USERS_LOWER_NAME, Token, User
from lockgate.changelog.payloads import Payload, applying_foreign
from lockgate.changelog.registry import EntryRegistry

log = structlog.get_logger("lockgate.accounts")


async def _admit_case_lookalike(session: AsyncSession, name: str) -> None:
    """Make room for a user whose name differs only in case from an existing one,
    when applying another server's entry (replica, import, replay).

    This server never writes such an entry: `create_user` refuses it, and the unique
    index on lower(name) stops one that slipped past. A server that held look-alikes
    before names became case-insensitive has them in its changelog; applying them
    exactly leaves this database without that index, as that server is.
    `lockgate migrate` lists the look-alikes and restores the index once they are
    resolved."""
    if not applying_foreign(session):
        return
    query = select(User.name).where(func.lower(User.name) == name.lower()).limit(1)
    existing = (await session.execute(query)).scalar_one_or_none()
    if existing is not None:
        log.warning(
            "applying a user name that differs only in case from an existing one; "
            "run `lockgate migrate` to list such names",
            user=name,
            existing=existing,
        )
        await session.execute(DropIndex(USERS_LOWER_NAME, if_exists=True))


@dataclass(frozen=True)
class UserPut(Payload):
    """A user created, or its password hash or email changed."""

    KIND = "user.put"
    name: str
    password_hash: str
    created_at: str
    email: str | None = None

    async def apply(self, session: AsyncSession) -> None:
        user = (
            await session.execute(select(User).where(User.name == self.name))
        ).scalar_one_or_none()
        if user is None:
            await _admit_case_lookalike(session, self.name)
            session.add(
                User(
                    name=self.name,
                    password_hash=self.password_hash,
                    email=self.email,
                    created_at=self.created_at,
                )
            )
        else:
            user.password_hash = self.password_hash
            user.email = self.email
        await session.flush()


@dataclass(frozen=True)
class UserDelete(Payload):
    """A user and everything it owns (its indexes cascade in the schema)."""

    KIND = "user.delete"
    name: str

    async def apply(self, session: AsyncSession) -> None:
        await session.execute(delete(User).where(User.name == self.name))


@dataclass(frozen=True)
class TokenPut(Payload):
    """An API token created; only the sha256 of its secret travels."""

    KIND = "token.put"
    id: str
    user: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: str
    indexes: tuple[str, ...] | None = None  # None: every index the user may use
    expires_at: str | None = None

    async def apply(self, session: AsyncSession) -> None:
        token = await session.get(Token, self.id)
        if token is None:
            token = Token(id=self.id)
            session.add(token)
        token.user_name = self.user
        token.name = self.name
        token.scopes = json.dumps(list(self.scopes))
        token.indexes = json.dumps(list(self.indexes)) if self.indexes is not None else None
        token.secret_hash = self.secret_hash
        token.created_at = self.created_at
        token.expires_at = self.expires_at
        await session.flush()


@dataclass(frozen=True)
class TokenDelete(Payload):
    """An API token revoked."""

    KIND = "token.delete"
    id: str

    async def apply(self, session: AsyncSession) -> None:
        await session.execute(delete(Token).where(Token.id == self.id))


async def digest(session: AsyncSession) -> dict[str, Any]:
    users = (await session.execute(select(User))).scalars()
    tokens = (await session.execute(select(Token))).scalars()
    return {
        "users": sorted((u.name, u.password_hash, u.email, u.created_at) for u in users),
        "tokens": sorted(
            (
                t.id,
                t.user_name,
                t.name,
                t.scopes,
                t.indexes or "",
                t.secret_hash,
                t.created_at,
                t.expires_at or "",
            )
            for t in tokens
        ),
    }


def register(registry: EntryRegistry) -> None:
    registry.register(UserPut, UserDelete, TokenPut, TokenDelete)
    registry.register_digest("accounts", digest)
