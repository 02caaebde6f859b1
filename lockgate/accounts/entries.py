"""Changelog entry kinds of the accounts domain: users created, changed, deleted;
API tokens created and revoked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.models import Token, User
from lockgate.changelog.payloads import Payload
from lockgate.changelog.registry import EntryRegistry


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
