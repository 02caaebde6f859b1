"""search prefixes and mirror texts: FTS5 prefix indexes, and the searchable text
of cached mirror versions

SQLite: `search_fts` is rebuilt with prefix indexes (2 to 8 characters), so a word
prefix ("rend" → "render", "rendering") reads one doclist and can stop at a LIMIT
instead of merging every matching term's postings first (that merge was most of a
search's time in bench/search.py). The triggers of 0015 name the table, so they
keep working on the new one. PostgreSQL's `tsvector` columns are unchanged.

`mirror_texts`: per (mirror index, project, version) the summary, description,
keywords and classifiers read from the core metadata when a file or its
`.metadata` was cached; the search rows of mirror projects carry the latest
version's. Existing caches gain their text as files are cached again (the
migration has no blob store to read the metadata already cached from).

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-08 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

FTS_COLUMNS = "name, summary, description, keywords, classifiers, versions, docs"
FTS_OPTIONS = """content='search_entries', content_rowid='id',
        tokenize="unicode61 remove_diacritics 2\""""
PREFIXES = "prefix='2 3 4 5 6 7 8'"


def _recreate_fts(prefixes: str | None) -> None:
    op.execute("DROP TABLE IF EXISTS search_fts")
    options = FTS_OPTIONS + (f", {prefixes}" if prefixes else "")
    op.execute(f"CREATE VIRTUAL TABLE search_fts USING fts5({FTS_COLUMNS}, {options})")
    # Re-read every row of search_entries (through the same column expressions the
    # triggers use: the indexed `name` is display name and name together).
    op.execute(
        "INSERT INTO search_fts(rowid, name, summary, description, keywords, classifiers, "
        "versions, docs) SELECT id, display_name || ' ' || name, summary, description, "
        "keywords, classifiers, versions, docs FROM search_entries"
    )


def upgrade() -> None:
    op.create_table(
        "mirror_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("classifiers", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["index_id"],
            ["indexes.id"],
            name=op.f("fk_mirror_texts_index_id_indexes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_texts")),
        sa.UniqueConstraint(
            "index_id", "project", "version", name=op.f("uq_mirror_texts_index_id")
        ),
    )
    if op.get_bind().dialect.name != "postgresql":
        _recreate_fts(PREFIXES)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _recreate_fts(None)
    op.drop_table("mirror_texts")
