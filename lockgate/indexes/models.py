"""The indexes table; the devpi-shaped configuration lives in a JSON column."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, func
from sqlalchemy import Index as DbIndex
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class Index(Base):
    __tablename__ = "indexes"
    __table_args__ = (UniqueConstraint("user_name", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), ForeignKey("users.name", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    config: Mapped[str] = mapped_column(Text)

    @property
    def path(self) -> str:
        return f"{self.user_name}/{self.name}"


# Index names are unique within a user regardless of case ("alice/dev" and
# "alice/Dev" cannot both exist; "bob/dev" beside them can); lookups stay exact.
# Created by migration 0008 unless look-alikes already existed: then the services'
# check alone holds until they are resolved and `lockgate migrate` creates it
# (migrations.enforce_case_indexes).
INDEXES_LOWER_NAME = DbIndex(
    "uq_indexes_user_name_lower_name", Index.user_name, func.lower(Index.name), unique=True
)
