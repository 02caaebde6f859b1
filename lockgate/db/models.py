"""The server state table: one row with this server's identity and the head of
its history. Every write transaction locks it (see `session.py`), which is what
serializes writers on PostgreSQL as SQLite's write lock does; the changelog
advances it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


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
