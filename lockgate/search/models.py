"""The search table: one row per (index, project) with the text people search for.

It is a projection of the packages and mirror tables, kept current by the search
domain's changelog observers (`entries.py`). Its full-text index differs per backend
and is created by migration 0011 alone: on SQLite an FTS5 table (`search_fts`) that
triggers keep in step with this one, on PostgreSQL a stored `document` tsvector with
GIN, and a pg_trgm index on `name`. So it is declared on its own `MetaData`, outside
the models Alembic compares (`migrations/env.py` leaves `search_*` out).
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text

SEARCH_METADATA = MetaData()

search_entries = Table(
    "search_entries",
    SEARCH_METADATA,
    Column("id", Integer, primary_key=True),
    Column("index_id", Integer, nullable=False),  # indexes.id, ON DELETE CASCADE (0011)
    Column("name", String(255), nullable=False),  # PEP 503 normalized
    Column("display_name", String(255), nullable=False),
    Column("kind", String(8), nullable=False),  # "stage" or "mirror"
    Column("latest", String(255)),  # the version a result shows (None: none known)
    Column("summary", Text, nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("keywords", Text, nullable=False, default=""),
    Column("classifiers", Text, nullable=False, default=""),
    Column("versions", Text, nullable=False, default=""),
    Column("docs", Text, nullable=False, default=""),
)

# Tables (and FTS5 shadow tables, triggers, indexes) Alembic's comparison leaves out.
SEARCH_PREFIX = "search_"
