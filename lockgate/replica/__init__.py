"""Replication, both sides: a replica follows a primary's changelog and blobs,
serves the same read API, refuses writes and asks the primary (never the
upstream) on a mirror cache miss; a primary serves `/+changelog` and `/+blobs`."""
