"""download counts: per file and day, node-local

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "download_counts",
        sa.Column("index_path", sa.String(length=130), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("index_path", "filename", "day", name=op.f("pk_download_counts")),
    )
    with op.batch_alter_table("download_counts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_download_counts_project"), ["project"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("download_counts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_download_counts_project"))
    op.drop_table("download_counts")
