"""The changelog table: every entry with its serial, kind, payload and hash chain."""

from __future__ import annotations

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class ChangelogEntry(Base):
    __tablename__ = "changelog"

    serial: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Who caused it: a user name or "system", and the token used (None before 0006).
    actor: Mapped[str | None] = mapped_column(String(64))
    actor_token: Mapped[str | None] = mapped_column(String(32))
