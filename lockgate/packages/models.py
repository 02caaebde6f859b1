"""Tables for projects, releases and release files."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("index_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))  # PEP 503 normalized
    display_name: Mapped[str] = mapped_column(String(255))


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(255))  # str(packaging.version.Version)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[str] = mapped_column(Text)  # core metadata of the first upload
    created_at: Mapped[str] = mapped_column(String(32))


class ReleaseFile(Base):
    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("index_id", "filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(Integer, ForeignKey("releases.id", ondelete="CASCADE"))
    # Denormalized so a filename is unique per index, whatever release it sits in.
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blake2_256: Mapped[str | None] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    packagetype: Mapped[str] = mapped_column(String(16))
    python_version: Mapped[str] = mapped_column(String(64))
    requires_python: Mapped[str | None] = mapped_column(Text)
    core_metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    upload_time: Mapped[str] = mapped_column(String(32))
    uploader: Mapped[str | None] = mapped_column(String(64))


class DeletedRelease(Base):
    """A release deleted from a stage index (`release.delete`, every release of a
    `project.delete`, or a release whose last file a `file.delete` removed): what the
    project page shows as "deleted", with when and by whom. Kept by the packages
    appliers in the entry's transaction, so it is the same on replicas, after a replay
    and after an import; a new upload of the version (volatile index) removes it.
    Keyed by names, not by the project row, which a project delete removes; the index
    going takes its marks along."""

    __tablename__ = "deleted_releases"
    __table_args__ = (UniqueConstraint("index_id", "project", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    index_id: Mapped[int] = mapped_column(Integer, ForeignKey("indexes.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(255))  # PEP 503 normalized
    display_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    deleted_at: Mapped[str] = mapped_column(String(32))
    deleted_by: Mapped[str | None] = mapped_column(String(64))
