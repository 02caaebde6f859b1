"""API tokens: scoped, optionally limited to some indexes, optionally expiring.

A secret is `lgt_` followed by 43 random URL-safe characters: long enough that
a fast hash is a safe lookup key (only the sha256 is stored), with a prefix that
secret scanners can be taught. It is shown once, when the token is created.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lockgate.accounts.entries import TokenDelete, TokenPut
from lockgate.accounts.models import Token, TokenUse
from lockgate.accounts.services import require_user
from lockgate.changelog.codec import Actor
from lockgate.changelog.writer import record, utcnow_iso
from lockgate.errors import BadRequest, NotFound

SECRET_PREFIX = "lgt_"
SECRET_RE = re.compile(r"^lgt_[A-Za-z0-9_-]{43}\Z")
TOKEN_USER = "__token__"  # the Basic user name twine, uv and poetry send with a token
SCOPES = ("read", "upload", "push", "test-results", "replicate", "admin")
MAX_NAME = 64
MAX_INDEXES = 100
RELATIVE_EXPIRY_RE = re.compile(r"^(\d{1,4})d\Z")
EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EXPIRY_HELP = "a date (YYYY-MM-DD), a date-time or a count of days (30d)"


@dataclass(frozen=True)
class TokenSpec:
    """A validated request for a new token."""

    name: str
    scopes: tuple[str, ...]
    indexes: tuple[str, ...] | None
    expires_at: str | None


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    name: str
    scopes: tuple[str, ...]
    indexes: tuple[str, ...] | None
    created_at: str
    expires_at: str | None
    last_used: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        moment = now or datetime.now(UTC)
        return moment >= datetime.strptime(self.expires_at, EXPIRY_FORMAT).replace(tzinfo=UTC)

    def expiry_timestamp(self) -> float:
        """The expiry as seconds since the epoch (only for expiring tokens)."""
        assert self.expires_at is not None
        return datetime.strptime(self.expires_at, EXPIRY_FORMAT).replace(tzinfo=UTC).timestamp()

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "scopes": list(self.scopes),
            "indexes": list(self.indexes) if self.indexes is not None else None,
            "created": self.created_at,
            "expires": self.expires_at,
            "last_used": self.last_used,
        }


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def looks_like_secret(value: str) -> bool:
    return value.startswith(SECRET_PREFIX)


def is_wellformed_secret(value: str) -> bool:
    return bool(SECRET_RE.match(value))


def parse_expiry(value: Any, now: datetime | None = None) -> str | None:
    """`null`, a date (valid through that day, UTC), an ISO date-time, or `30d`."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(
            "'expires' must be a date (YYYY-MM-DD), a date-time or a count of days (30d)"
        )
    moment = now or datetime.now(UTC)
    relative = RELATIVE_EXPIRY_RE.match(value)
    try:
        if relative:
            expiry = moment + timedelta(days=int(relative.group(1)))
        elif len(value) == 10:
            expiry = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            expiry += timedelta(days=1)
        else:
            expiry = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"'expires' {value!r} is not {EXPIRY_HELP}") from None
    if expiry <= moment:
        raise BadRequest(f"'expires' {value!r} is in the past")
    return expiry.astimezone(UTC).strftime(EXPIRY_FORMAT)


def parse_token_request(data: dict[str, Any]) -> TokenSpec:
    unknown = set(data) - {"name", "scopes", "indexes", "expires"}
    if unknown:
        raise BadRequest(f"unknown token field(s): {', '.join(sorted(unknown))}")
    name = data.get("name", "token")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadRequest(f"'name' must be a non-empty string of at most {MAX_NAME} characters")
    scopes = data.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise BadRequest(f"'scopes' must be a non-empty list of: {', '.join(SCOPES)}")
    unknown_scopes = sorted(set(scopes) - set(SCOPES))
    if unknown_scopes:
        raise BadRequest(
            f"unknown scope(s) {', '.join(unknown_scopes)}: use any of {', '.join(SCOPES)}"
        )
    indexes = data.get("indexes")
    if indexes is not None and (
        not isinstance(indexes, list)
        or not indexes
        or len(indexes) > MAX_INDEXES
        or not all(isinstance(i, str) and i.count("/") == 1 for i in indexes)
    ):
        raise BadRequest("'indexes' must be a non-empty list of 'user/index' names")
    return TokenSpec(
        name=name.strip(),
        scopes=tuple(sorted(set(scopes), key=SCOPES.index)),
        indexes=tuple(sorted(set(indexes))) if indexes is not None else None,
        expires_at=parse_expiry(data.get("expires")),
    )


