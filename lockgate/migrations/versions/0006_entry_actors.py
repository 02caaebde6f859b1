"""entry actors

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("changelog", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("actor_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("changelog", schema=None) as batch_op:
        batch_op.drop_column("actor_token")
        batch_op.drop_column("actor")
