"""deleted releases: the marks the project page shows for deleted releases

The table is a projection of the changelog (`release.delete`, `project.delete` and
a `file.delete` of a release's last file, cleared by a later `file.add` or
`release.push` of the version), so an existing server's marks are derived here from
its changelog
(`lockgate.packages.deleted.rebuild_deleted_releases`), as a replay would make them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", sa.String(length=32), nullable=False),
        sa.Column("deleted_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["index_id"],
            ["indexes.id"],
            name=op.f("fk_deleted_releases_index_id_indexes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_releases")),
        sa.UniqueConstraint(
            "index_id",
            "project",
            "version",
            name=op.f("uq_deleted_releases_index_id"),
        ),
    )
    from lockgate.packages.deleted import rebuild_deleted_releases

    rebuild_deleted_releases(op.get_bind())


def downgrade() -> None:
    op.drop_table("deleted_releases")
