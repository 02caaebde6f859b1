"""Tables of the mirror cache. All of them are replicated state (changelog
projections) except freshness, which lives in memory on each node."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class MirrorProject(Base):
    """A cached upstream project page (its links are `MirrorLink` rows)."""

    __tablename__ = "mirror_projects"
    __table_args__ = (UniqueConstraint("index_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))  # normalized
    display_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(32))  # PEP 792 marker
    status_reason: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(255))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    # The upstream's X-PyPI-Last-Serial for this page: an answer with a lower
    # one is an older view of the project (a lagging CDN node) and is ignored.
    upstream_serial: Mapped[int | None] = mapped_column(BigInteger)


class MirrorLink(Base):
    """One file listed on a cached upstream page, with everything the standards carry."""

    __tablename__ = "mirror_links"
    __table_args__ = (UniqueConstraint("index_id", "filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(255), index=True)  # normalized
    filename: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    requires_python: Mapped[str | None] = mapped_column(Text)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str | None] = mapped_column(Text)
    core_metadata: Mapped[bool] = mapped_column(Boolean, default=False)
    core_metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    upload_time: Mapped[str | None] = mapped_column(String(32))


class MirrorCachedFile(Base):
    """A mirrored file (or just its `.metadata`) whose bytes are in the blob store.

    Kept when the upstream drops the file, for audit, until `lockgate gc`.
    """

    __tablename__ = "mirror_files"
    __table_args__ = (UniqueConstraint("index_id", "filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    core_metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    cached_at: Mapped[str] = mapped_column(String(32))
    # A wheel without upstream metadata whose own METADATA could not be read: no
    # synthesized `.metadata` is advertised for it (docs/reliability.md MC-6).
    metadata_missing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class MirrorProjectList(Base):
    """The upstream's project list, stored as a blob of newline-separated names."""

    __tablename__ = "mirror_project_lists"

    index_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("indexes.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    fetched_at: Mapped[str] = mapped_column(String(32))


class MirrorText(Base):
    """The searchable text of one cached version of a mirrored project: its core
    metadata's summary, description, keywords and classifiers, read when a file or
    its `.metadata` was cached (the search domain's rows of mirror projects use the
    latest version's)."""

    __tablename__ = "mirror_texts"
    __table_args__ = (UniqueConstraint("index_id", "project", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(255))  # normalized
    version: Mapped[str] = mapped_column(String(255))
    summary: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    keywords: Mapped[str] = mapped_column(Text)
    classifiers: Mapped[str] = mapped_column(Text)  # one per line
