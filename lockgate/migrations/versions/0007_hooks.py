"""hooks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("created_serial", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["index_id"], ["indexes.id"], name=op.f("fk_hooks_index_id_indexes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hooks")),
        sa.UniqueConstraint("index_id", "name", name=op.f("uq_hooks_index_id")),
    )
    op.create_table(
        "hook_delivered",
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("delivered_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_hook_delivered")),
    )
    op.create_table(
        "hook_outbox",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("index_path", sa.String(length=130), nullable=False),
        sa.Column("hook_name", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.Double(), nullable=False),
        sa.Column("last_answer", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hook_outbox")),
    )
    with op.batch_alter_table("hook_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hook_outbox_index_path"), ["index_path"], unique=False)
    op.create_table(
        "hook_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hook_cursor")),
    )


def downgrade() -> None:
    op.drop_table("hook_cursor")
    with op.batch_alter_table("hook_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hook_outbox_index_path"))
    op.drop_table("hook_outbox")
    op.drop_table("hook_delivered")
    op.drop_table("hooks")
