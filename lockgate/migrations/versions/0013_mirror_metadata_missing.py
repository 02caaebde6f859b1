"""mirror files: a wheel known to have no readable METADATA

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Synthesized `.metadata` (docs/reliability.md MC-5) is advertised for every
    # mirrored wheel until it is known to have none: that knowledge is this column.
    with op.batch_alter_table("mirror_files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("metadata_missing", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("mirror_files", schema=None) as batch_op:
        batch_op.drop_column("metadata_missing")
