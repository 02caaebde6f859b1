"""release documentation

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "release_docs",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("unpacked_bytes", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", sa.String(length=32), nullable=False),
        sa.Column("uploader", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_release_docs_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_release_docs")),
    )
    with op.batch_alter_table("release_docs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_release_docs_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("release_docs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_docs_sha256"))
    op.drop_table("release_docs")
