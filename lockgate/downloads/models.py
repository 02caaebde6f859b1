"""The download counts table: one row per (index, file, UTC day). Node-local."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class DownloadCount(Base):
    __tablename__ = "download_counts"

    index_path: Mapped[str] = mapped_column(String(130), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    # Normalized, so a project's chart is one indexed query over its indexes.
    project: Mapped[str] = mapped_column(String(255), index=True)
    count: Mapped[int] = mapped_column(BigInteger)
