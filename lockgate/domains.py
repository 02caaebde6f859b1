"""The domains that make up lockgate, in one list: their tables (for Alembic and
tests) and their changelog entry kinds (for the application and the command line).

This is the one place that knows every domain; `changelog/` and `db/` know none.
"""

from __future__ import annotations

from types import ModuleType

from sqlalchemy import MetaData

from lockgate.changelog.registry import EntryRegistry
from lockgate.db.base import Base


def _entry_modules() -> tuple[ModuleType, ...]:
    from lockgate.accounts import entries as accounts
    from lockgate.docs import entries as docs
    from lockgate.hooks import entries as hooks
    from lockgate.indexes import entries as indexes
    from lockgate.mirror import entries as mirror
    from lockgate.namespaces import entries as namespaces
    from lockgate.packages import entries as packages
    from lockgate.search import entries as search
    from lockgate.transfer import entries as transfer
    from lockgate.workflow import entries as workflow

    return (
        accounts,
        indexes,
        packages,
        mirror,
        namespaces,
        transfer,
        hooks,
        workflow,
        docs,
        search,
    )


def build_registry() -> EntryRegistry:
    """Every entry kind and digest part of every domain."""
    registry = EntryRegistry()
    for module in _entry_modules():
        module.register(registry)
    return registry


def load_all_models() -> MetaData:
    """Import every models module so `Base.metadata` knows all tables."""
    from lockgate.accounts import models as _accounts  # noqa: F401
    from lockgate.changelog import models as _changelog  # noqa: F401
    from lockgate.db import models as _db  # noqa: F401
    from lockgate.docs import models as _docs  # noqa: F401
    from lockgate.downloads import models as _downloads  # noqa: F401
    from lockgate.hooks import models as _hooks  # noqa: F401
    from lockgate.indexes import models as _indexes  # noqa: F401
    from lockgate.mirror import models as _mirror  # noqa: F401
    from lockgate.namespaces import models as _namespaces  # noqa: F401
    from lockgate.packages import models as _packages  # noqa: F401
    from lockgate.transfer import models as _transfer  # noqa: F401
    from lockgate.workflow import models as _workflow  # noqa: F401

    return Base.metadata
