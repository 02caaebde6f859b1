"""Projects, releases and files held by stage indexes: their tables, entry kinds and services."""
