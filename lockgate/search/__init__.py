"""Full-text search over every index's projects (`/+search`, `lockgate reindex`)."""
