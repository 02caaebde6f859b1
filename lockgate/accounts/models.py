"""The users and tokens tables."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[str] = mapped_column(String(32))


# User names are unique regardless of case ("alice" and "ALICE" cannot both exist);
# lookups stay exact. Migration 0008 creates this index unless the database
# already held look-alike names: then the services' check alone holds until they
# are resolved and `lockgate migrate` creates it (migrations.enforce_case_indexes).
USERS_LOWER_NAME = Index("uq_users_lower_name", func.lower(User.name), unique=True)


class Token(Base):
    """An API token: its secret is stored only as a sha256 (secrets are long and
    random, so a fast hash is a lookup key, not a guessing aid)."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public, shown in lists
    user_name: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(Text)  # JSON list
    indexes: Mapped[str | None] = mapped_column(Text)  # JSON list, or None for all
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str | None] = mapped_column(String(32))


class TokenUse(Base):
    """When a token was last used on this node. Node-local bookkeeping, not
    replicated state: it is not written through the changelog."""

    __tablename__ = "token_uses"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_at: Mapped[str] = mapped_column(String(32))


class EndedSession(Base):
    """A browser session ended before its cookie expires (logout): its cookie is
    refused from then on, by every process sharing this database, also after a
    restart. Node-local bookkeeping, not replicated state: not written through the
    changelog (sessions are signed with this server directory's own key). A row is
    useless once `expires_at` (epoch seconds) passed, and is pruned then."""

    __tablename__ = "ended_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
