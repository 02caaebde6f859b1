"""Tables of the release workflow: test results of release files, and where a
pushed release came from."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class ResultRow(Base):
    """One environment's outcome for one release file of one index. Rows of a file
    are ordered by id, which is the order their entries were applied in (serial
    order, on every node)."""

    __tablename__ = "test_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The file goes (deleted, overwritten on a volatile index): its results go with it.
    file_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("files.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(8))  # "passed" or "failed"
    python: Mapped[str | None] = mapped_column(String(64))
    platform: Mapped[str | None] = mapped_column(String(64))
    duration: Mapped[float | None] = mapped_column(Float)
    url: Mapped[str | None] = mapped_column(Text)
    log_sha256: Mapped[str | None] = mapped_column(String(64))  # the log, a blob
    log_size: Mapped[int] = mapped_column(BigInteger, default=0)
    log_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    posted_at: Mapped[str] = mapped_column(String(32))
    poster: Mapped[str] = mapped_column(String(64))
    # The index the result was posted to (differs from the file's index on a copy
    # that came along with a push).
    origin: Mapped[str] = mapped_column(String(130))


class ReleaseProvenance(Base):
    """A release that arrived by a push: from which index, when, by whom."""

    __tablename__ = "release_provenance"

    release_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    pushed_from: Mapped[str] = mapped_column(String(130))
    pushed_at: Mapped[str] = mapped_column(String(32))
    pushed_by: Mapped[str] = mapped_column(String(64))