def _info(token: Token, last_used: str | None = None) -> TokenInfo:
    indexes = json.loads(token.indexes) if token.indexes is not None else None
    return TokenInfo(
        id=token.id,
        user=token.user_name,
        name=token.name,
        scopes=tuple(json.loads(token.scopes)),
        indexes=tuple(indexes) if indexes is not None else None,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used=last_used,
    )


async def create_token(
    session: AsyncSession, user: str, spec: TokenSpec, secret: str, actor: Actor
) -> TokenInfo:
    await require_user(session, user)
    token_id = secrets.token_hex(8)
    await record(
        session,
        TokenPut(
            id=token_id,
            user=user,
            name=spec.name,
            scopes=spec.scopes,
            indexes=spec.indexes,
            secret_hash=secret_digest(secret),
            created_at=utcnow_iso(),
            expires_at=spec.expires_at,
        ),
        actor,
    )
    token = await session.get(Token, token_id)
    assert token is not None
    return _info(token)


async def list_tokens(session: AsyncSession, user: str) -> list[TokenInfo]:
    await require_user(session, user)
    rows = (
        await session.execute(
            select(Token, TokenUse.used_at)
            .outerjoin(TokenUse, TokenUse.token_id == Token.id)
            .where(Token.user_name == user)
            .order_by(Token.created_at, Token.id)
        )
    ).all()
    return [_info(token, used_at) for token, used_at in rows]


async def revoke_token(session: AsyncSession, user: str, token_id: str, actor: Actor) -> None:
    token = await session.get(Token, token_id)
    if token is None or token.user_name != user:
        raise NotFound(f"user {user!r} has no token {token_id!r}")
    await record(session, TokenDelete(id=token_id), actor)


async def token_for_secret(session: AsyncSession, secret: str) -> TokenInfo | None:
    token = (
        await session.execute(select(Token).where(Token.secret_hash == secret_digest(secret)))
    ).scalar_one_or_none()
    return _info(token) if token is not None else None


async def note_use(session: AsyncSession, token_id: str) -> None:
    """Remember when a token was last used on this node (not replicated state)."""
    use = await session.get(TokenUse, token_id)
    if use is None:
        session.add(TokenUse(token_id=token_id, used_at=utcnow_iso()))
    else:
        use.used_at = utcnow_iso()


# devpi-client's login (`POST /+login`): an expiring token with everything its user
# may do but following the changelog, valid as long as devpi's proxy logins (10 hours).
LOGIN_TOKEN_NAME = "devpi-login"
LOGIN_SCOPES = tuple(scope for scope in SCOPES if scope != "replicate")
LOGIN_EXPIRATION = 10 * 60 * 60


def login_token_spec(now: datetime | None = None) -> TokenSpec:
    moment = now or datetime.now(UTC)
    expires = moment + timedelta(seconds=LOGIN_EXPIRATION)
    return TokenSpec(
        name=LOGIN_TOKEN_NAME,
        scopes=LOGIN_SCOPES,
        indexes=None,
        expires_at=expires.strftime(EXPIRY_FORMAT),
    )


async def issue_login_token(
    session: AsyncSession, user: str, secret: str, actor: Actor, now: datetime | None = None
) -> TokenInfo:
    """A new login token for `user` (whose password was checked before the write),
    dropping that user's expired login tokens so logins do not pile up."""
    moment = now or datetime.now(UTC)
    expired = (
        await session.execute(
            select(Token.id, Token.expires_at).where(
                Token.user_name == user, Token.name == LOGIN_TOKEN_NAME
            )
        )
    ).all()
    for token_id, expires_at in expired:
        if expires_at is not None and _expiry(expires_at) <= moment:
            await record(session, TokenDelete(id=token_id), actor)
    return await create_token(session, user, login_token_spec(moment), secret, actor)


def _expiry(value: str) -> datetime:
    return datetime.strptime(value, EXPIRY_FORMAT).replace(tzinfo=UTC)
