"""Housekeeping of a server directory: garbage collection and the consistency check."""
