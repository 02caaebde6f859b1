"""user and index names unique regardless of case

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 10:00:00

Unique indexes on lower(users.name) and on (indexes.user_name, lower(indexes.name)).
A database that already holds names differing only in case ("Root" beside
"root") cannot take the index: then it is left out and the upgrade still
succeeds; `lockgate migrate` lists the look-alikes for the operator and creates
the index on a later run once they are resolved (`migrations.enforce_case_indexes`).
The services refuse new look-alikes either way.

Note for later migrations: SQLite's batch mode (which recreates a table) does not
carry expression indexes over; a batch operation on `users` or `indexes` must
create these two again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

USERS_INDEX = "uq_users_lower_name"
INDEXES_INDEX = "uq_indexes_user_name_lower_name"


def _has_lookalikes(query: str) -> bool:
    return op.get_bind().execute(sa.text(query)).first() is not None


def upgrade() -> None:
    if not _has_lookalikes(
        "SELECT lower(name) FROM users GROUP BY lower(name) HAVING count(*) > 1"
    ):
        op.create_index(USERS_INDEX, "users", [sa.text("lower(name)")], unique=True)
    if not _has_lookalikes(
        "SELECT user_name, lower(name) FROM indexes "
        "GROUP BY user_name, lower(name) HAVING count(*) > 1"
    ):
        op.create_index(
            INDEXES_INDEX, "indexes", ["user_name", sa.text("lower(name)")], unique=True
        )


def downgrade() -> None:
    # Either may be missing (look-alikes kept it from being created).
    op.execute(f"DROP INDEX IF EXISTS {INDEXES_INDEX}")
    op.execute(f"DROP INDEX IF EXISTS {USERS_INDEX}")
