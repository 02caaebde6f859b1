"""search: one row per (index, project) with its searchable text, and the database's
own full-text index over it (SQLite FTS5 with triggers; PostgreSQL a stored tsvector
with GIN, and pg_trgm for name prefixes)

The rows are a projection kept current by the search domain's changelog observers,
so existing servers are filled here, in the migration, from the state tables
(`lockgate.search.index.rebuild`), with no separate re-index step.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# PostgreSQL: `document` holds every searchable word (A name, B summary, C keywords
# and classifiers, D description, versions and documentation) and decides what
# matches; `head` holds only the name (A) and summary (B): short, never TOASTed, so
# ranking by it stays cheap however many rows match, and the "summary" tier is
# `head @@ query-restricted-to-B`.
PG_HEAD = """
    setweight(to_tsvector('simple', coalesce(display_name, '') || ' ' || name), 'A')
    || setweight(to_tsvector('simple', coalesce(summary, '')), 'B')
"""
PG_DOCUMENT = """
    setweight(to_tsvector('simple', coalesce(display_name, '') || ' ' || name), 'A')
    || setweight(to_tsvector('simple', coalesce(summary, '')), 'B')
    || setweight(to_tsvector('simple', coalesce(keywords, '') || ' '
                                        || coalesce(classifiers, '')), 'C')
    || setweight(to_tsvector('simple', coalesce(description, '') || ' '
                                        || coalesce(versions, '') || ' '
                                        || coalesce(docs, '')), 'D')
"""

# SQLite: an external-content FTS5 table over search_entries, kept in step by
# triggers (the pattern the FTS5 documentation gives), so code writes one table.
SQLITE_FTS = [
    """CREATE VIRTUAL TABLE search_fts USING fts5(
        name, summary, description, keywords, classifiers, versions, docs,
        content='search_entries', content_rowid='id',
        tokenize="unicode61 remove_diacritics 2")""",
    """CREATE TRIGGER search_entries_ai AFTER INSERT ON search_entries BEGIN
        INSERT INTO search_fts(rowid, name, summary, description, keywords, classifiers,
                               versions, docs)
        VALUES (new.id, new.display_name || ' ' || new.name, new.summary, new.description,
                new.keywords, new.classifiers, new.versions, new.docs);
    END""",
    """CREATE TRIGGER search_entries_ad AFTER DELETE ON search_entries BEGIN
        INSERT INTO search_fts(search_fts, rowid, name, summary, description, keywords,
                               classifiers, versions, docs)
        VALUES ('delete', old.id, old.display_name || ' ' || old.name, old.summary,
                old.description, old.keywords, old.classifiers, old.versions, old.docs);
    END""",
    """CREATE TRIGGER search_entries_au AFTER UPDATE ON search_entries BEGIN
        INSERT INTO search_fts(search_fts, rowid, name, summary, description, keywords,
                               classifiers, versions, docs)
        VALUES ('delete', old.id, old.display_name || ' ' || old.name, old.summary,
                old.description, old.keywords, old.classifiers, old.versions, old.docs);
        INSERT INTO search_fts(rowid, name, summary, description, keywords, classifiers,
                               versions, docs)
        VALUES (new.id, new.display_name || ' ' || new.name, new.summary, new.description,
                new.keywords, new.classifiers, new.versions, new.docs);
    END""",
]


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "index_id",
            sa.Integer(),
            sa.ForeignKey("indexes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("latest", sa.String(255), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False, server_default=""),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("keywords", sa.Text(), nullable=False, server_default=""),
        sa.Column("classifiers", sa.Text(), nullable=False, server_default=""),
        sa.Column("versions", sa.Text(), nullable=False, server_default=""),
        sa.Column("docs", sa.Text(), nullable=False, server_default=""),
        sa.UniqueConstraint("index_id", "name", name="uq_search_entries_index_id"),
    ]
    if postgres:
        tsvector = sa.dialects.postgresql.TSVECTOR
        columns.append(sa.Column("head", tsvector(), sa.Computed(PG_HEAD, persisted=True)))
        columns.append(sa.Column("document", tsvector(), sa.Computed(PG_DOCUMENT, persisted=True)))
    op.create_table("search_entries", *columns)
    op.create_index("ix_search_entries_name", "search_entries", ["name"])
    if postgres:
        op.execute("CREATE INDEX ix_search_entries_document ON search_entries USING gin (document)")
        op.execute("CREATE INDEX ix_search_entries_head ON search_entries USING gin (head)")
        op.execute(
            "CREATE INDEX ix_search_entries_name_trgm ON search_entries "
            "USING gin (name gin_trgm_ops)"
        )
    else:
        for statement in SQLITE_FTS:
            op.execute(statement)
    # Fill it from what the server already holds (a no-op on a new server).
    from lockgate.search.index import rebuild_sync

    rebuild_sync(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name in ("search_entries_ai", "search_entries_ad", "search_entries_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_entries")
