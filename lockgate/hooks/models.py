"""Tables of the hooks domain.

`hooks` and `hook_delivered` are replicated state (changelog projections): a
promoted replica knows every hook and which deliveries were already made.
`hook_outbox` and `hook_cursor` are node-local: each node derives the deliveries
owed from its own changelog, and only a primary sends them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class Hook(Base):
    __tablename__ = "hooks"
    __table_args__ = (UniqueConstraint("index_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # generic | jenkins | gitlab
    config: Mapped[str] = mapped_column(Text)  # JSON, secrets included (never shown)
    events: Mapped[str] = mapped_column(Text)  # JSON list
    # The serial of the entry that created it: only later entries trigger it.
    created_serial: Mapped[int] = mapped_column(BigInteger)


class HookDelivered(Base):
    """A delivery the primary made (its id), so no node sends it again."""

    __tablename__ = "hook_delivered"

    delivery_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    delivered_at: Mapped[str] = mapped_column(String(32))


class HookOutbox(Base):
    """A delivery owed: one hook, one changelog entry. Node-local."""

    __tablename__ = "hook_outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # stable on every node
    index_path: Mapped[str] = mapped_column(String(130), index=True)
    hook_name: Mapped[str] = mapped_column(String(64))
    serial: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)  # the event as JSON, without the hook's secrets
    created_at: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[float] = mapped_column(default=0.0)  # unix time
    last_answer: Mapped[str | None] = mapped_column(Text)


class HookCursor(Base):
    """How far this node derived deliveries from its changelog. Node-local."""

    __tablename__ = "hook_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    serial: Mapped[int] = mapped_column(BigInteger)
