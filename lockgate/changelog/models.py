"""Tables of the changelog: the entries themselves and the serial counter row."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
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


class ServerState(Base):
    """One row (id=1): the last serial and its hash, locked by every writer.

    Taking this row FOR UPDATE (PostgreSQL) or holding SQLite's write lock is what
    keeps serials gapless and commit-ordered with several writers; a database
    sequence would not (a later serial can commit before an earlier one).
    """

    __tablename__ = "server_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    server_id: Mapped[str] = mapped_column(String(64))
    serial: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
