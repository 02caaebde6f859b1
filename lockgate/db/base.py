"""The declarative base, with a naming convention so Alembic migrations stay stable."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def load_all_models() -> MetaData:
    """Import every models module so `Base.metadata` knows all tables (for Alembic and tests)."""
    from lockgate.accounts import models as _accounts  # noqa: F401
    from lockgate.changelog import models as _changelog  # noqa: F401
    from lockgate.indexes import models as _indexes  # noqa: F401
    from lockgate.mirror import models as _mirror  # noqa: F401
    from lockgate.packages import models as _packages  # noqa: F401
    from lockgate.transfer import models as _transfer  # noqa: F401

    return Base.metadata
