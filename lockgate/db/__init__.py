"""Database plumbing shared by every concern: the declarative base and engines."""
