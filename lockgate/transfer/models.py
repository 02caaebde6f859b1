"""What has been imported from each source server (a changelog projection too)."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.db.base import Base


class ImportMark(Base):
    __tablename__ = "imports"

    source_server_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger)  # last source serial imported
    hash: Mapped[str] = mapped_column(String(64))  # that entry's hash on the source
    imported_at: Mapped[str] = mapped_column(String(32))
