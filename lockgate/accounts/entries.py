"""Changelog entry kinds of the accounts domain: users created, changed, deleted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.models import User
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


async def digest(session: AsyncSession) -> dict[str, Any]:
    users = (await session.execute(select(User))).scalars()
    return {"users": sorted((u.name, u.password_hash, u.email, u.created_at) for u in users)}


def register(registry: EntryRegistry) -> None:
    registry.register(UserPut, UserDelete)
    registry.register_digest("accounts", digest)
