"""User management: validation, password hashing and every write through the changelog.

Hashing a password is slow on purpose, so it happens in `prepare_user_change()`,
before the caller opens the write transaction that applies the change.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.entries import UserDelete, UserPut
from lockgate.accounts.models import User
from lockgate.accounts.passwords import hash_password
from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.errors import BadRequest, Conflict, Forbidden, NotFound
from lockgate.names import check_name

ROOT_USER = "root"
USER_FIELDS = {"password", "email"}
_UNCHANGED = object()


@dataclass(frozen=True)
class UserSummary:
    """A user as the API shows it (never the password hash)."""

    name: str
    email: str | None


@dataclass(frozen=True)
class UserChange:
    """A validated user creation or change, its new password already hashed."""

    password_hash: str | None  # None: unchanged
    email: Any = _UNCHANGED  # str | None, or unchanged


def require_self_or_root(actor: str, owner: str) -> None:
    if actor not in (owner, ROOT_USER):
        raise Forbidden(f"user {actor!r} may not change {owner!r}")


async def get_user(session: AsyncSession, name: str) -> User | None:
    return (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()


async def users_named_any_case(session: AsyncSession, name: str) -> list[str]:
    """The users whose names equal `name` regardless of case (more than one only on a
    server that held look-alikes before names became case-insensitive)."""
    query = select(User.name).where(func.lower(User.name) == name.lower()).order_by(User.name)
    return list((await session.execute(query)).scalars())


async def case_lookalike_users(session: AsyncSession) -> list[list[str]]:
    """Groups of user names that differ only in case, each sorted: left from before
    names became case-insensitive (or applied from such a server's changelog).
    `lockgate migrate` lists them for the operator; `create_user` refuses new ones."""
    folded = func.lower(User.name)
    clashing = select(folded).group_by(folded).having(func.count() > 1)
    names = (
        await session.execute(select(User.name).where(folded.in_(clashing)).order_by(User.name))
    ).scalars()
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.lower(), []).append(name)
    return [groups[key] for key in sorted(groups)]


async def password_hash_of(session: AsyncSession, name: str) -> str | None:
    """The stored hash to check a login against; None when there is no such user."""
    return (
        await session.execute(select(User.password_hash).where(User.name == name))
    ).scalar_one_or_none()


async def require_user(session: AsyncSession, name: str) -> UserSummary:
    user = await get_user(session, name)
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    return UserSummary(user.name, user.email)


async def list_users(session: AsyncSession) -> list[UserSummary]:
    users = (await session.execute(select(User).order_by(User.name))).scalars()
    return [UserSummary(user.name, user.email) for user in users]


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


async def prepare_new_user(name: str, data: dict[str, Any]) -> UserChange:
    """Validate a new user's name and body and hash its password (in a thread,
    outside any transaction)."""
    check_name("user", name)
    password = _check_password(data.get("password"))
    email = _check_email(data.get("email"))
    return UserChange(await asyncio.to_thread(hash_password, password), email)


async def prepare_user_change(data: dict[str, Any]) -> UserChange:
    """Validate a change of a user and hash its new password, outside any transaction."""
    unknown = set(data) - USER_FIELDS
    if unknown:
        raise BadRequest(f"unknown user field(s): {', '.join(sorted(unknown))}")
    password_hash = None
    if "password" in data:
        password = _check_password(data["password"])
        password_hash = await asyncio.to_thread(hash_password, password)
    email = _check_email(data["email"]) if "email" in data else _UNCHANGED
    return UserChange(password_hash, email)


async def create_user(
    session: AsyncSession, name: str, change: UserChange, actor: Actor
) -> UserSummary:
    check_name("user", name)
    if change.password_hash is None:
        raise BadRequest("a non-empty 'password' is required")
    # Inside the write transaction, so a racing creation is seen (and the unique
    # index on lower(name) stops it in the database too).
    existing = await users_named_any_case(session, name)
    if name in existing:
        raise Conflict(f"user {name!r} already exists")
    if existing:
        raise Conflict(
            f"user {existing[0]!r} already exists (user names are unique regardless of case)"
        )
    email = None if change.email is _UNCHANGED else change.email
    await record(
        session,
        UserPut(
            name=name, password_hash=change.password_hash, email=email, created_at=utcnow_iso()
        ),
        actor,
    )
    return await require_user(session, name)


async def modify_user(
    session: AsyncSession, name: str, change: UserChange, actor: Actor
) -> UserSummary:
    user = await get_user(session, name)
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    await record(
        session,
        UserPut(
            name=name,
            password_hash=change.password_hash or user.password_hash,
            email=user.email if change.email is _UNCHANGED else change.email,
            created_at=user.created_at,
        ),
        actor,
    )
    return await require_user(session, name)


async def replace_password_hash(
    session: AsyncSession, name: str, old_hash: str, new_hash: str
) -> bool:
    """Swap a user's password hash for an equivalent one (an imported devpi hash for
    lockgate's scrypt after a login proved the password), only if it is still
    `old_hash`; recorded as the user's own change."""
    user = await get_user(session, name)
    if user is None or user.password_hash != old_hash:
        return False
    await record(
        session,
        UserPut(name=name, password_hash=new_hash, email=user.email, created_at=user.created_at),
        Actor(name),
    )
    return True


async def delete_user(session: AsyncSession, name: str, actor: Actor) -> None:
    await require_user(session, name)
    if name == ROOT_USER:
        raise Forbidden("the root user cannot be deleted")
    await record(session, UserDelete(name=name), actor)
