"""The documentation of a release: its zip (a blob) and the zip's plain text."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class ReleaseDocs(Base):
    """One documentation zip per release of a stage index (a new upload replaces it)."""

    __tablename__ = "release_docs"

    # The release goes (deleted, or its last file deleted): its documentation goes too.
    release_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # the zip, a blob
    size: Mapped[int] = mapped_column(BigInteger)
    members: Mapped[int] = mapped_column(Integer)
    unpacked_bytes: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[str] = mapped_column(String(32))
    uploader: Mapped[str] = mapped_column(String(64))
    # The pages' plain text (capped, docs/archive.py TEXT_CAP) for search; loaded only
    # when asked for, since serving a page never needs it.
    text: Mapped[str] = mapped_column(Text, deferred=True)
    text_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
