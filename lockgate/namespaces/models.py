"""The namespaces table: one row per reserved name prefix."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class Namespace(Base):
    __tablename__ = "namespaces"

    # PEP 503-normalized, without the trailing separator: "acme" for "acme-",
    # "Acme." or "acme_"; it covers the project "acme" and every "acme-…".
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    display: Mapped[str] = mapped_column(String(255))  # as root wrote it, e.g. "acme-"
    # A user owning a namespace cannot be deleted (the service says so first;
    # the foreign key is the backstop), so a reservation never silently lapses.
    owner: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.name", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[str] = mapped_column(String(32))
